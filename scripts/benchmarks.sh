#!/usr/bin/env bash
# The Go benchmarks behind BENCHMARKS.md, each beside its ceiling:
#   JWKS handler vs a constant body, token endpoint vs bare signing,
#   Verifier.Verify vs bare jwx verification, refresh grant vs bare bbolt
#   Batch, argon2id cost. Usage: scripts/benchmarks.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(go version)"
run() { echo "== go test -run '^\$' -bench '$2' -benchmem -count $n $1"; go test -run '^$' -bench "$2" -benchmem -count "$n" "$1" | grep -E '^Benchmark'; }
# jwks and jwks/echojwt are modules of their own: run inside them.
runin() { echo "== (cd $1)"; (cd "$1" && run . "$2"); }
run ./keys/jwksdoc 'BenchmarkJWKS'
run ./authority 'BenchmarkClientCredentials|BenchmarkSign'
runin jwks 'BenchmarkVerify|BenchmarkHTTPMiddleware'
runin jwks/echojwt 'BenchmarkMiddleware'
run ./storage/bolt '.'
run ./storage/etcd '.'
run ./authority 'BenchmarkRefresh|BenchmarkBoltBatch'
run ./users 'BenchmarkPassword'
