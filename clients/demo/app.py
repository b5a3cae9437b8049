"""One demo service: a start page, a signed-in service page and, for some, one more page.

Only the public API of ``secure_access_client`` is used: ``SecureAccess``,
``login_required`` and ``current_user``. The pages are plain, self-contained HTML in the
style of GOV.UK (no external assets).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response, render_template_string

from demo.services import BY_CLIENT_ID, SERVICES, DemoService
from secure_access_client import SecureAccess, current_user, login_required

CSS = """
body{margin:0;font-family:Arial,sans-serif;color:#0b0c0c;line-height:1.35}
header{background:#0b0c0c;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header .service{font-weight:700;font-size:1.2rem;color:#fff;text-decoration:none}
header .who{margin-left:auto}
header form{display:inline}
header button{background:none;border:1px solid #fff;color:#fff;padding:4px 10px;cursor:pointer}
main{max-width:760px;margin:30px auto;padding:0 20px}
h1{font-size:2.2rem;margin:0 0 20px}
.start{display:inline-block;background:#00703c;color:#fff;padding:10px 16px;font-weight:700;
text-decoration:none;box-shadow:0 2px 0 #002d18}
.panel{border-left:10px solid #1d70b8;background:#f3f2f1;padding:12px 16px;margin:0 0 20px}
dl{display:grid;grid-template-columns:200px 1fr;gap:6px 16px}dt{font-weight:700}dd{margin:0}
nav.others{margin-top:40px;border-top:1px solid #b1b4b6;padding-top:10px;font-size:.95rem}
nav.others a{margin-right:14px;color:#1d70b8}
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} - {{ service.name }}</title><style>{{ css }}</style></head>
<body><header><a class="service" href="/">{{ service.name }}</a>
<span>Secure Access demo service</span>
{% if current_user.is_authenticated %}<span class="who">{{ current_user.name }}</span>
{{ secure_access.sign_out_form() }}{% endif %}</header>
<main><h1>{{ title }}</h1>{{ body }}
<nav class="others" aria-label="Other services">Other services:
{% for other in others %}<a href="http://127.0.0.1:{{ other.port }}/service">{{ other.name }}</a>
{% endfor %}</nav></main></body></html>
"""

START = """{% if signed_out %}<div class="panel" role="status"><strong>You have signed out</strong>
of {{ service.name }} and of Secure Access.</div>{% endif %}
<p>{{ service.description }}</p>
{% if service.mfa %}<p>This service asks for a second factor (an authenticator app or a
security key) when you sign in.</p>{% endif %}
<p><a class="start" href="/service">Start now</a></p>"""

SERVICE = """<p>You are signed in to {{ service.name }} with Secure Access.</p>
<dl>
<dt>Name</dt><dd>{{ current_user.name }}</dd>
<dt>Email</dt><dd>{{ current_user.email }}</dd>
<dt>Organisation</dt><dd>{{ current_user.organisation or "None chosen" }}</dd>
{% if current_user.organisation and current_user.organisation.urn %}
<dt>URN</dt><dd>{{ current_user.organisation.urn }}</dd>{% endif %}
{% if current_user.organisation and current_user.organisation.type %}
<dt>Organisation type</dt><dd>{{ current_user.organisation.type }}</dd>{% endif %}
<dt>Your roles here</dt><dd>{{ roles or "None" }}</dd>
<dt>Second factor</dt><dd>{{ "Yes" if current_user.has_mfa else "No" }}
({{ current_user.amr | join(", ") }})</dd>
</dl>
{% if service.special and service.special[1] in current_user.roles %}
<p><a href="{{ service.special[0] }}">{{ service.special[2] }}</a></p>{% endif %}"""


def _page(service: DemoService, title: str, body: str, **context: Any) -> str:
    from flask import current_app

    inner = current_app.jinja_env.from_string(body).render(
        service=service, current_user=current_user, **context
    )
    return render_template_string(
        PAGE,
        title=title,
        body=_markup(inner),
        service=service,
        css=_markup(CSS),
        others=[s for s in SERVICES if s.client_id != service.client_id],
    )


def _markup(text: str) -> Any:
    from markupsafe import Markup

    return Markup(text)  # noqa: S704 (our own templates, already rendered with escaping)


def create_app(client_id: str, **overrides: Any) -> Flask:
    """The demo service ``client_id``. ``overrides`` set ``SECURE_ACCESS_*`` values (tests)."""
    service = BY_CLIENT_ID[client_id]
    base_url = f"http://127.0.0.1:{service.port}"
    app = Flask(f"demo_{client_id.replace('-', '_')}")
    app.config.update(
        SECRET_KEY=f"insecure-demo-flask-key-for-{client_id}",
        SECURE_ACCESS_ISSUER=os.environ.get("SECURE_ACCESS_ISSUER", "http://127.0.0.1:5000"),
        SECURE_ACCESS_CLIENT_ID=client_id,
        SECURE_ACCESS_CLIENT_SECRET=service.secret,
        SECURE_ACCESS_BASE_URL=base_url,
        SECURE_ACCESS_POST_LOGOUT_REDIRECT_URI=base_url + "/",
        SECURE_ACCESS_SERVICE_NAME=service.name,
        SECURE_ACCESS_REDIS_URL=os.environ.get("SECURE_ACCESS_REDIS_URL"),
        SECURE_ACCESS_SESSION_DIR=os.environ.get("SECURE_ACCESS_SESSION_DIR")
        and os.path.join(os.environ["SECURE_ACCESS_SESSION_DIR"], client_id),
    )
    app.config.update({f"SECURE_ACCESS_{k}": v for k, v in overrides.items()})
    sso = SecureAccess(app)
    role_codes = [code for code, _ in service.roles]
    role_names = dict(service.roles)

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.get("/")
    def start() -> str:
        return _page(service, service.name, START, signed_out=sso.just_signed_out)

    @app.get("/service")
    @login_required(roles=role_codes, mfa=service.mfa)
    def service_page() -> str:
        roles = ", ".join(role_names.get(r, r) for r in current_user.roles)
        return _page(service, f"Your {service.name} account", SERVICE, roles=roles)

    if service.special is not None:
        path, role, title = service.special

        @app.get(path, endpoint="special")
        @login_required(roles=[role], mfa=service.mfa)
        def special() -> str:
            org = current_user.organisation
            where = org.name if org else "your organisation"
            return _page(service, title, "<p>{{ where }}: nothing to do today.</p>", where=where)

    return app
