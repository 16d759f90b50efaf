#!/usr/bin/env bash
# Starts a real signet on loopback with RS256, ES256 and EdDSA clients and an
# admin client, then checks it with libraries nobody here wrote:
#   node/check.mjs     openid-client (discovery, client_credentials, code flow
#                      with PKCE, ID token, userinfo, refresh) and jose
#   node/dpop.mjs      openid-client's DPoP: bound client_credentials tokens,
#                      the admin API with a proof, refused as Bearer
#   node/rotation.mjs  jose createRemoteJWKSet and express-oauth2-jwt-bearer,
#                      tokens signed before and after a key rotation
#   python/check.py    PyJWT PyJWKClient (Debian python3-jwt), same rotation
#   node/keyjwt.mjs    openid-client PrivateKeyJwt: private_key_jwt for
#                      client_credentials, introspection and revocation
#   python/keyjwt_check.py  Authlib PrivateKeyJWT (Debian python3-authlib)
#   node/federated.mjs openid-client with a Kubernetes-shaped pod token as
#                      client_assertion and as the jwt-bearer grant (the
#                      "cluster" is a key pair whose JWK Set is a jwks_file)
# Needs node, npm, and /usr/bin/python3 with python3-jwt, python3-cryptography,
# python3-authlib and python3-requests.
set -euo pipefail
cd "$(dirname "$0")"
(cd node && npm install --no-audit --no-fund --silent)
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && { kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; }; rm -rf "$work"' EXIT
(cd .. && go build -o "$work/signet" ./cmd/signet)
port=18181
export SIGNET_DATA_DIR=$work/data SIGNET_ADDR=127.0.0.1:$port SIGNET_ISSUER=http://127.0.0.1:$port
export SIGNET_KEYS_ALGORITHMS=RS256,ES256,EdDSA SIGNET_LOG_LEVEL=warn
secret_of() { sed -n 's/.*"client_secret": *"\([^"]*\)".*/\1/p'; }
admin_secret=$("$work/signet" init --id interop-admin 2>/dev/null | secret_of)
clients="["
for alg in RS256 ES256 EdDSA; do
	secret=$("$work/signet" clients create --id "interop-$alg" --alg "$alg" --scope load --audience api 2>/dev/null | secret_of)
	clients+="{\"id\":\"interop-$alg\",\"secret\":\"$secret\",\"alg\":\"$alg\"},"
done
clients="${clients%,}]"
# private_key_jwt: each library makes its own ES256 key; only the public
# JWK Set is registered.
node node/keyjwt.mjs keygen "$work/node-key.json" "$work/node-jwks.json"
/usr/bin/python3 python/private_key_jwt.py keygen "$work/authlib-key.json" "$work/authlib-jwks.json"
"$work/signet" clients create --id interop-keyjwt-node --scope load --audience api --introspect --jwks-file "$work/node-jwks.json" >/dev/null 2>&1
# Federated workload identity: a cluster issuer trusted by its key set file.
cluster=https://kubernetes.default.svc.cluster.local
node node/federated.mjs keygen "$work/cluster-key.json" "$work/cluster-jwks.json"
printf 'federation:\n  issuers:\n    - issuer: %s\n      jwks_file: %s\n      claims:\n        kubernetes.io.namespace: k8s_namespace\n' \
	"$cluster" "$work/cluster-jwks.json" >"$work/signet.yaml"
export SIGNET_CONFIG=$work/signet.yaml
"$work/signet" clients create --id interop-federated --scope load --audience api --grant client_credentials \
	--grant urn:ietf:params:oauth:grant-type:jwt-bearer --federated "$cluster=system:serviceaccount:payments:*" >/dev/null 2>&1
"$work/signet" clients create --id interop-keyjwt-authlib --scope load --audience api --jwks-file "$work/authlib-jwks.json" >/dev/null 2>&1
# Browser login: a first-party web client with the code flow and a user.
code_secret=$("$work/signet" clients create --id interop-web --grant authorization_code --grant refresh_token \
	--scope "openid profile email offline_access" --audience api --first-party --redirect-uri "http://127.0.0.1:$port/interop-cb" 2>/dev/null | secret_of)
echo "interop password 1" | "$work/signet" users create --username alice --email alice@example.com --email-verified --name "Alice Interop" >/dev/null
export CODE_CLIENT="{\"id\":\"interop-web\",\"secret\":\"$code_secret\",\"redirect\":\"http://127.0.0.1:$port/interop-cb\",\"username\":\"alice\",\"password\":\"interop password 1\"}"
"$work/signet" serve 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
export ISSUER=$SIGNET_ISSUER AUDIENCE=api CLIENTS=$clients
export ADMIN="{\"id\":\"interop-admin\",\"secret\":\"$admin_secret\"}"
echo "-- node: openid-client and jose"
node node/check.mjs
echo "-- node: openid-client DPoP (RFC 9449)"
node node/dpop.mjs
echo "-- node: jose and express-oauth2-jwt-bearer across a rotation"
node node/rotation.mjs
echo "-- python: PyJWT PyJWKClient across a rotation"
/usr/bin/python3 python/check.py
echo "-- node: openid-client PrivateKeyJwt (private_key_jwt)"
CLIENT_ID=interop-keyjwt-node KEY_FILE=$work/node-key.json node node/keyjwt.mjs
echo "-- python: Authlib PrivateKeyJWT (private_key_jwt)"
CLIENT_ID=interop-keyjwt-authlib KEY_FILE=$work/authlib-key.json /usr/bin/python3 python/keyjwt_check.py
echo "-- node: openid-client with a federated pod token (workload identity)"
CLUSTER=$cluster CLIENT_ID=interop-federated KEY_FILE=$work/cluster-key.json node node/federated.mjs
