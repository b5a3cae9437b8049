// node-oidc-provider, configured like Secure Access, as the token benchmark's peer.
//
//   node --max-old-space-size=512 bench/node/op.mjs   (settings come from the environment)
//
// OP_PORT           loopback port (required); the issuer is http://127.0.0.1:OP_PORT
// OP_WORKERS        worker processes (node:cluster; default 2, like our two gunicorn workers)
// OP_REDIS_URL      shared store for every model (default redis://127.0.0.1:6379/14). With
//                   more than one worker a shared store is required, exactly as ours uses
//                   Redis; it is FLUSHED at start unless OP_REDIS_NO_FLUSH=1 (a database
//                   shared with other work: every key the adapter writes is per-run anyway).
// OP_CLIENT_ID, OP_CLIENT_SECRET, OP_REDIRECT_URI, OP_POST_LOGOUT_REDIRECT_URI: the one
//                   confidential client (client_secret_basic).
//
// Equivalence with Secure Access (docs/benchmarks.md):
// - authorization_code (PKCE S256 required for every client, code lifetime 60 s, single use),
//   refresh_token (rotated on every use), client_credentials with a custom scope (api:read);
// - ID tokens RS256 (2048-bit RSA); access tokens are JWTs (RFC 9068 profile) signed ES256
//   for the resource urn:secure-access:bench:api (resource indicators). oidc-provider's
//   UserInfo accepts only opaque access tokens issued for it, so the UserInfo figures use
//   one of those (an authorization request without `resource`);
// - lifetimes: access token 600 s, ID token 600 s, refresh token 1 day;
// - one fixed account (findAccount), like one user row on our side;
// - every model (codes, grants, sessions, refresh tokens) in Redis through the adapter below,
//   modelled on oidc-provider's example Redis adapter.
//
// Sign-in: `/interaction/:uid` signs the fixed account in and approves every scope at once
// (no form), so a benchmark can obtain authorization codes over HTTP exactly as it does from
// our provider with a signed-in browser session. `/healthz` is a bare node:http handler
// outside oidc-provider: the node floor, for comparison with Flask's.
//
// The primary process generates the signing keys and hands them to the workers, so every
// worker signs with the same keys and serves the same JWKS. Logging: errors only.

import cluster from 'node:cluster';
import crypto from 'node:crypto';
import http from 'node:http';
import process from 'node:process';

import Redis from 'ioredis';
import Provider from 'oidc-provider';

const PORT = Number(process.env.OP_PORT);
const WORKERS = Number(process.env.OP_WORKERS || 2);
const REDIS_URL = process.env.OP_REDIS_URL || 'redis://127.0.0.1:6379/14';
const ISSUER = `http://127.0.0.1:${PORT}`;
const CLIENT_ID = process.env.OP_CLIENT_ID || 'bench-client';
const CLIENT_SECRET = process.env.OP_CLIENT_SECRET || 'bench-client-secret-0123456789abcdefghijklmnop';
const REDIRECT_URI = process.env.OP_REDIRECT_URI || 'http://127.0.0.1:9/callback';
const POST_LOGOUT_REDIRECT_URI = process.env.OP_POST_LOGOUT_REDIRECT_URI || 'http://127.0.0.1:9/';
const RESOURCE = 'urn:secure-access:bench:api';
const API_SCOPE = 'api:read';

const ACCOUNT = {
  sub: 'bench-user-0001',
  email: 'bench@school.example',
  email_verified: true,
  given_name: 'Bench',
  family_name: 'Mark',
  name: 'Bench Mark',
};

if (!Number.isInteger(PORT) || PORT <= 0) {
  console.error('op.mjs: set OP_PORT to a loopback port');
  process.exit(2);
}

// --- the shared store ---------------------------------------------------------------------

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);
const CONSUMABLE = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

