// Cross-check Signet with openid-client (discovery + client_credentials)
// and jose (remote JWKS + RFC 9068 access token verification).
// Usage: ISSUER=... CLIENTS='[{"id":..,"secret":..,"alg":..}]' AUDIENCE=api node check.mjs
import * as client from 'openid-client';
import * as jose from 'jose';

const issuer = process.env.ISSUER;
const audience = process.env.AUDIENCE;
const clients = JSON.parse(process.env.CLIENTS);
const jwks = jose.createRemoteJWKSet(new URL(issuer + '/.well-known/jwks.json'));

let failures = 0;
for (const c of clients) {
  try {
    const config = await client.discovery(new URL(issuer), c.id, c.secret, undefined, {
      execute: [client.allowInsecureRequests], // loopback http in this check only
    });
    const got = await client.clientCredentialsGrant(config, { scope: 'load', audience });
    const { payload, protectedHeader } = await jose.jwtVerify(got.access_token, jwks, {
      issuer,
      audience,
      typ: 'at+jwt',
      algorithms: [c.alg],
    });
    if (protectedHeader.alg !== c.alg || payload.client_id !== c.id || payload.sub !== c.id) {
      throw new Error(`unexpected token: ${JSON.stringify({ protectedHeader, payload })}`);
    }
    // A tampered token must be refused.
    const parts = got.access_token.split('.');
    const forged = [parts[0], Buffer.from(JSON.stringify({ ...payload, scope: 'admin' })).toString('base64url'), parts[2]].join('.');
    let refused = false;
    try { await jose.jwtVerify(forged, jwks, { issuer, audience }); } catch { refused = true; }
    if (!refused) throw new Error('jose accepted a token with a modified payload');
    console.log(`ok ${c.alg}: openid-client got a token, jose verified kid ${protectedHeader.kid}`);
  } catch (e) {
    failures++;
    console.error(`FAIL ${c.alg}: ${e.stack || e}`);
  }
}
process.exit(failures ? 1 : 0);
