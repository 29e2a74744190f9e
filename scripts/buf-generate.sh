#!/usr/bin/env bash
# Runs `buf generate` with buf.gen.yaml as a user would, into a scratch copy of the contract,
# and checks that Python, TypeScript and Go stubs came out for every service. Installs what it
# needs when missing: buf and protoc-gen-es (npm, into a tools folder), protoc,
# grpc_python_plugin, protoc-gen-go and protoc-gen-go-grpc (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${XDG_CACHE_HOME:-$HOME/.cache}/sentinel-buf"
if [[ ! -x "$tools/node_modules/.bin/buf" || ! -x "$tools/node_modules/.bin/protoc-gen-es" ]]; then
  echo "installing buf and protoc-gen-es"
  mkdir -p "$tools"
  npm install --silent --no-audit --no-fund --prefix "$tools" @bufbuild/buf@1 @bufbuild/protoc-gen-es@2 >/dev/null
fi
missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v grpc_python_plugin >/dev/null || missing+=(protobuf-compiler-grpc)
command -v protoc-gen-go >/dev/null || missing+=(protoc-gen-go)
command -v protoc-gen-go-grpc >/dev/null || missing+=(protoc-gen-go-grpc)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: install ${missing[*]} (Debian packages) first" >&2
    exit 1
  fi
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
  }
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r proto buf.yaml buf.gen.yaml "$scratch/"
(cd "$scratch" && PATH="$tools/node_modules/.bin:$PATH" buf generate)

services=$(grep -l '^service ' proto/sentinel/v1/*.proto | xargs -n1 basename | sed 's/\.proto$//')
status=0
for name in $services; do
  for file in "python/sentinel/v1/${name}_pb2.py" "python/sentinel/v1/${name}_pb2_grpc.py" \
    "python/sentinel/v1/${name}_pb2.pyi" "ts/sentinel/v1/${name}_pb.ts" \
    "go/sentinel/v1/${name}.pb.go" "go/sentinel/v1/${name}_grpc.pb.go"; do
    if [[ ! -s "$scratch/gen/$file" ]]; then
      echo "buf generate: missing gen/$file" >&2
      status=1
    fi
  done
done
# The Python stubs are valid Python; the Go files form package sentinelv1.
python3 -m py_compile "$scratch"/gen/python/sentinel/v1/*.py || status=1
grep -q '^package sentinelv1' "$scratch/gen/go/sentinel/v1/permission.pb.go" || status=1
count=$(find "$scratch/gen" -type f | wc -l)
if ((status == 0)); then
  echo "buf generate: $count files for $(echo "$services" | wc -w) services (Python, TypeScript, Go)"
fi
exit "$status"
