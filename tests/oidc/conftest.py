"""OIDC fixtures: a signed-up person and a registered relying service.

The relying party (:mod:`tests.oidc.rp`) talks to the real provider through the test client.
The browser tests of the code flow are in ``tests/e2e/test_oidc_code_flow.py``, where the
session-wide browser lives.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from idp.models import User
from tests.factories import make_user
from tests.oidc.rp import RP

EMAIL = "ada@school.example"


@pytest.fixture
def user() -> User:
    return make_user(email=EMAIL)


@pytest.fixture
def rp(client: FlaskClient) -> RP:
    return RP.register(client)
