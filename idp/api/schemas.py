"""Reading API requests: a capped JSON body validated by pydantic, and bounded query numbers.

Bad input is a 400 with one ``{"field", "message"}`` per problem, never a 500 and never a
half-written record: the body is capped (:data:`MAX_BODY_BYTES`) before it is parsed, must be
``application/json`` (else 415), must be one JSON object (``NaN`` and ``Infinity`` are not
JSON), and unknown fields are refused (``extra="forbid"``) so a typo is never silently
ignored. Types are strict (no ``1`` for ``"1"``). Text may not hold control characters or
unpaired surrogates, which no name or address contains and which some databases cannot store.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Annotated, Any, Final, TypeVar

from flask import request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from idp.api.problems import ApiProblem
from idp.services.service_api import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE, MAX_ROLES

#: An invitation is well under 1 KB; 8 KB leaves room and bounds the work of parsing it.
MAX_BODY_BYTES: Final = 8192
_NUMBER: Final = re.compile(r"[0-9]{1,9}")

M = TypeVar("M", bound=BaseModel)


def _plain_text(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("must not contain control characters")
    return value


PlainText = Annotated[str, AfterValidator(_plain_text)]


class InvitationBody(BaseModel):
    """``POST /api/v1/invitations`` (idp/api/openapi.json ``InvitationRequest``)."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    email: Annotated[PlainText, Field(min_length=1, max_length=320)]
    given_name: Annotated[PlainText, Field(min_length=1, max_length=100)]
    family_name: Annotated[PlainText, Field(min_length=1, max_length=100)]
    organisation_id: Annotated[PlainText, Field(min_length=1, max_length=64)]
    roles: Annotated[
        list[Annotated[PlainText, Field(min_length=1, max_length=64)]],
        Field(max_length=MAX_ROLES),
    ] = []


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def json_body(model: type[M]) -> M:
    """The request body as ``model``, or an :class:`ApiProblem` (400, 413 or 415)."""
    if request.mimetype != "application/json":
        raise ApiProblem(415, "Send the body as application/json.")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ApiProblem(413, f"The body must be at most {MAX_BODY_BYTES} bytes.")
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiProblem(413, f"The body must be at most {MAX_BODY_BYTES} bytes.")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ApiProblem(400, "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiProblem(
            400, "The body must be a JSON object.", errors=[("body", "Send an object")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = [
            (_field(e["loc"]), str(e["msg"]))
            for e in error.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise ApiProblem(400, "Some fields are not valid.", errors=problems) from None


def _number(name: str, default: int, low: int, high: int) -> tuple[int, str | None]:
    raw = request.args.get(name)
    if raw is None:
        return default, None
    if not _NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        return default, f"Must be a whole number from {low} to {high}"
    return int(raw), None


def page_args() -> tuple[int, int]:
    """``page`` (1 to :data:`MAX_PAGE`) and ``per_page`` (1 to :data:`MAX_PER_PAGE`)."""
    page, page_problem = _number("page", 1, 1, MAX_PAGE)
    per_page, per_page_problem = _number("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    problems = [
        (name, problem)
        for name, problem in (("page", page_problem), ("per_page", per_page_problem))
        if problem
    ]
    if problems:
        raise ApiProblem(400, "Some query parameters are not valid.", errors=problems)
    return page, per_page
