"""The helpdesk console's audit log: browse, filter, export, monthly report (issue 8).

K02/K03: the record of who did what to whom, and why, is readable by the helpdesk. Queries and
CSV live in :mod:`idp.services.audit_log`, the monthly report in
:mod:`idp.services.audit_report`; exporting is itself audited
(``audit.exported``) and committed before the first byte is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Response, abort, redirect, render_template, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue
from wtforms.fields.choices import SelectChoice

from idp.console.audit_forms import AuditFilterForm, ReportChooserForm
from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_required
from idp.models import Organisation
from idp.services import audit, audit_log, audit_report
from idp.services.transaction import transaction


def _filter_form() -> AuditFilterForm:
    form = AuditFilterForm(request.args)
    form.event.choices = [SelectChoice("", "Any action")] + [
        SelectChoice(name, audit_log.describe(name)) for name in audit_log.event_names()
    ]
    return form


def _filter_args(form: AuditFilterForm) -> dict[str, Any]:
    """The current filter as query-string values, for page and export links."""
    return {
        name: value
        for name in ("user", "actor", "event", "outcome", "date_from", "date_to")
        if (value := request.args.get(name, "").strip())
    }


@helpdesk_bp.get("/audit", endpoint="audit_log")
@helpdesk_required
def audit_log_page() -> ResponseReturnValue:
    form = _filter_form()
    result = None
    if form.validate():
        try:
            result = audit_log.page(
                form.to_filter(),
                before=request.args.get("before") or None,
                after=request.args.get("after") or None,
            )
        except audit_log.InvalidCursor:
            return redirect(url_for("helpdesk.audit_log", **_filter_args(form)))
    return (
        render_template(
            "console/audit/log.html",
            title="Audit log",
            form=form,
            result=result,
            filters=_filter_args(form),
            describe=audit_log.describe,
            uk_time=audit_log.uk_time,
            person=audit_log.person_label,
            cap=audit_log.EXPORT_CAP,
        ),
        400 if form.errors else 200,
    )


def _csv_response(lines: Iterator[str], filename: str) -> Response:
    response = Response(stream_with_context(lines), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@helpdesk_bp.get("/audit/export.csv")
@helpdesk_required
def audit_export() -> ResponseReturnValue:
    form = _filter_form()
    if not form.validate():
        return redirect(url_for("helpdesk.audit_log", **_filter_args(form)))
    chosen = form.to_filter()
    with transaction():
        audit.record(
            "audit.exported",
            actor=current_staff().sub,
            target_type="audit_log",
            kind="audit_log",
            filter=chosen.as_details(),
            cap=audit_log.EXPORT_CAP,
        )
    return _csv_response(audit_log.export_lines(chosen), "audit-log.csv")


def _organisation(key: str) -> Organisation | None:
    """The organisation by public id, or by URN (what a caller reads off GIAS)."""
    found = audit_report.find_organisation(key)
    if found is None and key.isdigit():
        found = audit_report.find_organisation_by_urn(key)
    return found


@helpdesk_bp.get("/reports")
@helpdesk_required
def report_chooser() -> ResponseReturnValue:
    form = ReportChooserForm(request.args)
    if request.args and form.validate():
        organisation = _organisation(form.organisation.data.strip())
        if organisation is not None:
            return redirect(
                url_for(
                    "helpdesk.monthly_report",
                    public_id=organisation.public_id,
                    month=form.month.data,
                )
            )
        form.organisation.errors = ["No organisation has this URN or ID"]
    return (
        render_template("console/audit/report_choose.html", title="Monthly report", form=form),
        400 if form.errors else 200,
    )


def _report(public_id: str, month: str) -> audit_report.MonthlyReport:
    organisation = audit_report.find_organisation(public_id)
    if organisation is None:
        abort(404)
    try:
        first = audit_report.parse_month(month)
    except audit_report.InvalidMonth:
        abort(404)
    return audit_report.monthly_report(organisation, first)


@helpdesk_bp.get("/reports/<public_id>/<month>")
@helpdesk_required
def monthly_report(public_id: str, month: str) -> ResponseReturnValue:
    report = _report(public_id, month)
    return render_template(
        "console/audit/report.html",
        title=f"Helpdesk actions for {report.organisation.name}, {report.month_name}",
        report=report,
        month=month,
    )


@helpdesk_bp.get("/reports/<public_id>/<month>.csv")
@helpdesk_required
def monthly_report_csv(public_id: str, month: str) -> ResponseReturnValue:
    report = _report(public_id, month)
    with transaction():
        audit.record(
            "audit.exported",
            actor=current_staff().sub,
            target=report.organisation.public_id,
            target_type="organisation",
            kind="monthly_report",
            month=month,
            rows=len(report.rows),
        )
    name = f"helpdesk-actions-{report.organisation.urn or report.organisation.public_id}-{month}"
    return _csv_response(audit_report.report_lines(report), f"{name}.csv")
