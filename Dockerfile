# syntax=docker/dockerfile:1
# The production image of the provider: `docker build -t secure-access-idp .`
# One image runs every role: the web process (the default command), the worker
# (`flask --app idp worker`) and migrations (`flask --app idp db upgrade`).

# -- GOV.UK Frontend assets (mirrors the Makefile's $(ASSETS) target) ----------------------
FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
# Only the runtime dependency (govuk-frontend); axe-core is for the browser tests.
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error
RUN mkdir -p govuk \
 && cp node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.css \
       node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.js govuk/ \
 && cp -r node_modules/govuk-frontend/dist/govuk/assets govuk/assets

# -- The provider ---------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IDP_ENV=production

RUN groupadd --system --gid 10001 idp \
 && useradd --system --uid 10001 --gid idp --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin idp

WORKDIR /app

# Dependencies first, in their own layer, so a code change does not reinstall them all.
COPY pyproject.toml README.md ./
RUN mkdir idp && touch idp/__init__.py \
 && pip install . \
 && pip uninstall --yes secure-access-idp \
 && rm -rf idp build ./*.egg-info

# The code, the migrations and the assets, then the package itself.
# The source tree stays in /app (the working directory) because create_app() finds
# migrations/ next to the idp package, and granian and flask import from /app first.
COPY idp ./idp
COPY migrations ./migrations
COPY config/granian-logging.json ./config/granian-logging.json
COPY --from=assets /build/govuk ./idp/static/govuk
RUN pip install --no-deps . \
 && rm -rf build ./*.egg-info \
 && mkdir -p /app/instance && chown idp:idp /app/instance

# The code is owned by root and read-only to the process; only instance/ is writable.
USER idp:idp
EXPOSE 8000

# The probe sends the public host name, because the provider answers 400 to any Host
# header it does not know (production does not trust localhost).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.parse, urllib.request as r; host = urllib.parse.urlsplit(os.environ.get('IDP_PUBLIC_BASE_URL', 'http://127.0.0.1')).netloc; r.urlopen(r.Request('http://127.0.0.1:8000/healthz', headers={'Host': host}), timeout=2)"]

# The HTTP server: granian (docs/architecture.md "Serving"). Every setting is an environment
# variable, so a deployment tunes it without a rebuild. Worker processes x blocking threads is
# the concurrency; threads let a worker overlap its PostgreSQL and Redis waits. Keep-alive is
# on (HTTP/1.1); the header buffer is bounded before anything parses it (L02); a worker that
# dies is started again; JSON logs like the app's; no access log (nginx writes it).
ENV GRANIAN_INTERFACE=wsgi \
    GRANIAN_HOST=0.0.0.0 \
    GRANIAN_PORT=8000 \
    GRANIAN_WORKERS=4 \
    GRANIAN_BLOCKING_THREADS=4 \
    GRANIAN_HTTP=1 \
    GRANIAN_WEBSOCKETS=false \
    GRANIAN_HTTP1_BUFFER_SIZE=65536 \
    GRANIAN_HTTP1_HEADER_READ_TIMEOUT=10000 \
    GRANIAN_RESPAWN_FAILED_WORKERS=true \
    GRANIAN_WORKERS_KILL_TIMEOUT=30 \
    GRANIAN_LOG_CONFIG=config/granian-logging.json \
    GRANIAN_FACTORY=true
CMD ["granian", "idp:create_app"]
