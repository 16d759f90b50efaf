// Federated workload identity with openid-client v6, unmodified: a
// Kubernetes projected-token-shaped JWT (minted here with jose, as
// kube-apiserver would, by a "cluster" whose key set signet reads from a
// jwks_file) sent as client_assertion of client_credentials and as the
// RFC 7523 jwt-bearer grant, the client authenticating by nothing else.
// Usage: node federated.mjs keygen KEY_FILE JWKS_FILE   (an RS256 key: private JWK, public JWK Set)
//        ISSUER=... CLUSTER=... CLIENT_ID=... KEY_FILE=... AUDIENCE=api node federated.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import * as client from 'openid-client';
import * as jose from 'jose';

if (process.argv[2] === 'keygen') {
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const priv = { ...(await jose.exportJWK(privateKey)), kid: 'cluster-1', alg: 'RS256' };
  const pub = { ...(await jose.exportJWK(publicKey)), kid: 'cluster-1', alg: 'RS256', use: 'sig' };
  writeFileSync(process.argv[3], JSON.stringify(priv), { mode: 0o600 });
  writeFileSync(process.argv[4], JSON.stringify({ keys: [pub] }));
  process.exit(0);
}

const { ISSUER: issuer, CLUSTER: cluster, CLIENT_ID: clientId, AUDIENCE: audience } = process.env;
const jwk = JSON.parse(readFileSync(process.env.KEY_FILE, 'utf8'));
const key = await jose.importJWK(jwk, 'RS256');
// What kubelet mounts for a projected serviceAccountToken volume with
// audience = signet's issuer.
const podToken = () => new jose.SignJWT({
  'kubernetes.io': {
    namespace: 'payments',
    pod: { name: 'api-7d9f', uid: randomUUID() },
    serviceaccount: { name: 'api', uid: randomUUID() },
  },
}).setProtectedHeader({ alg: 'RS256', kid: jwk.kid })
  .setIssuer(cluster).setSubject('system:serviceaccount:payments:api').setAudience([issuer])
  .setIssuedAt().setNotBefore('0s').setExpirationTime('10m').setJti(randomUUID())
  .sign(key);

const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(),
  { execute: [client.allowInsecureRequests] }); // loopback http in this check only
const md = config.serverMetadata();
if (!md.grant_types_supported.includes('urn:ietf:params:oauth:grant-type:jwt-bearer')) {
  throw new Error('discovery does not list the jwt-bearer grant');
}
const jwks = jose.createRemoteJWKSet(new URL(issuer + '/.well-known/jwks.json'));
const check = async (got, what) => {
  const { payload } = await jose.jwtVerify(got.access_token, jwks, { issuer, audience, typ: 'at+jwt' });
  if (payload.sub !== clientId || payload['kubernetes.io'] !== undefined) {
    throw new Error(`${what}: unexpected claims ${JSON.stringify(payload)}`);
  }
  return payload;
};
await check(await client.clientCredentialsGrant(config, {
  scope: 'load', audience,
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  client_assertion: await podToken(),
}), 'client_assertion');
console.log('ok federated: openid-client None() + a pod token as client_assertion got a token');
const p = await check(await client.genericGrantRequest(config, 'urn:ietf:params:oauth:grant-type:jwt-bearer',
  { assertion: await podToken(), scope: 'load', audience }), 'jwt-bearer');
if (p.k8s_namespace !== 'payments') throw new Error(`jwt-bearer: mapped claim missing: ${JSON.stringify(p)}`);
console.log('ok federated: openid-client genericGrantRequest jwt-bearer got a token with k8s_namespace');
