# syntax=docker/dockerfile:1
#
# Sentinel container image.
#
#   docker build -t sentinel:0.1.0 .
#   docker run -p 8080:8080 -v sentinel-data:/var/lib/sentinel sentinel:0.1.0
#
# Port   8080/tcp  gRPC, gRPC-web and HTTP (health, metrics, JWKS, OIDC
#                  discovery, OAuth callbacks, /admin/) on one listener.
# Volume /var/lib/sentinel
#                  Embedded mode: the SQLite database and, unless SENTINEL_KEK
#                  is set, the generated key-encryption key. Clustered mode
#                  (SENTINEL_DATABASE_URL + SENTINEL_REDIS_URL) keeps nothing here.
#
# Runs as uid/gid 10001 with a read-only root filesystem in mind: it writes
# only to /var/lib/sentinel and /tmp.

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

# ---- build ------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the crates.io download and the compiled dependencies
# between builds, so a source change recompiles only this crate. target/ is a
# cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin sentinel \
    && install -D -m 0755 target/release/sentinel /out/sentinel

# ---- runtime ----------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# ca-certificates: TLS to identity providers, PostgreSQL and Redis.
# curl: the HEALTHCHECK below. sqlite3: online backups of the embedded
# database (`sqlite3 ... ".backup ..."`) from inside the container.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl sqlite3 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 sentinel \
    && useradd --system --uid 10001 --gid sentinel --no-create-home \
       --home-dir /var/lib/sentinel --shell /usr/sbin/nologin sentinel \
    && install -d -o sentinel -g sentinel -m 0750 /var/lib/sentinel

COPY --from=builder /out/sentinel /usr/local/bin/sentinel

LABEL org.opencontainers.image.title="sentinel" \
      org.opencontainers.image.description="gRPC-first identity and authorization service" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV SENTINEL_LISTEN=0.0.0.0:8080 \
    SENTINEL_DATA_DIR=/var/lib/sentinel

# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/sentinel
EXPOSE 8080
VOLUME ["/var/lib/sentinel"]

# Liveness only; readiness (database and cache reachable) is GET /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]

ENTRYPOINT ["sentinel"]
CMD ["serve"]
