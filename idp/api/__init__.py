"""The service-to-service API (``/api/v1``): JSON for relying services, never for browsers.

Issue 7. A relying service gets an access token with the client credentials grant
(RFC 6749 §4.4; a JWT access token, RFC 9068) and the API scopes it registered
(``users:read``, ``users:invite``: :data:`idp.services.clients.API_SCOPES`), and calls:

- ``GET /api/v1/users/{sub}``: a person and their organisations, with this service's roles;
- ``GET /api/v1/organisations/{id}/users``: the people with access to it at an organisation;
- ``POST /api/v1/invitations``: invite a person to this service at an organisation.

The modules: :mod:`~idp.api.views` (the routes, thin), :mod:`~idp.api.auth` (the bearer token,
RFC 6750), :mod:`~idp.api.problems` (every error as RFC 9457 problem details),
:mod:`~idp.api.schemas` (request validation). The rules are in
:mod:`idp.services.service_api`. The contract is ``idp/api/openapi.json`` (served at
``/api/v1/openapi.json``) and ``docs/api.md``.
"""
