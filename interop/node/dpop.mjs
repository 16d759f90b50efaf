// Cross-check Signet's DPoP (RFC 9449) with openid-client's own DPoP
// support and jose: a client_credentials token bound to openid-client's key
// (token_type DPoP, cnf.jkt = jose's thumbprint of that key), the admin API
// called with openid-client's DPoP-protected resource request, and the same
// token refused as Bearer.
// Usage: ISSUER=... AUDIENCE=api CLIENTS='[{"id":..,"secret":..,"alg":..}]'
//        ADMIN='{"id":..,"secret":..}' node dpop.mjs
import * as client from 'openid-client';
import * as jose from 'jose';

const issuer = process.env.ISSUER;
const audience = process.env.AUDIENCE;
const clients = JSON.parse(process.env.CLIENTS);
const admin = JSON.parse(process.env.ADMIN);
const jwks = jose.createRemoteJWKSet(new URL(issuer + '/.well-known/jwks.json'));

let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (e) {
    failures++;
    console.error(`FAIL ${name}: ${e.stack || e}`);
  }
}

async function boundToken(id, secret, alg, params) {
  const config = await client.discovery(new URL(issuer), id, secret, undefined, {
    execute: [client.allowInsecureRequests], // loopback http in this check only
  });
  const keys = await client.randomDPoPKeyPair(alg);
  const DPoP = client.getDPoPHandle(config, keys);
  const got = await client.clientCredentialsGrant(config, params, { DPoP });
  if (got.token_type !== 'dpop') throw new Error(`token_type ${got.token_type}, want dpop`);
  const { payload } = await jose.jwtVerify(got.access_token, jwks, { issuer, typ: 'at+jwt' });
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keys.publicKey), 'sha256');
  if (payload.cnf?.jkt !== jkt) throw new Error(`cnf ${JSON.stringify(payload.cnf)}, want jkt ${jkt}`);
  return { config, DPoP, token: got.access_token };
}

for (const alg of ['ES256', 'PS256', 'EdDSA']) {
  await check(`client_credentials with a ${alg} DPoP key`, async () => {
    const c = clients.find((c) => c.alg === 'ES256');
    const { config } = await boundToken(c.id, c.secret, alg, { scope: 'load', audience });
    const algs = config.serverMetadata().dpop_signing_alg_values_supported ?? [];
    if (!algs.includes(alg)) throw new Error(`dpop_signing_alg_values_supported ${JSON.stringify(algs)}`);
  });
}

await check('admin API with a DPoP-bound token, refused as Bearer', async () => {
  const { config, DPoP, token } = await boundToken(admin.id, admin.secret, 'ES256',
    { scope: 'signet:admin', audience: 'signet-admin' });
  const url = new URL(issuer + '/admin/keys');
  const res = await client.fetchProtectedResource(config, token, url, 'GET', undefined, undefined, { DPoP });
  if (res.status !== 200) throw new Error(`DPoP GET /admin/keys: ${res.status} ${await res.text()}`);
  const bearer = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (bearer.status !== 401) throw new Error(`Bearer GET /admin/keys: ${bearer.status}, want 401`);
});

process.exit(failures ? 1 : 0);
