// Cross-check Signet with openid-client (discovery + client_credentials,
// and the authorization code flow with PKCE, ID token and userinfo) and
// jose (remote JWKS + RFC 9068 access token verification).
// Usage: ISSUER=... CLIENTS='[{"id":..,"secret":..,"alg":..}]' AUDIENCE=api
//        CODE_CLIENT='{"id":..,"secret":..,"redirect":..,"username":..,"password":..}' node check.mjs
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
// The browser step of the code flow, done by a small HTTP client that keeps
// cookies and posts the login form (the Go test drives the real page in
// Chromium). It returns the callback URL the browser would have reached.
async function browserLogin(authURL, username, password, redirect) {
  const jar = new Map();
  const keep = (res) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  let res = await fetch(authURL, { redirect: 'manual', headers: { cookie: cookie() } });
  keep(res);
  const page = await res.text();
  const action = page.match(/<form method="post" action="([^"]+)"/)?.[1];
  if (!action) throw new Error(`no login form (status ${res.status})`);
  const unescape = (s) => s.replaceAll('&amp;', '&').replaceAll('&#43;', '+').replaceAll('&#34;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  const form = new URLSearchParams();
  for (const m of page.matchAll(/<input type="hidden" name="([a-z]+)" value="([^"]*)">/g)) form.set(m[1], unescape(m[2]));
  form.set('username', username);
  form.set('password', password);
  res = await fetch(new URL(unescape(action), authURL), {
    method: 'POST', redirect: 'manual', body: form,
    headers: { cookie: cookie(), 'content-type': 'application/x-www-form-urlencoded' },
  });
  const done = await res.text();
  const next = res.headers.get('location') ?? done.match(/<a class="button" href="([^"]+)">Continue/)?.[1];
  if (!next) throw new Error(`login did not continue (status ${res.status}): ${done.slice(0, 300)}`);
  const cb = new URL(unescape(next));
  if (!cb.href.startsWith(redirect)) throw new Error(`sent to ${cb.href}`);
  return cb;
}

if (process.env.CODE_CLIENT) {
  const c = JSON.parse(process.env.CODE_CLIENT);
  try {
    const config = await client.discovery(new URL(issuer), c.id, c.secret, undefined, {
      execute: [client.allowInsecureRequests],
    });
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const authURL = client.buildAuthorizationUrl(config, {
      redirect_uri: c.redirect, scope: 'openid profile email offline_access', state, nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const cb = await browserLogin(authURL, c.username, c.password, c.redirect);
    const tokens = await client.authorizationCodeGrant(config, cb, {
      pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
    });
    const claims = tokens.claims();
    if (!claims || claims.iss !== issuer || claims.aud !== c.id || claims.nonce !== nonce || !claims.auth_time) {
      throw new Error(`unexpected ID token claims ${JSON.stringify(claims)}`);
    }
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    if (info.email !== 'alice@example.com' || info.email_verified !== true || info.name !== 'Alice Interop') {
      throw new Error(`unexpected userinfo ${JSON.stringify(info)}`);
    }
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    if (refreshed.claims()?.sub !== claims.sub) throw new Error('refreshed ID token has another sub');
    console.log(`ok code flow: openid-client redeemed a code with PKCE, verified the ID token of ${claims.sub}, read userinfo, refreshed`);
  } catch (e) {
    failures++;
    console.error(`FAIL code flow: ${e.stack || e}`);
  }
}
process.exit(failures ? 1 : 0);
