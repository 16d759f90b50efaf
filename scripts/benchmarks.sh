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
run ./jwks 'BenchmarkJWKS'
run ./authority 'BenchmarkClientCredentials|BenchmarkSign'
run ./jwks 'BenchmarkVerify|BenchmarkMiddleware'
run ./storage/bolt '.'
run ./storage/etcd '.'
run ./authority 'BenchmarkRefresh|BenchmarkBoltBatch|BenchmarkPassword'
