"""The helpdesk console's MFA reset: identity check, and four-eyes approval (issue 8, D07).

- ``/helpdesk/users/<sub>/reset-mfa``: any helpdesk agent records how they checked the
  caller's identity and why; it takes effect at once, or waits for a second admin.
- ``/helpdesk/mfa-resets``: the resets waiting for approval (any helpdesk agent may look).
- ``/helpdesk/mfa-resets/<id>/approve`` and ``/reject``: helpdesk admins only; the service
  refuses the requester and the target themselves (:mod:`idp.services.mfa_reset`).
"""

from __future__ import annotations

from flask import abort, current_app, render_template
from flask.typing import ResponseReturnValue

from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_admin_required, helpdesk_required
from idp.console.helpdesk_action_forms import ApproveForm, MfaResetForm, RejectForm
from idp.console.helpdesk_actions import find_target, person_page
from idp.models import MfaResetRequest
from idp.models.requests import RequestStatus
from idp.services import mfa_reset
from idp.services.helpdesk_actions import ActionRefused, NotPermitted
from idp.services.mfa.factors import factors_of
from idp.services.transaction import transaction
from idp.web.forms import render_form


def _status(refused: ActionRefused) -> int:
    return 403 if isinstance(refused, NotPermitted) else 409


@helpdesk_bp.route("/users/<sub>/reset-mfa", methods=["GET", "POST"])
@helpdesk_required
def mfa_reset_start(sub: str) -> ResponseReturnValue:
    target = find_target(sub)
    form = MfaResetForm()
    problem, status = None, 200
    if form.validate_on_submit():
        try:
            with transaction():
                request = mfa_reset.request_reset(
                    target,
                    actor=current_staff(),
                    identity_check=form.identity_check.data or "",
                    reason=form.reason.data or "",
                )
                pending = request.status is RequestStatus.PENDING
        except ActionRefused as refused:
            problem, status = str(refused), _status(refused)
        else:
            return render_template(
                "console/actions/mfa_reset_done.html",
                target=target,
                pending=pending,
                back=person_page(sub),
                title=("MFA reset waiting for approval" if pending else "Security methods reset"),
            )
    body, form_status = render_form(
        "console/actions/mfa_reset.html",
        form,
        target=target,
        factors=factors_of(target),
        needs_approval=mfa_reset.needs_approval(target),
        link_hours=current_app.extensions["settings"].mfa_enrolment_link_hours,
        waiting=mfa_reset.pending_for(target),
        problem=problem,
        back=person_page(sub),
        title=f"Reset security methods: {target.name}",
    )
    return body, (status if problem else form_status)


@helpdesk_bp.get("/mfa-resets")
@helpdesk_required
def mfa_resets() -> ResponseReturnValue:
    rows = [
        (request, mfa_reset.user_of(request), mfa_reset.requester_of(request))
        for request in mfa_reset.pending_requests()
    ]
    return render_template(
        "console/actions/mfa_resets.html",
        rows=rows,
        staff=current_staff(),
        title="MFA resets waiting for approval",
    )


def _find(request_id: str) -> MfaResetRequest:
    request = mfa_reset.find_request(request_id)
    if request is None:
        abort(404)
    return request


def _decide(request_id: str, *, approving: bool) -> ResponseReturnValue:
    request = _find(request_id)
    target = mfa_reset.user_of(request)
    form = ApproveForm() if approving else RejectForm()
    problem, status = None, 200
    if form.validate_on_submit():
        try:
            with transaction():
                if approving:
                    mfa_reset.approve(request, decider=current_staff(), note=form.note.data)
                else:
                    mfa_reset.reject(request, decider=current_staff(), note=form.note.data or "")
        except ActionRefused as refused:
            problem, status = str(refused), _status(refused)
        else:
            return render_template(
                "console/actions/mfa_decided.html",
                target=target,
                approved=approving,
                title="MFA reset approved" if approving else "MFA reset rejected",
            )
    verb = "Approve" if approving else "Reject"
    body, form_status = render_form(
        "console/actions/mfa_decide.html",
        form,
        request=request,
        target=target,
        requester=mfa_reset.requester_of(request),
        own=request.requested_by_id == current_staff().id,
        approving=approving,
        problem=problem,
        title=f"{verb} MFA reset: {target.name}",
    )
    return body, (status if problem else form_status)


@helpdesk_bp.route("/mfa-resets/<request_id>/approve", methods=["GET", "POST"])
@helpdesk_admin_required
def mfa_reset_approve(request_id: str) -> ResponseReturnValue:
    return _decide(request_id, approving=True)


@helpdesk_bp.route("/mfa-resets/<request_id>/reject", methods=["GET", "POST"])
@helpdesk_admin_required
def mfa_reset_reject(request_id: str) -> ResponseReturnValue:
    return _decide(request_id, approving=False)
