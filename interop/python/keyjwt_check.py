"""Cross-check Signet's private_key_jwt with Authlib, unmodified
(private_key_jwt.py is the example docs/private-key-jwt.md quotes).

Usage: ISSUER=... CLIENT_ID=... KEY_FILE=... keyjwt_check.py
"""
import base64
import json
import os
import sys
import time

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT

sys.path.insert(0, os.path.dirname(__file__))
from private_key_jwt import fetch_token  # noqa: E402

ISSUER = os.environ["ISSUER"]
CLIENT_ID = os.environ["CLIENT_ID"]
with open(os.environ["KEY_FILE"]) as f:
    JWK = json.load(f)
TOKEN_URL = ISSUER + "/oauth2/token"


def claims(tok):
    part = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def refused(session, want):
    try:
        session.fetch_token(TOKEN_URL, grant_type="client_credentials")
    except OAuthError as e:
        if e.error != "invalid_client" or want not in (e.description or ""):
            raise AssertionError(f"refused with {e.error}: {e.description}, want invalid_client mentioning {want!r}")
        return
    raise AssertionError("Signet accepted an assertion it must refuse")


failures = 0
try:
    for _ in range(2):
        tok = fetch_token(ISSUER, CLIENT_ID, JWK, "load")
        c = claims(tok["access_token"])
        if c["sub"] != CLIENT_ID or c["client_id"] != CLIENT_ID or c["iss"] != ISSUER:
            raise AssertionError(f"unexpected claims {c}")
    print("ok authlib PrivateKeyJWT (ES256, exp one minute ahead): two tokens")

    # Authlib's defaults: exp an hour ahead, longer than Signet accepts.
    s = OAuth2Session(CLIENT_ID, JWK, token_endpoint_auth_method=PrivateKeyJWT.name)
    s.register_client_auth_method(PrivateKeyJWT(TOKEN_URL, alg="ES256"))
    refused(s, "ahead")
    print("ok authlib's default one-hour assertion is refused (exp more than 5m ahead)")

    # One PrivateKeyJWT reused: Authlib keeps the jti in its claims dict,
    # so the second request replays the first jti.
    s = OAuth2Session(CLIENT_ID, JWK, token_endpoint_auth_method=PrivateKeyJWT.name)
    s.register_client_auth_method(PrivateKeyJWT(TOKEN_URL, claims={"exp": int(time.time()) + 60}, alg="ES256"))
    s.fetch_token(TOKEN_URL, grant_type="client_credentials")
    refused(s, "already used")
    print("ok a replayed jti is refused")
except Exception as e:  # noqa: BLE001
    failures += 1
    print(f"FAIL authlib private_key_jwt: {e!r}", file=sys.stderr)
sys.exit(1 if failures else 0)
