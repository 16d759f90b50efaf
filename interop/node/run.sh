#!/usr/bin/env bash
# Starts a real signet on loopback with RS256, ES256 and EdDSA clients, a
# browser-login client and a user, and runs check.mjs (openid-client + jose)
# against it. Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")"
npm install --no-audit --no-fund --silent
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
(cd ../.. && go build -o "$work/signet" ./cmd/signet)
port=18181
export SIGNET_DATA_DIR=$work/data SIGNET_ADDR=127.0.0.1:$port SIGNET_ISSUER=http://127.0.0.1:$port
export SIGNET_KEYS_ALGORITHMS=RS256,ES256,EdDSA SIGNET_LOG_LEVEL=warn
clients="["
for alg in RS256 ES256 EdDSA; do
	out=$("$work/signet" clients create --id "interop-$alg" --alg "$alg" --scope load --audience api 2>/dev/null)
	secret=$(sed -n 's/.*"client_secret": *"\([^"]*\)".*/\1/p' <<<"$out")
	clients+="{\"id\":\"interop-$alg\",\"secret\":\"$secret\",\"alg\":\"$alg\"},"
done
clients="${clients%,}]"
# Browser login: a first-party web client with the code flow and a user.
code_out=$("$work/signet" clients create --id interop-web --grant authorization_code --grant refresh_token \
	--scope "openid profile email offline_access" --audience api --first-party --redirect-uri "http://127.0.0.1:$port/interop-cb" 2>/dev/null)
code_secret=$(sed -n 's/.*"client_secret": *"\([^"]*\)".*/\1/p' <<<"$code_out")
echo "interop password 1" | "$work/signet" users create --username alice --email alice@example.com --email-verified --name "Alice Interop" >/dev/null
export CODE_CLIENT="{\"id\":\"interop-web\",\"secret\":\"$code_secret\",\"redirect\":\"http://127.0.0.1:$port/interop-cb\",\"username\":\"alice\",\"password\":\"interop password 1\"}"
"$work/signet" serve 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
ISSUER=$SIGNET_ISSUER AUDIENCE=api CLIENTS=$clients node check.mjs
