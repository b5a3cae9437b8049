"""Organisation import from a GIAS-format CSV: upsert by URN, LAs, dry run, bad rows, the CLI.

``tests/data/gias_sample.csv`` is cp1252 with CRLF line ends, like the real download. Its rows:
lines 2-7 and 16 are good (7 establishments in 4 local authorities, one under GIAS's "000 Does
not apply"); lines 8-15 are each malformed in one way.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bench.generate_gias import BAD_KINDS, generate
from idp.extensions import db
from idp.models import AuditEvent, Organisation, OrganisationStatus, OrganisationType
from idp.services import organisation_import
from idp.services.organisation_import import (
    ImportFileError,
    ImportResult,
    RowError,
    import_organisations,
)

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "gias_sample.csv"
HEADER = (
    "URN,LA (code),LA (name),EstablishmentNumber,EstablishmentName,"
    "TypeOfEstablishment (name),EstablishmentStatus (name),OpenDate,Trusts (name),UKPRN,Postcode"
)
SAMPLE_ERRORS = [
    (8, None, "URN is missing"),
    (9, "12AB34", "URN '12AB34' is not a number"),
    (10, "100008", "EstablishmentName is missing"),
    (11, "100009", "unknown EstablishmentStatus 'Temporarily closed'"),
    (12, "100001", "duplicate URN: already on line 3"),
    (13, "100010", "EstablishmentName is longer than 255 characters"),
    (14, "100011", "UKPRN '1234' is not an 8-digit number"),
    (15, "100012", "Postcode is longer than 16 characters"),
]


def csv_text(*rows: str) -> io.StringIO:
    """A small in-memory GIAS file: the sample's header plus the given rows."""
    return io.StringIO("\r\n".join([HEADER, *rows]) + "\r\n")


def row(
    urn: str = "200001",
    name: str = "Example Primary School",
    *,
    la_code: str = "202",
    la_name: str = "Camden",
    type_: str = "Community school",
    status: str = "Open",
    ukprn: str = "10000001",
    postcode: str = "NW1 1AA",
) -> str:
    def q(value: str) -> str:
        return f'"{value}"' if "," in value else value

    fields = [urn, la_code, q(la_name), "1234", q(name), type_, q(status), "", "", ukprn, postcode]
    return ",".join(fields)


def by_urn(urn: str) -> Organisation:
    return db.session.scalars(select(Organisation).where(Organisation.urn == urn)).one()


def local_authorities() -> dict[str, str]:
    query = select(Organisation.la_code, Organisation.name).where(
        Organisation.type == OrganisationType.LOCAL_AUTHORITY
    )
    return dict(db.session.execute(query).all())


def establishment_count() -> int:
    return db.session.scalar(select(func.count()).where(Organisation.urn.is_not(None))) or 0


def import_events() -> list[AuditEvent]:
    return list(
        db.session.scalars(select(AuditEvent).where(AuditEvent.event == "organisations.imported"))
    )


def errors(result: ImportResult) -> list[tuple[int, str | None, str]]:
    return [(e.line, e.urn, e.reason) for e in result.errors]


# -- creating, linking, mapping --------------------------------------------------------------


def test_creates_establishments_and_local_authorities_and_links_them(app):
    result = import_organisations(SAMPLE)

    assert result.counts() == {
        "created": 7,
        "updated": 0,
        "unchanged": 0,
        "rejected": 8,
        "local_authorities_created": 4,
        "local_authorities_updated": 0,
    }
    assert result.encoding == "cp1252"
    assert establishment_count() == 7
    assert local_authorities() == {
        "201": "City of London",
        "202": "Camden",
        "204": "Hackney",
        "801": "Bristol, City of",
    }
    school = by_urn("100001")
    assert school.name == "St Thérèse's Catholic Primary School"  # cp1252 decoded
    assert school.type == OrganisationType.ESTABLISHMENT
    assert school.establishment_type == "Voluntary aided school"
    assert school.ukprn == "10074567"
    assert school.postcode == "NW1 2DB"
    assert school.local_authority is not None
    assert school.local_authority.la_code == "202"
    assert school.local_authority.type == OrganisationType.LOCAL_AUTHORITY
    assert by_urn("100013").local_authority.name == "Bristol, City of"


def test_maps_every_gias_status_and_keeps_optional_fields_empty(app):
    import_organisations(SAMPLE)

    assert by_urn("100000").status == OrganisationStatus.OPEN
    assert by_urn("100002").status == OrganisationStatus.CLOSED
    assert by_urn("100003").status == OrganisationStatus.PROPOSED_TO_OPEN
    assert by_urn("100004").status == OrganisationStatus.PROPOSED_TO_CLOSE
    closed = by_urn("100002")
    assert closed.name == "Christ Church, Church of England Primary School"  # quoted comma
    assert closed.ukprn is None
    assert closed.postcode == "NW3 1AB"  # upper-cased, spaces collapsed


