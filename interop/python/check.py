#!/usr/bin/python3
"""Verify Signet access tokens with PyJWT's PyJWKClient across a key rotation.

Runs with Debian's python3-jwt (and python3-cryptography for EC and EdDSA).
One PyJWKClient, configured as docs/verifying-tokens.md says, verifies a
token signed before a rotation, one signed after it, and the first again
(its key retired but still published), and refuses a forgery.

Usage: ISSUER=... AUDIENCE=api CLIENTS='[{"id":..,"secret":..,"alg":..}]'
       ADMIN='{"id":..,"secret":..}' check.py
"""
import base64
import json
import os
import sys
import urllib.parse
import urllib.request

import jwt

ISSUER = os.environ["ISSUER"]
AUDIENCE = os.environ["AUDIENCE"]
CLIENTS = json.loads(os.environ["CLIENTS"])
ADMIN = json.loads(os.environ["ADMIN"])

# lifespan: Signet's jwks.max_age (300 s by default). cache_keys stays False:
# with True, PyJWT keeps a key it has seen in an LRU cache with no expiry,
# so a revoked key would go on verifying.
jwks_client = jwt.PyJWKClient(ISSUER + "/.well-known/jwks.json", cache_keys=False, lifespan=300)


def token(client, audience, scope):
    basic = base64.b64encode(f"{client['id']}:{client['secret']}".encode()).decode()
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": scope, "audience": audience}).encode()
    req = urllib.request.Request(ISSUER + "/oauth2/token", data=body, headers={"Authorization": "Basic " + basic})
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)["access_token"]


def rotate():
    admin_token = token(ADMIN, "signet-admin", "signet:admin")
    req = urllib.request.Request(ISSUER + "/admin/keys/rotate?force=true", data=b"{}", method="POST",
                                 headers={"Authorization": "Bearer " + admin_token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        resp.read()


def verify(tok, alg):
    # PyJWT does not check typ: RFC 9068 asks for at+jwt, so a service does.
    typ = str(jwt.get_unverified_header(tok).get("typ", "")).lower()
    if typ.removeprefix("application/") != "at+jwt":
        raise jwt.InvalidTokenError(f"typ {typ!r} is not at+jwt")
    key = jwks_client.get_signing_key_from_jwt(tok)
    return jwt.decode(tok, key.key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER,
                      options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]})


def kid(tok):
    return jwt.get_unverified_header(tok)["kid"]


def main():
    failures = 0
    before = {c["alg"]: token(c, AUDIENCE, "load") for c in CLIENTS}
    for c in CLIENTS:
        verify(before[c["alg"]], c["alg"])
    rotate()
    for c in CLIENTS:
        try:
            after = token(c, AUDIENCE, "load")
            if kid(after) == kid(before[c["alg"]]):
                raise AssertionError("the rotation did not change the signing key")
            claims = verify(after, c["alg"])
            if claims["client_id"] != c["id"]:
                raise AssertionError(f"client_id {claims['client_id']}")
            verify(before[c["alg"]], c["alg"])
            head, payload, sig = after.split(".")
            forged_claims = dict(claims, sub="admin")
            forged = ".".join([head, base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).decode().rstrip("="), sig])
            try:
                verify(forged, c["alg"])
                raise AssertionError("PyJWT accepted a modified payload")
            except jwt.InvalidSignatureError:
                pass
            print(f"ok {c['alg']}: PyJWT {jwt.__version__} PyJWKClient verified kid {kid(before[c['alg']])} "
                  f"before and kid {kid(after)} after a rotation")
        except Exception as e:  # report every algorithm, then fail
            failures += 1
            print(f"FAIL {c['alg']}: {e!r}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
