// private_key_jwt with openid-client v6, unmodified: its PrivateKeyJwt
// client authentication for client_credentials, introspection and
// revocation against a real signet.
// Usage: node keyjwt.mjs keygen KEY_FILE JWKS_FILE   (an ES256 key: private JWK, public JWK Set)
//        ISSUER=... CLIENT_ID=... KEY_FILE=... AUDIENCE=api node keyjwt.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import * as client from 'openid-client';
import * as jose from 'jose';

if (process.argv[2] === 'keygen') {
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const priv = { ...(await jose.exportJWK(privateKey)), kid: 'openid-client-1', alg: 'ES256' };
  const pub = { ...(await jose.exportJWK(publicKey)), kid: 'openid-client-1', alg: 'ES256', use: 'sig' };
  writeFileSync(process.argv[3], JSON.stringify(priv), { mode: 0o600 });
  writeFileSync(process.argv[4], JSON.stringify({ keys: [pub] }));
  process.exit(0);
}

const issuer = process.env.ISSUER;
const audience = process.env.AUDIENCE;
const jwk = JSON.parse(readFileSync(process.env.KEY_FILE, 'utf8'));
const key = await jose.importJWK(jwk, 'ES256');
const config = await client.discovery(new URL(issuer), process.env.CLIENT_ID, undefined,
  client.PrivateKeyJwt({ key, kid: jwk.kid }),
  { execute: [client.allowInsecureRequests] }); // loopback http in this check only
const md = config.serverMetadata();
if (!md.token_endpoint_auth_methods_supported.includes('private_key_jwt') ||
    !md.token_endpoint_auth_signing_alg_values_supported.includes('ES256')) {
  throw new Error('discovery does not list private_key_jwt with ES256');
}
const jwks = jose.createRemoteJWKSet(new URL(issuer + '/.well-known/jwks.json'));
for (const round of [1, 2]) { // each request signs a new assertion (new jti)
  const got = await client.clientCredentialsGrant(config, { scope: 'load', audience });
  const { payload } = await jose.jwtVerify(got.access_token, jwks, { issuer, audience, typ: 'at+jwt' });
  if (payload.sub !== process.env.CLIENT_ID) throw new Error(`unexpected sub ${payload.sub}`);
  const intro = await client.tokenIntrospection(config, got.access_token);
  if (!intro.active || intro.client_id !== process.env.CLIENT_ID) throw new Error(`introspection: ${JSON.stringify(intro)}`);
  await client.tokenRevocation(config, got.access_token);
  const after = await client.tokenIntrospection(config, got.access_token);
  if (after.active) throw new Error('token still active after revocation');
  console.log(`ok private_key_jwt round ${round}: openid-client PrivateKeyJwt got, introspected and revoked a token`);
}