def test_does_not_apply_is_not_a_local_authority(app):
    import_organisations(SAMPLE)

    assert by_urn("100005").local_authority_id is None
    assert "000" not in local_authorities()


# -- idempotence and updates -----------------------------------------------------------------


def test_rerunning_the_same_file_changes_nothing_and_says_so(app):
    import_organisations(SAMPLE)
    before = {o.urn: o.updated_at for o in db.session.scalars(select(Organisation))}
    db.session.rollback()

    result = import_organisations(SAMPLE)

    assert (result.created, result.updated, result.unchanged) == (0, 0, 7)
    assert not result.changed
    assert result.summary() == ["No changes: 7 unchanged, 8 rejected"]
    assert {o.urn: o.updated_at for o in db.session.scalars(select(Organisation))} == before


def test_a_changed_name_is_updated_and_nothing_else_is_touched(app):
    import_organisations(csv_text(row("200001", "Old Name School"), row("200002")))
    created_at = by_urn("200001").created_at
    db.session.rollback()

    result = import_organisations(csv_text(row("200001", "New Name School"), row("200002")))

    assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
    school = by_urn("200001")
    assert school.name == "New Name School"
    assert school.created_at == created_at
    assert establishment_count() == 2


@pytest.mark.parametrize(
    ("change", "check"),
    [
        ({"status": "Closed"}, lambda o: o.status == OrganisationStatus.CLOSED),
        ({"type_": "Academy converter"}, lambda o: o.establishment_type == "Academy converter"),
        ({"ukprn": ""}, lambda o: o.ukprn is None),
        ({"postcode": "SW1A 1AA"}, lambda o: o.postcode == "SW1A 1AA"),
        ({"la_code": "204", "la_name": "Hackney"}, lambda o: o.local_authority.la_code == "204"),
        ({"la_code": "", "la_name": ""}, lambda o: o.local_authority_id is None),
    ],
)
def test_every_imported_field_is_updated_when_it_changes(app, change, check):
    import_organisations(csv_text(row("200001")))

    result = import_organisations(csv_text(row("200001", **change)))

    assert result.updated == 1
    assert check(by_urn("200001"))


def test_a_renamed_local_authority_is_updated_not_duplicated(app):
    import_organisations(csv_text(row("200001", la_code="839", la_name="Bournemouth")))

    result = import_organisations(
        csv_text(row("200001", la_code="839", la_name="Bournemouth, Christchurch and Poole"))
    )

    assert (result.local_authorities_created, result.local_authorities_updated) == (0, 1)
    assert result.unchanged == 1  # the school's own fields and parent did not change
    assert local_authorities() == {"839": "Bournemouth, Christchurch and Poole"}


def test_establishments_not_in_the_file_are_left_alone(app):
    import_organisations(csv_text(row("200001"), row("200002")))

    result = import_organisations(csv_text(row("200001")))

    assert result.unchanged == 1
    assert establishment_count() == 2


# -- dry run ---------------------------------------------------------------------------------


def test_dry_run_writes_nothing_but_reports_what_would_change(app):
    result = import_organisations(SAMPLE, dry_run=True)

    assert result.dry_run
    assert (result.created, result.rejected, result.local_authorities_created) == (7, 8, 4)
    assert result.summary()[0] == "Dry run: nothing was written."
    assert "7 would be created" in result.summary()[1]
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Organisation)) == 0
    assert import_events() == []


def test_dry_run_after_an_import_reports_updates_without_making_them(app):
    import_organisations(csv_text(row("200001", "Old Name School")))

    result = import_organisations(csv_text(row("200001", "New Name School")), dry_run=True)

    assert (result.updated, result.unchanged) == (1, 0)
    db.session.rollback()
    assert by_urn("200001").name == "Old Name School"
    assert len(import_events()) == 1  # the real import only


# -- malformed rows --------------------------------------------------------------------------


def test_each_malformed_row_is_reported_with_its_line_and_the_rest_imported(app):
    result = import_organisations(SAMPLE)

    assert errors(result) == SAMPLE_ERRORS
    assert by_urn("100001").name == "St Thérèse's Catholic Primary School"  # first one wins
    assert by_urn("100013").name == "Bristol Primary School"  # the row after the bad ones


