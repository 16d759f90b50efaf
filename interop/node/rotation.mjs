// Verification across a key rotation with the caches services use: jose's
// createRemoteJWKSet and Auth0's express-oauth2-jwt-bearer, each created
// once with the cache settings docs/verifying-tokens.md gives, verify a
// token signed before a rotation and one signed after it (and the first
// again, its key now retired but still published), and refuse a forgery.
// Usage: ISSUER=... AUDIENCE=api CLIENTS='[{"id":..,"secret":..,"alg":..}]'
//        ADMIN='{"id":..,"secret":..}' node rotation.mjs
import { once } from 'node:events';
import * as jose from 'jose';
import express from 'express';
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer';

const { ISSUER: issuer, AUDIENCE: audience } = process.env;
const clients = JSON.parse(process.env.CLIENTS);
const admin = JSON.parse(process.env.ADMIN);
const maxAge = 300_000; // Signet's jwks.max_age (300 s by default), in ms

async function token(c, aud, scope) {
  const r = await fetch(issuer + '/oauth2/token', {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from(`${c.id}:${c.secret}`).toString('base64') },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope, audience: aud }),
  });
  if (!r.ok) throw new Error(`token for ${c.id}: ${r.status} ${await r.text()}`);
  return (await r.json()).access_token;
}

async function rotate() {
  const t = await token(admin, 'signet-admin', 'signet:admin');
  const r = await fetch(issuer + '/admin/keys/rotate?force=true', {
    method: 'POST', headers: { authorization: 'Bearer ' + t, 'content-type': 'application/json' }, body: '{}',
  });
  if (!r.ok) throw new Error(`rotate: ${r.status} ${await r.text()}`);
}

const jwks = jose.createRemoteJWKSet(new URL(issuer + '/.well-known/jwks.json'), { cacheMaxAge: maxAge, cooldownDuration: 10_000 });

const app = express();
app.get('/api',
  auth({ issuerBaseURL: issuer, audience, strict: true, cacheMaxAge: maxAge }), // strict: RFC 9068 (typ at+jwt, required claims)
  requiredScopes('load'),
  (req, res) => res.json({ sub: req.auth.payload.sub }));
// Refusals answer with their status, without express's stack-trace log.
app.use((err, req, res, next) => res.status(err.status || 500).set(err.headers || {}).end());
const server = app.listen(0, '127.0.0.1');
await once(server, 'listening');
const api = `http://127.0.0.1:${server.address().port}/api`;

async function callAPI(tok) {
  const r = await fetch(api, { headers: { authorization: 'Bearer ' + tok } });
  await r.text();
  return r.status;
}

async function check(label, tok, c) {
  const { payload } = await jose.jwtVerify(tok, jwks, { issuer, audience, typ: 'at+jwt', algorithms: [c.alg] });
  if (payload.client_id !== c.id) throw new Error(`jose ${label}: client_id ${payload.client_id}`);
  const status = await callAPI(tok);
  if (status !== 200) throw new Error(`express-oauth2-jwt-bearer ${label}: status ${status}`);
}

const kid = (t) => jose.decodeProtectedHeader(t).kid;
let failures = 0;
try {
  const before = {};
  for (const c of clients) {
    before[c.alg] = await token(c, audience, 'load');
    await check('before rotation', before[c.alg], c);
  }
  await rotate();
  for (const c of clients) {
    const after = await token(c, audience, 'load');
    if (kid(after) === kid(before[c.alg])) throw new Error(`${c.alg}: the rotation did not change the signing key`);
    try {
      await check('after rotation', after, c);
      await check('before rotation, retired key', before[c.alg], c);
      const parts = after.split('.');
      const claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
      const forged = [parts[0], Buffer.from(JSON.stringify({ ...claims, sub: 'admin' })).toString('base64url'), parts[2]].join('.');
      if (await callAPI(forged) !== 401) throw new Error('express-oauth2-jwt-bearer accepted a modified payload');
      console.log(`ok ${c.alg}: jose and express-oauth2-jwt-bearer verified kid ${kid(before[c.alg])} before and kid ${kid(after)} after a rotation`);
    } catch (e) {
      failures++;
      console.error(`FAIL ${c.alg}: ${e.stack || e}`);
    }
  }
} catch (e) {
  failures++;
  console.error(`FAIL: ${e.stack || e}`);
} finally {
  server.close();
}
process.exit(failures ? 1 : 0);
