"""The API fuzzed from its own OpenAPI document (issue 7 Must show; DESIGN §9 "every endpoint
survives fuzzing with no 500").

Schemathesis loads the document the app serves, in-process over WSGI, and generates requests
for every operation: the document's examples, valid requests (positive) and requests that
break the schema (negative), each sent with a real client-credentials token from /token. The
seeded person and organisation are the ones the document's examples name, so the happy paths
are reached too. Every response must be no server error, with a documented status code,
content type, headers and a body that matches its schema.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from idp.api.views import OPENAPI_DOCUMENT
from idp.extensions import db
from tests.api.conftest import give_access, make_organisation
from tests.factories import make_user

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _examples() -> tuple[str, str, dict]:
    document = json.loads(OPENAPI_DOCUMENT.read_text())
    user = document["components"]["schemas"]["User"]["example"]
    return user["sub"], user["organisations"][0]["id"], user


@pytest.fixture
def seeded(caller, local_authority):
    """The person and school the document's examples name, with access to the caller."""
    sub, org_id, example = _examples()
    school = make_organisation(
        example["organisations"][0]["name"],
        public_id=org_id,
        urn=example["organisations"][0]["urn"],
        local_authority_id=local_authority.id,
    )
    person = make_user(
        email=example["email"], given_name=example["given_name"], family_name=example["family_name"]
    )
    person.sub = sub
    db.session.commit()
    give_access(person, school, caller.service, ("submitter",))
    return person


@pytest.mark.parametrize("operation_id", ["getUser", "listOrganisationUsers", "invite"])
def test_the_api_conforms_to_its_document_under_fuzzing(app, caller, seeded, operation_id):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema.find_operation_by_id(operation_id)
    headers = caller.headers()
    strategies = [
        *schema.get_strategies_from_examples(operation),
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    statuses: set[int] = set()
    for strategy in strategies:

        @FUZZ
        @given(case=strategy)
        def run(case) -> None:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            statuses.add(response.status_code)

        run()
    # The examples reach the seeded data, so success is fuzzed as well as refusal.
    assert statuses & {200, 201}, statuses
