// A relying party built on openid-client (a certified RP library we did not write), for the
// interoperability test in tests/interop. It signs a person in with the authorization code
// flow + PKCE S256 against an OpenID provider, then uses what it got.
//
//   RP_CLIENT_SECRET=... node bench/node/rp.mjs --issuer http://127.0.0.1:PORT \
//       --client-id interop-rp [--redirect-uri http://127.0.0.1:PORT2/callback] \
//       [--post-logout-redirect-uri http://127.0.0.1:PORT2/signed-out] \
//       [--scope "openid profile email offline_access"] [--prompt consent] [--timeout 120]
//
// (--client-secret works too; the environment keeps the secret out of `ps`.) Without
// --redirect-uri it listens on a free loopback port and announces the URIs it uses.
//
// It writes one JSON object per line on stdout, one per step, so a test can follow along:
//   {"step":"ready", "authorization_url", "redirect_uri", "post_logout_redirect_uri", "issuer"}
//       discovery done (issuer pinned: openid-client refuses metadata whose issuer differs),
//       authorization URL built with PKCE S256, state and nonce; open it in a browser
//   {"step":"callback", "iss"}            the browser came back with a code
//   {"step":"tokens", "claims", ...}      code exchanged (client_secret_basic); the ID token was
//                                         validated by openid-client (signature from the JWKS,
//                                         iss, aud, exp, iat, nonce; RFC 9207 iss checked)
//   {"step":"userinfo", "userinfo"}       UserInfo called with the access token (sub checked)
//   {"step":"refresh", ...}               a refresh_token grant, and UserInfo with its token
//   {"step":"end_session_url", "url", "state"}  RP-Initiated Logout URL: id_token_hint,
//                                         post_logout_redirect_uri and state; open it
//   {"step":"signed_out", "state", "state_matches"}  the provider sent the browser back
//   {"step":"error", "message"}           anything failed; the exit status is then 1
// It exits 0 after "signed_out", or with --no-logout after "end_session_url".

import http from 'node:http';
import process from 'node:process';
import { parseArgs } from 'node:util';

import * as client from 'openid-client';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string' },
    'post-logout-redirect-uri': { type: 'string' },
    scope: { type: 'string', default: 'openid profile email offline_access' },
    prompt: { type: 'string' },
    'no-logout': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '120' },
  },
});

function emit(step, details = {}) {
  process.stdout.write(`${JSON.stringify({ step, ...details })}\n`);
}

function fail(message) {
  emit('error', { message });
  console.error(`rp.mjs: ${message}`);
  process.exit(1);
}

function describe(error) {
  const parts = [error?.message || String(error)];
  if (error?.code) parts.push(`code=${error.code}`);
  if (error?.error) parts.push(`error=${error.error}`);
  if (error?.error_description) parts.push(`error_description=${error.error_description}`);
  if (error?.status) parts.push(`status=${error.status}`);
  if (error?.cause && typeof error.cause === 'object') {
    parts.push(`cause=${JSON.stringify(error.cause).slice(0, 500)}`);
  }
  return parts.join('; ');
}

function isLoopback(url) {
  return ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

const secret = args['client-secret'] || process.env.RP_CLIENT_SECRET;
if (!args.issuer || !args['client-id'] || !secret) {
  fail('--issuer, --client-id and a secret (RP_CLIENT_SECRET or --client-secret) are required');
}
const issuer = new URL(args.issuer);
const timeoutSeconds = Number(args.timeout);
const deadline = setTimeout(
  () => fail(`gave up after ${timeoutSeconds} s (no browser came back?)`),
  timeoutSeconds * 1000,
);

const requested = args['redirect-uri'] ? new URL(args['redirect-uri']) : null;
if (requested && !isLoopback(requested)) fail('--redirect-uri must be a loopback URL');

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(requested ? Number(requested.port) : 0, '127.0.0.1', resolve);
});
const base = `http://127.0.0.1:${server.address().port}`;
const redirectUri = requested ? requested.href : `${base}/callback`;
const postLogoutRedirectUri = args['post-logout-redirect-uri'] || `${base}/signed-out`;

