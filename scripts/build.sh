#!/usr/bin/env bash
# Builds a static signet binary with its version, commit and build date
# stamped in (what `signet version` and signet_build_info report). The
# Dockerfile builds with this script too.
#
#   scripts/build.sh                 # writes bin/signet
#   OUT=/usr/local/bin/signet VERSION=v1.2.3 scripts/build.sh
#
# VERSION, COMMIT and DATE default to `git describe`, `git rev-parse HEAD`
# and the current UTC time; outside a git clone they fall back to devel and
# unknown.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
commit=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
date=${DATE:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
out=${OUT:-bin/signet}
# CGO_ENABLED=0 makes the binary static (the image is scratch) and -trimpath
# keeps build paths out of it. Both are part of every package's build-cache
# key, so the first run compiles every package once more than go build or
# go test did (about two minutes on 2 cores); later runs take seconds. Build
# tags are part of that key too: the time zone database the scratch image
# lacks is embedded by an import in cmd/signet, not by -tags timetzdata,
# which made a third, separate compilation of everything.
CGO_ENABLED=0 go build -trimpath \
	-ldflags="-s -w -X main.version=${version} -X main.commit=${commit} -X main.date=${date}" \
	-o "$out" ./cmd/signet
echo "built $out: signet $version ($commit, $date)"