@pytest.mark.parametrize(
    ("bad", "urn", "reason"),
    [
        (row(""), None, "URN is missing"),
        (row("12345.0"), "12345.0", "URN '12345.0' is not a number"),
        (row("1" * 17), "1" * 16, "URN is longer than 16 digits"),
        (row("200009", ""), "200009", "EstablishmentName is missing"),
        (row("200009", "N" * 256), "200009", "EstablishmentName is longer than 255 characters"),
        (row("200009", status=""), "200009", "unknown EstablishmentStatus ''"),
        (row("200009", status="Shut"), "200009", "unknown EstablishmentStatus 'Shut'"),
        (row("200009", type_="T" * 121), "200009", "TypeOfEstablishment is longer than 120"),
        (row("200009", ukprn="100000001"), "200009", "UKPRN '100000001' is not an 8-digit"),
        (row("200009", ukprn="1000000A"), "200009", "UKPRN '1000000A' is not an 8-digit"),
        (row("200009", postcode="P" * 17), "200009", "Postcode is longer than 16 characters"),
        (row("200009", la_code="ABC"), "200009", "LA (code) 'ABC' is not a number"),
        (row("200009", la_code="123456789"), "200009", "LA (code) is longer than 8 digits"),
        (row("200009", la_name=""), "200009", "LA (name) is missing for LA (code) 202"),
        (row("200009", la_code=""), "200009", "LA (name) is given without an LA (code)"),
        (row("200001"), "200001", "duplicate URN: already on line 2"),
        ("200009,202,Camden,1234", None, "4 fields, but the header has 11"),
        (row("200009", "Smith, Jones School").replace('"', ""), None, "12 fields, but the"),
    ],
)
def test_malformed_row_kinds(app, bad, urn, reason):
    result = import_organisations(csv_text(row("200001"), bad, row("200002")))

    assert len(result.errors) == 1
    error = result.errors[0]
    assert (error.line, error.urn) == (3, urn)
    assert error.reason.startswith(reason)
    assert result.created == 2  # the rows either side are imported


def test_an_unbalanced_quote_is_one_error_that_names_the_lines_it_swallowed(app):
    result = import_organisations(
        csv_text(row("200001"), '200002,202,"Camden', row("200003"), row("200004"))
    )

    assert result.errors == [
        RowError(3, None, "3 fields, but the header has 11 (the record spans lines 3-5)")
    ]
    assert result.created == 1


def test_a_malformed_row_leaves_the_existing_organisation_alone(app):
    import_organisations(csv_text(row("200001", "Good Name School")))

    result = import_organisations(csv_text(row("200001", "", status="Open")))

    assert result.rejected == 1
    assert by_urn("200001").name == "Good Name School"


def test_blank_lines_and_trailing_empty_rows_are_not_data(app):
    result = import_organisations(csv_text(row("200001"), "", ",,,,,,,,,,", row("200002")))

    assert (result.created, result.rejected) == (2, 0)


# -- encodings and unreadable files ----------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_encodings(app, tmp_path, encoding):
    path = tmp_path / f"gias-{encoding}.csv"
    path.write_bytes(SAMPLE.read_bytes().decode("cp1252").encode(encoding))

    result = import_organisations(path)

    assert result.encoding == ("cp1252" if encoding == "cp1252" else "utf-8-sig")
    assert (result.created, result.rejected) == (7, 8)
    assert by_urn("100001").name == "St Thérèse's Catholic Primary School"


def test_a_text_stream_with_a_leftover_bom_is_read(app):
    result = import_organisations(io.StringIO("\ufeff" + csv_text(row("200001")).getvalue()))

    assert result.created == 1


def test_a_path_that_cannot_be_read_raises(app, tmp_path):
    with pytest.raises(ImportFileError, match="cannot read"):
        import_organisations(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"URN,EstablishmentName\r\n100000,A School\r\n", "missing column"),
        (b"\x00\x01\x02binary\xff\xfe", "missing column"),
    ],
)
def test_a_file_that_is_not_a_gias_file_raises_before_writing(app, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)

    with pytest.raises(ImportFileError, match=message):
        import_organisations(path)
    db.session.rollback()
    assert establishment_count() == 0
    assert import_events() == []


def test_a_zip_archive_is_named_as_such(app, tmp_path):
    path = tmp_path / "Results.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(SAMPLE, "edubasealldata.csv")

    with pytest.raises(ImportFileError, match="zip archive"):
        import_organisations(path)


# -- audit, progress, batches ----------------------------------------------------------------


def test_one_audit_event_with_the_counts(app):
    import_organisations(SAMPLE, actor="cli:tester")

    [event] = import_events()
    assert event.actor_id == "cli:tester"
    assert event.outcome == "success"
    assert event.details["created"] == 7
    assert event.details["rejected"] == 8
    assert event.details["local_authorities_created"] == 4
    assert event.details["source"] == "gias_sample.csv"


def test_progress_is_reported_and_ends_complete(app, monkeypatch):
    monkeypatch.setattr(organisation_import, "PROGRESS_EVERY", 5)
    calls: list[tuple[int, int | None]] = []

    import_organisations(SAMPLE, progress=lambda done, total: calls.append((done, total)))

    assert calls == [(5, 15), (10, 15), (15, 15), (15, 15)]


