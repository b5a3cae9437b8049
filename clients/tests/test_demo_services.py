"""The six demo services: their pages, their guards, and that they use only the public API.

Signed-in people here come from the library's own test helper (no provider needed); the
integration tests drive the same apps against the real provider in Chromium.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import secure_access_client
from secure_access_client.testing import FakeProvider

CLIENTS = Path(__file__).resolve().parents[1]
if str(CLIENTS) not in sys.path:
    sys.path.insert(0, str(CLIENTS))

from demo.app import create_app  # noqa: E402
from demo.services import SERVICES  # noqa: E402

PORTS = {
    "collect": 5101,
    "school-to-school": 5102,
    "key-to-success": 5103,
    "analyse-school-performance": 5104,
    "teacher-pensions": 5105,
    "get-information-about-schools": 5106,
}


def demo(client_id: str, tmp_path: Path):
    app = create_app(client_id, SESSION_DIR=str(tmp_path / client_id))
    return app, FakeProvider().install(app)


def test_the_six_services_match_the_providers_seed_data():
    assert {s.client_id: s.port for s in SERVICES} == PORTS
    assert [s.client_id for s in SERVICES if s.mfa] == ["teacher-pensions"]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.client_id)
def test_each_service_has_a_start_page_and_a_guarded_service_page(service, tmp_path):
    app, fake = demo(service.client_id, tmp_path)
    client = app.test_client()
    assert service.name in client.get("/").get_data(as_text=True)
    assert client.get("/service").status_code == 302

    fake.sign_in(client, roles=[service.roles[0][0]], mfa=service.mfa, given_name="Sam")
    page = client.get("/service")
    assert page.status_code == 200
    assert f"You are signed in to {service.name}" in page.get_data(as_text=True)

    config = app.config
    assert config["SECURE_ACCESS_CLIENT_SECRET"] == (
        f"insecure-demo-client-secret-for-{service.client_id}"
    )
    assert config["SECURE_ACCESS_BASE_URL"] == f"http://127.0.0.1:{service.port}"


def test_a_person_without_the_services_role_is_refused(tmp_path):
    app, fake = demo("key-to-success", tmp_path)
    client = app.test_client()
    fake.sign_in(client, roles=["somebody_elses_role"])

    assert client.get("/service").status_code == 403


def test_teacher_pensions_needs_a_second_factor(tmp_path):
    app, fake = demo("teacher-pensions", tmp_path)
    client = app.test_client()
    fake.sign_in(client, roles=["tp_admin"])

    response = client.get("/service")
    assert response.status_code == 302
    assert "mfa=1" in response.location


def test_analyse_school_performance_uses_organisation_and_roles(tmp_path):
    app, fake = demo("analyse-school-performance", tmp_path)
    analyst, viewer = app.test_client(), app.test_client()
    fake.sign_in(
        analyst,
        roles=["la_analyst"],
        organisation={"name": "Camden", "type": "local_authority"},
    )
    fake.sign_in(viewer, roles=["asp_viewer"], organisation={"name": "Hill Top Primary School"})

    assert "Camden" in analyst.get("/service").get_data(as_text=True)
    assert "Camden: nothing to do today" in analyst.get("/local-authority").get_data(as_text=True)
    assert viewer.get("/service").status_code == 200
    assert viewer.get("/local-authority").status_code == 403


def test_signing_out_of_a_demo_goes_to_the_provider(tmp_path):
    app, fake = demo("collect", tmp_path)
    client = app.test_client()
    fake.sign_in(client, roles=["submitter"])
    page = client.get("/service").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]

    response = client.post("/auth/sign-out", data={"csrf_token": token})
    assert response.location.startswith(fake.issuer + "/logout?")


def test_the_demos_use_only_the_librarys_public_api():
    public = set(secure_access_client.__all__)
    for path in (CLIENTS / "demo").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "secure_access_client"
            ):
                assert node.module == "secure_access_client", f"{path}: {node.module}"
                assert {a.name for a in node.names} <= public, path
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("secure_access_client."), path
