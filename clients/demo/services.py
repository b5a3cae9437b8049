"""The six demo services: the same client ids, ports and roles as the provider's seed data
(``idp/services/demo.py``), which this package must not import (it is a relying party)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoService:
    client_id: str
    name: str
    port: int
    description: str
    #: Role codes and their names; the service page needs at least one of them.
    roles: tuple[tuple[str, str], ...]
    #: Every page needs a sign-in with a second factor.
    mfa: bool = False
    #: A page that needs one particular role: (path, role, title).
    special: tuple[str, str, str] | None = None

    @property
    def secret(self) -> str:
        # Published development values: the provider's seed data registers exactly these.
        return f"insecure-demo-client-secret-for-{self.client_id}"


SERVICES: tuple[DemoService, ...] = (
    DemoService(
        "collect",
        "Collect",
        5101,
        "Send statutory data returns to the Department for Education.",
        (("submitter", "Data submitter"), ("approver", "Return approver")),
        special=("/approve", "approver", "Approve your school's return"),
    ),
    DemoService(
        "school-to-school",
        "School-to-School",
        5102,
        "Send pupil records securely to another school.",
        (("s2s_user", "School-to-School user"),),
    ),
    DemoService(
        "key-to-success",
        "Key to Success",
        5103,
        "See pupils' unique pupil numbers and attainment records.",
        (("viewer", "Viewer"),),
    ),
    DemoService(
        "analyse-school-performance",
        "Analyse School Performance",
        5104,
        "Analyse your school's performance data.",
        (("asp_viewer", "Viewer"), ("la_analyst", "Local authority analyst")),
        special=("/local-authority", "la_analyst", "Every school in your local authority"),
    ),
    DemoService(
        "teacher-pensions",
        "Teacher Pensions",
        5105,
        "Manage teachers' pension records as an employer.",
        (("tp_admin", "Employer administrator"),),
        mfa=True,
    ),
    DemoService(
        "get-information-about-schools",
        "Get Information about Schools",
        5106,
        "Keep your school's details in the register up to date.",
        (("gias_editor", "Establishment editor"),),
    ),
)

BY_CLIENT_ID = {service.client_id: service for service in SERVICES}