def test_small_batches_give_the_same_result(app):
    result = import_organisations(SAMPLE, batch_size=1)

    assert (result.created, result.local_authorities_created) == (7, 4)
    assert by_urn("100013").local_authority.la_code == "801"


def test_a_failed_batch_is_rolled_back_whole_and_a_rerun_finishes_the_job(app, monkeypatch):
    real_write = organisation_import._Importer._write
    calls = {"n": 0}

    def write_then_fail_on_the_second_batch(self, conn, batch):
        calls["n"] += 1
        real_write(self, conn, batch)  # the rows reach the database inside the transaction...
        if calls["n"] == 2:
            raise RuntimeError("database went away")  # ...and must not survive this

    monkeypatch.setattr(
        organisation_import._Importer, "_write", write_then_fail_on_the_second_batch
    )
    rows = [row(str(200001 + i)) for i in range(6)]
    with pytest.raises(RuntimeError, match="database went away"):
        import_organisations(csv_text(*rows), batch_size=3)

    db.session.rollback()
    # Batch 1 (the new LA and two schools, three changes) committed; batch 2 left no trace.
    assert establishment_count() == 2
    [event] = import_events()
    assert event.outcome == "failure"
    assert event.details["committed_created"] == 2
    assert "database went away" in event.reason

    monkeypatch.undo()
    result = import_organisations(csv_text(*rows))
    assert (result.created, result.unchanged) == (4, 2)


# -- the command -----------------------------------------------------------------------------


def test_cli_prints_the_summary_and_the_rejected_rows(app):
    result = app.test_cli_runner().invoke(args=["import-organisations", str(SAMPLE)])

    assert result.exit_code == 0, result.output
    assert "Establishments: 7 created, 0 updated, 0 unchanged, 8 rejected" in result.stdout
    assert "Local authorities: 4 created, 0 updated" in result.stdout
    assert "Rejected rows (8):" in result.stdout
    assert "  line 12 (URN 100001): duplicate URN: already on line 3" in result.stdout
    assert "  line 8: URN is missing" in result.stdout
    assert establishment_count() == 7


def test_cli_rerun_says_no_changes(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["import-organisations", str(SAMPLE)])

    result = runner.invoke(args=["import-organisations", str(SAMPLE)])

    assert result.exit_code == 0
    assert result.stdout.startswith("No changes: 7 unchanged, 8 rejected\n")


def test_cli_dry_run(app):
    result = app.test_cli_runner().invoke(args=["import-organisations", str(SAMPLE), "--dry-run"])

    assert result.exit_code == 0
    assert result.stdout.startswith("Dry run: nothing was written.\n")
    db.session.rollback()
    assert establishment_count() == 0


def test_cli_lists_the_first_50_rejected_rows_then_a_count(app, tmp_path):
    path = tmp_path / "many-bad.csv"
    path.write_text(csv_text(*[row("", f"School {i}") for i in range(60)]).getvalue())

    result = app.test_cli_runner().invoke(args=["import-organisations", str(path)])

    assert result.exit_code == 0
    assert result.stdout.count(": URN is missing") == 50
    assert "  ... and 10 more" in result.stdout


def test_cli_exits_1_when_the_file_cannot_be_read(app, tmp_path):
    result = app.test_cli_runner().invoke(
        args=["import-organisations", str(tmp_path / "missing.csv")]
    )

    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_cli_explains_a_database_failure_instead_of_a_traceback(app, monkeypatch):
    def fail(self, conn, batch):
        raise OperationalError("INSERT ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(organisation_import._Importer, "_write", fail)

    result = app.test_cli_runner().invoke(args=["import-organisations", str(SAMPLE)])

    assert result.exit_code == 1
    assert "the import stopped: OperationalError" in result.stderr
    assert "re-run the same file to finish" in result.stderr


def test_cli_exits_1_when_the_columns_are_wrong(app, tmp_path):
    path = tmp_path / "not-gias.csv"
    path.write_text("name,email\r\nA,a@example.com\r\n")

    result = app.test_cli_runner().invoke(args=["import-organisations", str(path)])

    assert result.exit_code == 1
    assert "missing column(s) 'URN'" in result.stderr


# -- a generated file ------------------------------------------------------------------------


def test_a_generated_2000_row_file_imports_fully(app, tmp_path):
    path = tmp_path / "generated.csv"
    generated = generate(path, 2000, seed=7, bad_fraction=0.02)
    assert generated.bad >= len(BAD_KINDS)  # every kind of malformed row is in there

    result = import_organisations(path)

    assert result.created == generated.good
    assert result.rejected == generated.bad
    assert result.local_authorities_created == len(generated.local_authority_codes)
    assert establishment_count() == generated.good
    assert set(local_authorities()) == generated.local_authority_codes

    rerun = import_organisations(path)
    assert rerun.summary() == [f"No changes: {generated.good} unchanged, {generated.bad} rejected"]
