"""Test data for the Authentix import: two schools, a local authority, two services, a CSV."""

from __future__ import annotations

from idp.extensions import db
from idp.models import Organisation, OrganisationType, Service, ServiceRole

HEADER = "URN,Email,Given name,Family name,Approver,Services"


def seed() -> None:
    """Two schools from GIAS (URNs 100001, 100002), an LA, and two services with roles."""
    db.session.add_all(
        [
            Organisation(
                urn="100001", name="Hill Top Primary", type=OrganisationType.ESTABLISHMENT
            ),
            Organisation(
                urn="100002", name="Riverside Academy", type=OrganisationType.ESTABLISHMENT
            ),
            Organisation(la_code="202", name="Camden", type=OrganisationType.LOCAL_AUTHORITY),
        ]
    )
    census = Service(client_id="school-census", name="School census")
    census.roles = [ServiceRole(code="submitter", name="Submitter")]
    pupils = Service(client_id="pupil-data", name="Pupil data")
    pupils.roles = [
        ServiceRole(code="viewer", name="Viewer"),
        ServiceRole(code="editor", name="Editor"),
        ServiceRole(code="la_admin", name="LA admin", organisation_types=["local_authority"]),
    ]
    db.session.add_all([census, pupils])
    db.session.commit()


def staff_csv(*rows: str, header: str = HEADER) -> str:
    return "\r\n".join([header, *rows]) + "\r\n"


#: Three people, one of them at both schools: 4 rows, 3 accounts, 3 invitations.
GOOD = staff_csv(
    "100001,ada.lovelace@hilltop.sch.uk,Ada,Lovelace,yes,school-census:submitter;pupil-data:viewer",
    "100001,alan.turing@hilltop.sch.uk,Alan,Turing,no,pupil-data",
    "100002,ada.lovelace@hilltop.sch.uk,Ada,Lovelace,no,",
    "100002,grace.hopper@riverside.sch.uk,Grace,Hopper,Yes,pupil-data:viewer+editor",
)
