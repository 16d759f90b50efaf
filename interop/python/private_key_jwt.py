"""private_key_jwt with Authlib (Debian python3-authlib), unmodified.

    private_key_jwt.py keygen KEY_FILE JWKS_FILE
        makes an ES256 key: the private JWK in KEY_FILE, the public JWK Set
        to register (signet clients create --jwks-file JWKS_FILE) in JWKS_FILE
    ISSUER=... CLIENT_ID=... KEY_FILE=... private_key_jwt.py
        gets a client_credentials token with a private_key_jwt assertion
"""
import json
import os
import sys
import time

from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey
from authlib.oauth2.rfc7523 import PrivateKeyJWT


def keygen(key_file, jwks_file):
    key = JsonWebKey.generate_key("EC", "P-256", is_private=True, options={"kid": "authlib-1"})
    with open(key_file, "w") as f:
        f.write(key.as_json(is_private=True))
    with open(jwks_file, "w") as f:
        json.dump({"keys": [key.as_dict(is_private=False, use="sig", alg="ES256")]}, f)


def fetch_token(issuer, client_id, private_jwk, scope):
    token_url = issuer + "/oauth2/token"
    # Authlib signs assertions valid for an hour unless told otherwise;
    # Signet accepts at most client_auth.assertion_max_lifetime (5m), so
    # ask for one minute. Make a PrivateKeyJWT per request: Authlib keeps
    # the jti in the claims dict it is given, and Signet accepts a jti once.
    auth = PrivateKeyJWT(token_url, claims={"exp": int(time.time()) + 60}, alg="ES256")
    session = OAuth2Session(client_id, private_jwk, token_endpoint_auth_method=PrivateKeyJWT.name, scope=scope)
    session.register_client_auth_method(auth)
    return session.fetch_token(token_url, grant_type="client_credentials")


if __name__ == "__main__":
    if sys.argv[1:2] == ["keygen"]:
        keygen(sys.argv[2], sys.argv[3])
        sys.exit(0)
    with open(os.environ["KEY_FILE"]) as f:
        jwk = json.load(f)
    token = fetch_token(os.environ["ISSUER"], os.environ["CLIENT_ID"], jwk, "load")
    print(token["access_token"])
