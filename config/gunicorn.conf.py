"""gunicorn settings for production: threaded workers, keep-alive, and JSON logs like the app's.

Used by the Dockerfile (`gunicorn --config config/gunicorn.conf.py 'idp:create_app()'`).
Values come from the environment so a deployment can tune them without a rebuild.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
# Threaded workers, because they keep connections alive: gunicorn's sync worker closes the
# connection after every response, so each request pays a TCP set-up (and, behind a TLS
# proxy without upstream keep-alive, a handshake). Measured with bench/bench_token.py on this
# machine (issue 4), same run, 2 workers, 8 connections: gthread used about half the CPU per
# /healthz request (0.45-0.58 ms against 0.9-1.15 ms) and 3.0-4.5 ms per client_credentials
# grant against 4.1-4.6 ms, and served several times the requests per second. Threads also let
# one worker overlap its PostgreSQL and Redis waits. Pair with upstream keep-alive in nginx.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 5
timeout = 30
graceful_timeout = 30
# Bound request line and headers before anything parses them (L02).
limit_request_line = 8190
limit_request_field_size = 8190
accesslog = None  # nginx writes the access log; the app logs what matters with request ids

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "asctime": "time"},
        }
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
