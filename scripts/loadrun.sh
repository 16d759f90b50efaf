#!/usr/bin/env bash
# Loopback load run behind BENCHMARKS.md: builds signet, starts it on a fresh
# data dir with RS256, ES256 and EdDSA live (6 keys in the JWKS), creates one
# client_credentials client per algorithm, then drives it with wrk:
#   JWKS at 16 connections, token endpoint (client_credentials) at 32.
# Right after each token run, BenchmarkSign measures the bare jwx signing
# rate of the same claims on the same machine, for the ratio.
# Needs wrk (Debian package "wrk"). Usage: scripts/loadrun.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-15s}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT

CGO_ENABLED=0 go build -trimpath -o "$work/signet" ./cmd/signet
export SIGNET_DATA_DIR=$work/data SIGNET_ADDR=127.0.0.1:18080 SIGNET_ISSUER=http://127.0.0.1:18080
export SIGNET_KEYS_ALGORITHMS=RS256,ES256,EdDSA SIGNET_LOG_LEVEL=warn

declare -A secret
for alg in RS256 ES256 EdDSA; do
	out=$("$work/signet" clients create --id "load-$alg" --alg "$alg" --scope load --audience api --json)
	secret[$alg]=$(sed -n 's/.*"client_secret": *"\([^"]*\)".*/\1/p' <<<"$out")
done
"$work/signet" serve 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1; done

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(go version)"
echo "== JWKS: $(curl -s http://127.0.0.1:18080/.well-known/jwks.json | grep -o '"kid"' | wc -l) keys, $(curl -s http://127.0.0.1:18080/.well-known/jwks.json | wc -c) bytes"
echo "== wrk -t2 -c16 -d$dur /.well-known/jwks.json"
wrk -t2 -c16 -d"$dur" --latency http://127.0.0.1:18080/.well-known/jwks.json

for alg in RS256 ES256 EdDSA; do
	auth=$(printf '%s' "load-$alg:${secret[$alg]}" | base64 -w0)
	cat >"$work/token.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $auth"
done = function(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
	echo "== wrk -t2 -c32 -d$dur POST /oauth2/token client_credentials $alg"
	wrk -t2 -c32 -d"$dur" --latency -s "$work/token.lua" http://127.0.0.1:18080/oauth2/token
	echo "== bare jwx signing, same claims, same machine (BenchmarkSign/$alg, -cpu 2)"
	go test -run '^$' -bench "^BenchmarkSign\$/^$alg\$" -benchtime 3s -cpu 2 ./authority | grep Benchmark
done
