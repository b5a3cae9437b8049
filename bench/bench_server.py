"""What the HTTP server costs: the same bare WSGI app under each server we could deploy.

Why (issue 4): a token grant has about 0.35 ms of CPU to match node-oidc-provider, so the
server's own share per request decides what is left for the protocol. The app is
:mod:`bench.bare_wsgi` (no framework); the load is ``bench/node/load.mjs`` at the same
concurrency for every server; the figures are requests per second, p50/p99 latency and the
server processes' CPU time per request, the median of alternating rounds.

    .venv/bin/python -m bench.bench_server [--connections 8] [--duration 5] [--rounds 3]

Writes bench/results/server.json and bench/results/server.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from typing import Any

from bench.bench_token import (
    ROOT,
    VENV_BIN,
    cpu_seconds,
    ensure_node_tooling,
    free_port,
    process_tree,
    run_load,
    stop,
    wait_for_http,
)
from bench.common import write_figures

SERVERS = {
    "granian (production)": lambda port: [
        str(VENV_BIN / "granian"),
        "--interface",
        "wsgi",
        "--workers",
        "2",
        "--blocking-threads",
        "4",
        "--no-ws",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "bench.bare_wsgi:app",
    ],
    "gunicorn gthread (4 threads)": lambda port: [
        str(VENV_BIN / "gunicorn"),
        "--workers",
        "2",
        "--worker-class",
        "gthread",
        "--threads",
        "4",
        "--keep-alive",
        "5",
        "-b",
        f"127.0.0.1:{port}",
        "bench.bare_wsgi:app",
    ],
    "gunicorn sync": lambda port: [
        str(VENV_BIN / "gunicorn"),
        "--workers",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "bench.bare_wsgi:app",
    ],
}


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    process = subprocess.Popen(
        SERVERS[name](port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", 60, process)
        pids = process_tree(process.pid)
        job = {"url": f"http://127.0.0.1:{port}/healthz", "connections": args.connections}
        run_load({**job, "duration": 1})  # warm-up
        before = cpu_seconds(pids)
        figures = run_load({**job, "duration": args.duration})
        figures["cpu_ms_per_request"] = (
            (cpu_seconds(pids) - before) * 1000 / max(figures["requests"], 1)
        )
        return figures
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_node_tooling()
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
    for i in range(args.rounds):
        order = list(SERVERS) if i % 2 == 0 else list(reversed(SERVERS))
        for name in order:
            rounds[name].append(measure(name, args))
    results = {}
    for name, runs in rounds.items():
        median = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
        results[name] = {
            "rps": round(median["rps"], 1),
            "p50_ms": median["latency_ms"]["p50"],
            "p99_ms": median["latency_ms"]["p99"],
            "cpu_ms_per_request": round(
                statistics.median(r["cpu_ms_per_request"] for r in runs), 3
            ),
            "rounds_rps": [round(r["rps"], 1) for r in runs],
        }
    granian = results["granian (production)"]
    lines = [
        "# HTTP server floor: one bare WSGI app under each server",
        "",
        f"`python -m bench.bench_server`: 2 worker processes each, {args.connections} "
        f"connections from bench/node/load.mjs, {args.rounds} alternating rounds of "
        f"{args.duration} s, median round shown. Load average now: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "",
        "| Server | requests/s | p50 / p99 ms | CPU ms per request | CPU vs granian |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        ratio = r["cpu_ms_per_request"] / max(granian["cpu_ms_per_request"], 1e-9)
        lines.append(
            f"| {name} | {r['rps']:,.0f} | {r['p50_ms']} / {r['p99_ms']} | "
            f"{r['cpu_ms_per_request']:.3f} | {ratio:.1f}x |"
        )
    lines += [
        "",
        "node-oidc-provider's bare node:http /healthz is measured in bench/results/token.md "
        "(server floor row), with the same load generator.",
    ]
    figures = {"results": results, "connections": args.connections}
    write_figures("server", figures, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
