#!/usr/bin/env bash
# Loopback load run behind the JWKS figure in BENCHMARKS.md: signet serve's
# /.well-known/jwks.json (6 keys: RS256, ES256, EdDSA; default access log)
# beside a bare echo server answering the same bytes from a constant, each
# driven by wrk in turn. Reports requests/s and the server process's CPU
# time per request (utime + stime from /proc/PID/stat over the run).
# The two alternate ROUNDS times, so that other load on the machine hits
# both alike; the last line is the median of the per-round CPU ratios.
# Needs wrk (Debian package "wrk"). Usage: scripts/jwksload.sh [DURATION] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-5s}
rounds=${2:-5}
work=$(mktemp -d)
bare=$(mktemp -d ./_jwksbare.XXXXXX) # inside the module, for its go.mod
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work" "$bare"' EXIT

go build -trimpath -o "$work/signet" ./cmd/signet
cat >"$bare/main.go" <<'GO'
// The ceiling: echo serving a constant body at the JWKS path, under an
// http.Server with the same timeouts as signet serve's (cmd/signet listen).
package main

import (
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
)

func main() {
	body, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	e := echo.New()
	e.GET("/.well-known/jwks.json", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/json", body) })
	srv := &http.Server{Addr: os.Args[2], Handler: e, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	panic(srv.ListenAndServe())
}
GO
go build -trimpath -o "$work/bare" "./$bare"

export SIGNET_DATA_DIR=$work/data SIGNET_ADDR=127.0.0.1:18090 SIGNET_ISSUER=http://127.0.0.1:18090
export SIGNET_KEYS_ALGORITHMS=RS256,ES256,EdDSA
"$work/signet" serve 2>"$work/serve.log" &
pids+=($!)
signet_pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18090/readyz >/dev/null && break; sleep 0.1; done
curl -s http://127.0.0.1:18090/.well-known/jwks.json >"$work/jwks.json"
"$work/bare" "$work/jwks.json" 127.0.0.1:18091 &
pids+=($!)
bare_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18091/.well-known/jwks.json && break; sleep 0.1; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(go version)"
echo "== JWKS: $(grep -o '"kid"' "$work/jwks.json" | wc -l) keys, $(wc -c <"$work/jwks.json") bytes; wrk -t2 -c16 -d$dur"
run() { # name pid port → prints a line, sets ns
	local name=$1 pid=$2 port=$3 c0 c1 out reqs rps
	c0=$(cpu_ticks "$pid")
	out=$(wrk -t2 -c16 -d"$dur" "http://127.0.0.1:$port/.well-known/jwks.json")
	c1=$(cpu_ticks "$pid")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	ns=$(( (c1 - c0) * 1000000000 / tck / reqs ))
	echo "  $name: $reqs requests, $rps req/s, server CPU $ns ns/request"
}
ratios=()
for r in $(seq "$rounds"); do
	echo "round $r"
	run signet "$signet_pid" 18090; s=$ns
	run bare-echo "$bare_pid" 18091; b=$ns
	ratios+=("$(awk -v s="$s" -v b="$b" 'BEGIN {printf "%.3f", s / b}')")
done
echo "== signet / bare-echo server CPU per request, per round: ${ratios[*]}"
echo "== median: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
echo "== access log lines written by signet during the run: $(grep -c '"msg":"request"' "$work/serve.log" || true)"
