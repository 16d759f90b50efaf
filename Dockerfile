# Signet token authority: a static binary on an empty (scratch) base, running as
# an unprivileged user, with its data (bbolt file and, on the first run, the
# key-encryption key) in the /data volume.
#
#   docker build -t signet .
#   docker run -p 8080:8080 -v signet-data:/data -e SIGNET_ISSUER=https://auth.example.com signet
#
# In production set SIGNET_KEK (base64 of 32 bytes) from a secret store
# instead of letting the first run write /data/kek beside the database.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
# The verifier modules are replaced by their directories in go.mod.
COPY jwks/go.mod jwks/go.sum ./jwks/
COPY jwks/echojwt/go.mod jwks/echojwt/go.sum ./jwks/echojwt/
RUN go mod download
COPY . .
# Stamped into `signet version` and signet_build_info; without them
# scripts/build.sh says devel/unknown (.dockerignore keeps .git out of the
# context), so pass them:
#   docker build --build-arg VERSION=v1.2.3 --build-arg COMMIT=$(git rev-parse HEAD) -t signet .
ARG VERSION
ARG COMMIT
ARG DATE
# A static build (CGO_ENABLED=0); TestDockerfile runs this same line.
RUN OUT=/out/signet scripts/build.sh
RUN mkdir -p /out/data && chown 65532:65532 /out/data && chmod 0700 /out/data

FROM scratch
# CA roots for https issuers (signet drill) and nothing else: no shell, no libc.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/signet /usr/local/bin/signet
# User 65532 owns the volume; the database and KEK inside are mode 0600.
COPY --from=build /out/data /data
# SIGNET_ISSUER is the public URL clients and verifiers reach signet at: the
# iss of every token and the base of the metadata and JWKS URLs. It has no
# default here on purpose: set it at run time (-e SIGNET_ISSUER=https://auth.example.com).
# Without it the issuer is http://localhost:8080, which no other host can
# reach; signet serve logs a warning naming SIGNET_ISSUER when the issuer
# cannot be right for its listener.
ENV SIGNET_ADDR=0.0.0.0:8080 \
    SIGNET_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
# No shell or curl in the image: signet checks itself, GET /readyz on
# SIGNET_ADDR over loopback (exit 0 ready, 1 not).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/signet", "health"]
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/signet"]
CMD ["serve"]
