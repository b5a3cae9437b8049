# Secure Access. `make help` lists the targets. The two that matter: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app idp
STAMP := $(VENV)/.installed
ASSETS := idp/static/govuk/govuk-frontend.min.css
HOST ?= 127.0.0.1
PORT ?= 5000
# The test suite runs once per back end; CI sets these to the local PostgreSQL and Redis.
IDP_TEST_DATABASE_URL ?=
IDP_TEST_REDIS_URL ?=
PYTEST_WORKERS ?= 2

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml clients/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11+ is needed ($(PYTHON) not found)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./clients
	touch $@

.PHONY: install
install: $(STAMP) ## Create .venv and install the provider, the client library and dev tools

node_modules/.package-lock.json: package.json
	@command -v npm >/dev/null || { echo "npm is needed for the GOV.UK Frontend assets"; exit 1; }
	npm install --no-audit --no-fund --loglevel=error
	touch $@

$(ASSETS): node_modules/.package-lock.json
	rm -rf idp/static/govuk && mkdir -p idp/static/govuk
	cp node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.css \
	   node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.js idp/static/govuk/
	cp -r node_modules/govuk-frontend/dist/govuk/assets idp/static/govuk/assets

.PHONY: assets
assets: $(ASSETS) ## Install GOV.UK Frontend assets into idp/static/govuk

.PHONY: db
db: install ## Apply migrations and create signing keys (SQLite by default)
	$(FLASK) db upgrade
	$(FLASK) ensure-keys

.PHONY: seed
seed: db ## Load the demo organisations, users and services (safe to repeat)
	$(FLASK) seed-demo

.PHONY: run
run: install assets seed ## Set everything up and serve on http://127.0.0.1:5000 with the worker and the demo services
	@echo
	@echo "  Secure Access is starting on http://$(HOST):$(PORT)"
	@echo "  The demo accounts and services are listed above; the demo services are on"
	@echo "  http://127.0.0.1:5101 to :5106. Press Ctrl+C to stop."
	@echo
	@trap 'kill 0' EXIT INT TERM; \
	  $(FLASK) worker & \
	  $(DEMO) & \
	  $(FLASK) run --host $(HOST) --port $(PORT) --no-reload

# The six demo relying services (clients/demo), pointed at this provider's issuer. Their
# sessions live beside the provider's instance data.
DEMO = cd clients && \
	SECURE_ACCESS_ISSUER="$${IDP_ISSUER:-$${IDP_PUBLIC_BASE_URL:-http://127.0.0.1:5000}}" \
	SECURE_ACCESS_SESSION_DIR="$${IDP_INSTANCE_PATH:-$(CURDIR)/instance}/demo-sessions" \
	PYTHONPATH=. ../$(BIN)/python -m demo

.PHONY: demo
demo: install ## Serve only the six demo services on 127.0.0.1:5101-5106 (needs the provider: make run)
	$(DEMO)

.PHONY: browser
browser: ## Make sure Debian's Chromium is installed for the browser tests
	@test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-liberation >/dev/null; }

.PHONY: lint
lint: install ## ruff check, ruff format --check and mypy (strict for services, OIDC and the client library)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy idp clients/src

.PHONY: test
test: install assets browser lint ## Lint, then the whole suite on SQLite and (if configured) PostgreSQL + Redis
	@echo "== Tests on the embedded back ends (SQLite + in-process store) =="
	IDP_TEST_BACKEND=embedded $(BIN)/pytest -n $(PYTEST_WORKERS) -p no:cacheprovider $(PYTEST_ARGS)
	@if [ -n "$(IDP_TEST_DATABASE_URL)" ] && [ -n "$(IDP_TEST_REDIS_URL)" ]; then \
	  echo "== Tests on PostgreSQL + Redis =="; \
	  IDP_TEST_BACKEND=server IDP_TEST_DATABASE_URL=$(IDP_TEST_DATABASE_URL) IDP_TEST_REDIS_URL=$(IDP_TEST_REDIS_URL) \
	    $(BIN)/pytest -n $(PYTEST_WORKERS) -p no:cacheprovider $(PYTEST_ARGS); \
	else \
	  echo "(IDP_TEST_DATABASE_URL and IDP_TEST_REDIS_URL are not set: skipping the PostgreSQL + Redis pass)"; \
	fi

bench/node/node_modules/.package-lock.json: bench/node/package.json bench/node/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the interoperability test and the token benchmark"; exit 1; }
	npm ci --prefix bench/node --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: bench-node-deps
bench-node-deps: bench/node/node_modules/.package-lock.json ## Install bench/node's packages (openid-client, oidc-provider, undici)

.PHONY: bench
bench: install assets bench-node-deps ## Run the benchmarks in bench/ and write their figures to bench/results/
	$(BIN)/python -m bench.run_all

.PHONY: clean
clean: ## Remove the virtualenv, assets, node_modules and the local SQLite database
	rm -rf $(VENV) node_modules idp/static/govuk instance .pytest_cache