let config;
try {
  // openid-client requires https unless told otherwise; allow http for a loopback issuer only.
  const execute = issuer.protocol === 'http:' && isLoopback(issuer) ? [client.allowInsecureRequests] : [];
  config = await client.discovery(
    issuer,
    args['client-id'],
    undefined,
    client.ClientSecretBasic(secret),
    { execute },
  );
} catch (error) {
  fail(`discovery failed: ${describe(error)}`);
}

const codeVerifier = client.randomPKCECodeVerifier();
const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
const state = client.randomState();
const nonce = client.randomNonce();
const logoutState = client.randomState();
const parameters = {
  redirect_uri: redirectUri,
  scope: args.scope,
  code_challenge: codeChallenge,
  code_challenge_method: 'S256',
  state,
  nonce,
};
if (args.prompt) parameters.prompt = args.prompt;
const authorizationUrl = client.buildAuthorizationUrl(config, parameters);

function page(res, status, title) {
  const body = `<!doctype html><html lang="en"><title>${title}</title><h1>${title}</h1></html>`;
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(body);
}

function claimsOf(idToken) {
  const [header, payload] = idToken.split('.').slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
  return { header, payload };
}

async function onCallback(req, res) {
  const currentUrl = new URL(req.url, redirectUri);
  emit('callback', { iss: currentUrl.searchParams.get('iss'), has_code: currentUrl.searchParams.has('code') });

  const tokens = await client.authorizationCodeGrant(config, currentUrl, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  emit('tokens', {
    claims,
    id_token_alg: claimsOf(tokens.id_token).header.alg,
    access_token_alg: tokens.access_token.split('.').length === 3
      ? claimsOf(tokens.access_token).header.alg : null,
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    expires_in: tokens.expiresIn() ?? null,
    has_refresh_token: Boolean(tokens.refresh_token),
  });

  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  emit('userinfo', { userinfo });

  if (!tokens.refresh_token) throw new Error('the token response has no refresh_token');
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const refreshedUserinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
  emit('refresh', {
    has_access_token: Boolean(refreshed.access_token),
    access_token_changed: refreshed.access_token !== tokens.access_token,
    refresh_token_rotated: Boolean(refreshed.refresh_token)
      && refreshed.refresh_token !== tokens.refresh_token,
    expires_in: refreshed.expiresIn() ?? null,
    id_token_claims: refreshed.id_token ? refreshed.claims() : null,
    userinfo_sub: refreshedUserinfo.sub,
  });

  const endSessionUrl = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: postLogoutRedirectUri,
    state: logoutState,
  });
  emit('end_session_url', { url: endSessionUrl.href, state: logoutState });
  page(res, 200, 'Signed in to the interoperability test service');
  if (args['no-logout']) finish(0);
}

function onSignedOut(req, res) {
  const returned = new URL(req.url, postLogoutRedirectUri).searchParams.get('state');
  const matches = returned === logoutState;
  emit('signed_out', { state: returned, state_matches: matches });
  page(res, 200, 'Signed out of the interoperability test service');
  if (!matches) fail('the post-logout redirect carried the wrong state');
  finish(0);
}

function finish(status) {
  clearTimeout(deadline);
  server.close();
  server.closeAllConnections();
  process.exitCode = status;
}

let handled = false;
server.on('request', (req, res) => {
  const path = new URL(req.url, base).pathname;
  if (path === new URL(redirectUri).pathname && !handled) {
    handled = true;
    onCallback(req, res).catch((error) => {
      page(res, 500, 'The interoperability test service failed');
      fail(`callback: ${describe(error)}`);
    });
  } else if (path === new URL(postLogoutRedirectUri).pathname) {
    onSignedOut(req, res);
  } else {
    page(res, 404, 'Not found');
  }
});

emit('ready', {
  issuer: config.serverMetadata().issuer,
  authorization_url: authorizationUrl.href,
  redirect_uri: redirectUri,
  post_logout_redirect_uri: postLogoutRedirectUri,
  end_session_endpoint: config.serverMetadata().end_session_endpoint ?? null,
});
