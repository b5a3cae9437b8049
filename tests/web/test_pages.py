"""The start page and error pages: GOV.UK layout, plain English, security headers on all."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup


def test_start_page_has_title_and_heading(client):
    response = client.get("/")
    assert response.status_code == 200
    soup = BeautifulSoup(response.data, "html.parser")
    assert soup.title.string.strip().startswith("Sign in to your school's services")
    assert soup.h1.get_text(strip=True) == "Sign in to your school's services"
    assert soup.find("link", href="/static/govuk/govuk-frontend.min.css")


@pytest.mark.parametrize("path", ["/", "/no-such-page", "/readyz", "/healthz"])
def test_security_headers_on_every_response(client, path):
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Request-Id"]


def test_inline_script_carries_the_csp_nonce(client):
    response = client.get("/")
    nonce = response.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    soup = BeautifulSoup(response.data, "html.parser")
    inline = [s for s in soup.find_all("script") if not s.get("src")]
    assert inline
    assert all(s.get("nonce") == nonce for s in inline)


def test_not_found_page_is_plain_english(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    soup = BeautifulSoup(response.data, "html.parser")
    assert soup.h1.get_text(strip=True) == "Page not found"
    assert "Traceback" not in response.get_data(as_text=True)


def test_method_not_allowed_page(client):
    response = client.post("/healthz")
    assert response.status_code == 405
    assert b"This page cannot be used that way" in response.data


def test_json_clients_get_json_errors(client):
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "status": 404}


def test_unknown_host_is_refused(client):
    response = client.get("/", headers={"Host": "evil.example"})
    assert response.status_code == 400


def test_oversized_body_is_refused_before_parsing(client, settings):
    response = client.post(
        "/",
        data=b"x" * (settings.max_request_bytes + 1),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413


def test_request_id_is_kept_from_a_proxy_when_it_looks_safe(client):
    assert (
        client.get("/", headers={"X-Request-Id": "abcdef123456"}).headers["X-Request-Id"]
        == "abcdef123456"
    )
    assert (
        client.get("/", headers={"X-Request-Id": "<script>"}).headers["X-Request-Id"] != "<script>"
    )
