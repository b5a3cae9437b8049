"""Every page, signed out and signed in: a title of its own, CSRF on every form, the headers.

The list of pages comes from the app's routes, so a new page is checked without anyone
remembering to add it here.
"""

from __future__ import annotations

from bs4 import BeautifulSoup

from tests.factories import SignIn, make_user

# Routes that are not pages for a person (JSON, files, redirects by design).
NOT_PAGES = (
    "/static/",
    "/assets/",
    "/healthz",
    "/readyz",
    "/.well-known/",
    "/sign-in/finish",
    "/token",
    "/userinfo",
    "/revoke",
    "/introspect",
    "/authorize",
    "/logout",
    "/dev/outbox/",
)


def page_paths(app) -> list[str]:
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.arguments:
            continue
        if rule.rule.startswith(NOT_PAGES):
            continue
        paths.append(rule.rule)
    return sorted(set(paths))


def check_page(client, path: str, titles: dict[str, str]) -> None:
    response = client.get(path)
    assert response.status_code < 500, path
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
    assert headers["X-Content-Type-Options"] == "nosniff", path
    if response.status_code != 200 or response.mimetype != "text/html":
        return
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    assert title.endswith("Secure Access \u2013 GOV.UK"), (path, title)  # en dash, per GOV.UK
    assert title not in titles, f"{path} has the same title as {titles.get(title)}: {title}"
    titles[title] = path
    assert soup.find("h1"), path
    assert soup.find("main", id="main-content"), path
    for form in soup.find_all("form"):
        if (form.get("method") or "get").lower() == "post":
            assert form.find("input", attrs={"name": "csrf_token"}), (path, str(form)[:200])


def test_every_page_signed_out(app, client):
    titles: dict[str, str] = {}
    for path in page_paths(app):
        check_page(client, path, titles)
    assert "/sign-in" in titles.values()


def test_every_page_signed_in(app, client):
    make_user(email="ada@school.example")
    SignIn(client).completed("ada@school.example")
    titles: dict[str, str] = {}
    for path in page_paths(app):
        if path in ("/sign-in",):
            continue  # a signed-in person is sent on from the sign-in page
        check_page(client, path, titles)
    assert "/account" in titles.values()
