"""The helpdesk console's import of schools' staff from Authentix (issue 8, "Migration off
Authentix").

Two steps, so nothing is written by mistake: upload a CSV and see what it would change (a dry
run: counts, per-row errors with line numbers, and each row's plan), then press Import to apply
exactly the file that was checked (kept briefly in the store, for the uploader only). Rules,
permission check, audit (``import.authentix``) and the stashed copy live in
:mod:`idp.services.authentix_import`; this module turns requests into calls and results into
pages. The request size cap (``IDP_MAX_REQUEST_BYTES``) and ``IDP_AUTHENTIX_CONSOLE_MAX_ROWS``
bound the upload, so a check or an import fits in one web request; bigger files go through
``flask import-authentix``.
"""

from __future__ import annotations

from flask import current_app, render_template
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField
from wtforms.validators import DataRequired, Length

from idp.config import Settings
from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_required
from idp.services import authentix_import
from idp.web.forms import render_form

TEMPLATE_FORM = "console/import.html"
TEMPLATE_RESULTS = "console/import_results.html"


class UploadForm(FlaskForm):
    file = FileField(validators=[FileRequired("Select a CSV file exported from Authentix")])


class ApplyForm(FlaskForm):
    upload_id = HiddenField(validators=[DataRequired(), Length(max=64)])


def _form_page(form: UploadForm) -> ResponseReturnValue:
    settings: Settings = current_app.extensions["settings"]
    return render_form(
        TEMPLATE_FORM,
        form,
        title="Import staff from Authentix",
        size_limit=f"{settings.max_request_bytes / 1_048_576:.0f} MB",
        max_rows=f"{settings.authentix_console_max_rows:,}",
    )


@helpdesk_bp.route("/import", methods=["GET", "POST"])
@helpdesk_required
def import_staff() -> ResponseReturnValue:
    """Upload a file and check it (a dry run: nothing is written or sent)."""
    form = UploadForm()
    if not form.validate_on_submit():
        return _form_page(form)
    upload = form.file.data
    data = upload.read()
    filename = upload.filename or "upload.csv"
    if not data.strip():
        form.file.errors = ["The selected file is empty"]
        return _form_page(form)
    staff = current_staff()
    try:
        result = authentix_import.import_upload(data, staff=staff, dry_run=True, filename=filename)
    except authentix_import.ImportFileError as exc:
        form.file.errors = [f"The file cannot be imported: {exc}"]
        return _form_page(form)
    upload_id = authentix_import.stash_upload(data, staff=staff, filename=filename)
    return render_template(
        TEMPLATE_RESULTS,
        title="Check what the import will change",
        result=result,
        filename=filename,
        form=ApplyForm(upload_id=upload_id),
    )


@helpdesk_bp.post("/import/apply")
@helpdesk_required
def import_staff_apply() -> ResponseReturnValue:
    """Apply the file that was just checked; audited with the counts by the service."""
    form = ApplyForm()
    staff = current_staff()
    taken = None
    if form.validate_on_submit():
        taken = authentix_import.take_upload(form.upload_id.data or "", staff=staff)
    if taken is None:
        return (
            render_template(
                "console/import_expired.html", title="Upload the file again", form=None
            ),
            400,
        )
    data, filename = taken
    try:
        result = authentix_import.import_upload(data, staff=staff, dry_run=False, filename=filename)
    except authentix_import.ImportFileError:  # checked a moment ago; only if the rules moved
        return (
            render_template(
                "console/import_expired.html", title="Upload the file again", form=None
            ),
            400,
        )
    return render_template(
        TEMPLATE_RESULTS, title="Import finished", result=result, filename=filename, form=None
    )
