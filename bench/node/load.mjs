// A bounded HTTP load run for bench/bench_token.py: a fixed number of concurrent connections,
// each with one request in flight at a time (no pipelining), over keep-alive when the server
// keeps the connection open and over a new connection when it closes it (as gunicorn's sync
// workers do after every response: the client then pays a TCP connect per request, which is
// part of that server's cost).
//
//   node bench/node/load.mjs JOB.json   -> one JSON line of figures on stdout
//
// The job: {
//   "url": "http://127.0.0.1:PORT/token",   loopback only (anything else is refused)
//   "method": "POST", "headers": {...}, "body": "...",     one fixed request, or
//   "bodies": ["...", ...],                  each sent exactly once (codes, refresh tokens);
//                                            the run is then that many requests
//   "connections": 8,                        concurrent connections (each one request at a time)
//   "duration": 5,                           seconds (ignored when "bodies" is given)
//   "collect": "refresh_token"               optional: a JSON member of each 2xx response
//                                            body to return
// }
// Figures: requests, seconds (wall clock, first request to last response), rps, latency
// p50/p90/p99/mean/max in ms (each response timed exactly, from sending to the last byte),
// non-2xx count with the first few error bodies, and transport errors. It stops by itself
// after `duration` or the last body, and in any case at a hard time limit.
//
// Why not autocannon: it keeps writing requests into a connection the server is closing and
// then mis-times the retried request, so its figures for a server that closes connections
// (gunicorn sync) are wrong. undici's Pool handles both kinds of server correctly.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import process from 'node:process';

import { Pool } from 'undici';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const url = new URL(job.url);
if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
  console.error(`load.mjs: refusing a non-loopback target ${url.hostname}`);
  process.exit(2);
}

const connections = job.connections || 8;
const durationMs = 1000 * (job.duration || 5);
const hardLimit = setTimeout(() => {
  console.error('load.mjs: hard time limit reached');
  process.exit(3);
}, durationMs + 120_000);

const pool = new Pool(url.origin, {
  connections,
  pipelining: 1,
  keepAliveTimeout: 10_000,
  headersTimeout: 30_000,
  bodyTimeout: 30_000,
});
const path = url.pathname + url.search;
const method = job.method || 'GET';
const headers = job.headers || {};

const times = [];
const collected = [];
const errorBodies = [];
let non2xx = 0;
let errors = 0;
let next = 0;

const started = performance.now();
const deadline = started + durationMs;

async function connection() {
  for (;;) {
    let body;
    if (job.bodies) {
      if (next >= job.bodies.length) return;
      body = job.bodies[next];
      next += 1;
    } else {
      if (performance.now() >= deadline) return;
      body = job.body;
    }
    const sent = performance.now();
    try {
      const response = await pool.request({ path, method, headers, body });
      const text = await response.body.text();
      times.push(performance.now() - sent);
      if (response.statusCode >= 200 && response.statusCode < 300) {
        if (job.collect) {
          try {
            collected.push(JSON.parse(text)[job.collect] ?? null);
          } catch {
            collected.push(null);
          }
        }
      } else {
        non2xx += 1;
        if (errorBodies.length < 3) errorBodies.push(`${response.statusCode} ${text.slice(0, 300)}`);
      }
    } catch (error) {
      errors += 1;
      if (errorBodies.length < 3) errorBodies.push(`transport: ${error.code || error.message}`);
      if (errors > 1000) return;
    }
  }
}

await Promise.all(Array.from({ length: connections }, connection));
const seconds = (performance.now() - started) / 1000;
await pool.close();
clearTimeout(hardLimit);

times.sort((a, b) => a - b);
const percentile = (p) => {
  if (!times.length) return null;
  const at = Math.min(times.length - 1, Math.max(0, Math.ceil((p / 100) * times.length) - 1));
  return Number(times[at].toFixed(3));
};
const mean = times.length ? times.reduce((a, b) => a + b, 0) / times.length : null;

const figures = {
  requests: times.length,
  seconds: Number(seconds.toFixed(3)),
  rps: seconds > 0 ? times.length / seconds : 0,
  latency_ms: {
    p50: percentile(50),
    p90: percentile(90),
    p99: percentile(99),
    mean: mean === null ? null : Number(mean.toFixed(3)),
    max: percentile(100),
  },
  non_2xx: non2xx,
  errors,
  error_bodies: errorBodies,
  connections,
};
if (job.collect) figures.collected = collected;
process.stdout.write(`${JSON.stringify(figures)}\n`);
