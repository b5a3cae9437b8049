"""Serve demo services: ``python -m demo`` (all six) or ``python -m demo collect teacher-pensions``.

Run from ``clients/`` (``make demo`` does). ``SECURE_ACCESS_ISSUER`` says where Secure Access is
(default http://127.0.0.1:5000). Each service gets its own port (5101-5106) and its own thread.
Stop with Ctrl+C.
"""

from __future__ import annotations

import logging
import sys
import threading

from werkzeug.serving import make_server

from demo.app import create_app
from demo.services import BY_CLIENT_ID, SERVICES


def main(argv: list[str]) -> int:
    chosen = argv or [s.client_id for s in SERVICES]
    unknown = [c for c in chosen if c not in BY_CLIENT_ID]
    if unknown:
        print(f"Unknown demo services: {', '.join(unknown)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    servers = []
    for client_id in chosen:
        service = BY_CLIENT_ID[client_id]
        try:
            server = make_server("127.0.0.1", service.port, create_app(client_id), threaded=True)
        except OSError as error:  # e.g. the port is taken: the other services still start
            print(f"  {service.name:<32} not started: port {service.port}: {error}", flush=True)
            continue
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"  {service.name:<32} http://127.0.0.1:{service.port}/", flush=True)
    if not servers:
        return 1
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
