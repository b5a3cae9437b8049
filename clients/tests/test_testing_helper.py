"""The helper services use in their own tests: a fake person signed in without a provider,
and a valid back-channel Logout Token sent to the service (``secure_access_client.testing``
and the ``secure_access`` pytest fixture)."""

from __future__ import annotations

import pytest
from rp_helpers import make_rp_app

from secure_access_client.testing import FakeProvider

pytest_plugins = ["secure_access_client.pytest_plugin"]


@pytest.fixture
def app(op, tmp_path, clock):
    # The fake provider never uses the network: the service's issuer does not even exist.
    return make_rp_app(op, tmp_path, clock, ISSUER="https://secure-access.invalid")


def test_sign_in_a_fake_person_with_chosen_claims_and_roles(app, secure_access):
    client = app.test_client()
    user = secure_access.sign_in(
        client,
        roles=["approver"],
        given_name="Sam",
        family_name="Patel",
        organisation={"name": "Hill Top Primary School", "urn": "100000"},
    )

    assert client.get("/approve").status_code == 200
    me = client.get("/whoami").json
    assert me["sub"] == user.sub
    assert me["names"] == ["Sam Patel", "Sam", "Patel"]
    assert me["organisation"][:2] == ["Hill Top Primary School", "100000"]
    assert me["iss"] == "https://secure-access.invalid"


def test_a_fake_mfa_sign_in_satisfies_mfa_pages(app, secure_access):
    client = app.test_client()
    secure_access.sign_in(client)
    assert client.get("/pensions").status_code == 302

    secure_access.sign_in(client, mfa=True)
    assert client.get("/pensions").status_code == 200


def test_send_a_valid_back_channel_logout(app, secure_access):
    client = app.test_client()
    user = secure_access.sign_in(client)

    response = secure_access.send_backchannel_logout(app.test_client(), user)
    assert response.status_code == 200
    assert client.get("/private").status_code == 302


def test_the_fake_signs_real_tokens_that_the_service_checks_in_full(app, secure_access):
    token = secure_access.logout_token(sid="sid-x", nonce="not allowed")

    response = app.test_client().post("/auth/backchannel-logout", data={"logout_token": token})
    assert response.json["error_description"] == "rp-backchannel-rpinitlogout-with-nonce"


def test_the_helper_works_without_pytest_too(app):
    fake = FakeProvider().install(app)
    client = app.test_client()
    fake.sign_in(client, roles=["approver"])

    assert client.get("/approve").status_code == 200