function makeAdapter(redis) {
  const grantKeyFor = (id) => `grant:${id}`;
  const sessionUidKeyFor = (id) => `sessionUid:${id}`;
  const userCodeKeyFor = (userCode) => `userCode:${userCode}`;

  return class RedisAdapter {
    constructor(name) {
      this.name = name;
    }

    key(id) {
      return `${this.name}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      const multi = redis.multi();
      if (CONSUMABLE.has(this.name)) {
        multi.hset(key, { payload: JSON.stringify(payload) });
      } else {
        multi.set(key, JSON.stringify(payload));
      }
      if (expiresIn) multi.expire(key, expiresIn);
      if (GRANTABLE.has(this.name) && payload.grantId) {
        const grantKey = grantKeyFor(payload.grantId);
        multi.rpush(grantKey, key);
        const ttl = await redis.ttl(grantKey);
        if (expiresIn > ttl) multi.expire(grantKey, expiresIn);
      }
      if (payload.userCode) {
        multi.set(userCodeKeyFor(payload.userCode), id);
        if (expiresIn) multi.expire(userCodeKeyFor(payload.userCode), expiresIn);
      }
      if (payload.uid) {
        multi.set(sessionUidKeyFor(payload.uid), id);
        if (expiresIn) multi.expire(sessionUidKeyFor(payload.uid), expiresIn);
      }
      await multi.exec();
    }

    async find(id) {
      const data = CONSUMABLE.has(this.name)
        ? await redis.hgetall(this.key(id))
        : await redis.get(this.key(id));
      if (!data || (typeof data === 'object' && Object.keys(data).length === 0)) return undefined;
      if (typeof data === 'string') return JSON.parse(data);
      const { payload, ...rest } = data;
      return { ...rest, ...JSON.parse(payload) };
    }

    async findByUid(uid) {
      const id = await redis.get(sessionUidKeyFor(uid));
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode) {
      const id = await redis.get(userCodeKeyFor(userCode));
      return id ? this.find(id) : undefined;
    }

    async destroy(id) {
      await redis.del(this.key(id));
    }

    async revokeByGrantId(grantId) {
      const multi = redis.multi();
      const tokens = await redis.lrange(grantKeyFor(grantId), 0, -1);
      for (const token of tokens) multi.del(token);
      multi.del(grantKeyFor(grantId));
      await multi.exec();
    }

    async consume(id) {
      await redis.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
    }
  };
}

// --- the provider ---------------------------------------------------------------------------

function configuration(jwks, redis) {
  return {
    adapter: makeAdapter(redis),
    responseTypes: ['code'],
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
        response_types: ['code'],
        redirect_uris: [REDIRECT_URI],
        post_logout_redirect_uris: [POST_LOGOUT_REDIRECT_URI],
        id_token_signed_response_alg: 'RS256',
        scope: `openid offline_access profile email ${API_SCOPE}`,
      },
    ],
    jwks,
    cookies: { keys: ['bench-cookie-signing-key-not-a-secret-0123456789'] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', API_SCOPE],
    async findAccount(_ctx, sub) {
      if (sub !== ACCOUNT.sub) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { ...ACCOUNT };
        },
      };
    },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      ClientCredentials: 600,
      IdToken: 600,
      RefreshToken: 86400,
      Grant: 86400,
      Interaction: 600,
      Session: 86400,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // client_credentials without `resource` gets the API; the code flow's tokens use the
        // resource granted at authorization.
        async defaultResource(ctx, _client, oneOf) {
          if (oneOf) return oneOf;
          return ctx.oidc.params.grant_type === 'client_credentials' ? RESOURCE : undefined;
        },
        async useGrantedResource() {
          return true;
        },
        async getResourceServerInfo(_ctx, resourceIndicator) {
          if (resourceIndicator !== RESOURCE) throw new Provider.errors.InvalidTarget();
          return {
            scope: API_SCOPE,
            audience: RESOURCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256'],
    },
  };
}

// Signs the fixed account in and approves whatever was asked, at once.
async function finishInteraction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  const result = {};
  if (prompt.name === 'login' || !session) {
    result.login = { accountId: ACCOUNT.sub };
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: ACCOUNT.sub, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  const resources = [].concat(params.resource || []);
  for (const resource of resources) grant.addResourceScope(resource, API_SCOPE);
  result.consent = { grantId: await grant.save() };
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

async function serve(jwks) {
  const redis = new Redis(REDIS_URL, { enableAutoPipelining: true });
  const provider = new Provider(ISSUER, configuration(jwks, redis));
  provider.on('server_error', (_ctx, error) => console.error('op.mjs server_error:', error));
  const callback = provider.callback();
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      const body = '{"status":"ok"}';
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
      res.end(body);
      return;
    }
    if (req.url.startsWith('/interaction/')) {
      finishInteraction(provider, req, res).catch((error) => {
        console.error('op.mjs interaction:', error);
        res.statusCode = 500;
        res.end();
      });
      return;
    }
    callback(req, res);
  });
  server.keepAliveTimeout = 5000; // as gunicorn --keep-alive 5
  server.listen(PORT, '127.0.0.1');
}

function generateKeys() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return {
    keys: [
      { ...rsa.export({ format: 'jwk' }), kid: 'rs256-bench', alg: 'RS256', use: 'sig' },
      { ...ec.export({ format: 'jwk' }), kid: 'es256-bench', alg: 'ES256', use: 'sig' },
    ],
  };
}

if (cluster.isPrimary) {
  const jwks = generateKeys();
  const redis = new Redis(REDIS_URL);
  if (process.env.OP_REDIS_NO_FLUSH !== '1') await redis.flushdb();
  redis.disconnect();
  if (WORKERS <= 1) {
    await serve(jwks);
    console.log(JSON.stringify({ ready: true, issuer: ISSUER, workers: 1 }));
  } else {
    let listening = 0;
    const stopAll = () => {
      for (const worker of Object.values(cluster.workers)) worker.kill();
      process.exit(0);
    };
    process.on('SIGTERM', stopAll);
    process.on('SIGINT', stopAll);
    for (let i = 0; i < WORKERS; i += 1) {
      const worker = cluster.fork({ OP_JWKS: JSON.stringify(jwks) });
      worker.on('listening', () => {
        listening += 1;
        if (listening === WORKERS) {
          console.log(JSON.stringify({ ready: true, issuer: ISSUER, workers: WORKERS }));
        }
      });
      worker.on('exit', (code, signal) => {
        if (code) console.error(`op.mjs: worker exited with ${code ?? signal}`);
      });
    }
  }
} else {
  await serve(JSON.parse(process.env.OP_JWKS));
}
