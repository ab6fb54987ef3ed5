#!/usr/bin/env bash
# Regenerates Sources/HerdWire/Generated/*.pb.swift from proto-schemas/.
# usage: scripts/generate-protos.sh [PROTOC_GEN_SWIFT]
#
# Needs protoc (Debian: apt-get install protobuf-compiler; 3.21.12 was used) and
# protoc-gen-swift matching the SwiftProtobuf runtime in Package.swift (1.39.0 was
# used), built with:
#   git clone https://github.com/apple/swift-protobuf && cd swift-protobuf
#   git checkout 1.39.0 && swift build -c release --product protoc-gen-swift
# The generated code is committed; the build never runs protoc.
set -euo pipefail
cd "$(dirname "$0")/.."
plugin=${1:-$(command -v protoc-gen-swift || true)}
if [ -z "$plugin" ] || [ ! -x "$plugin" ]; then
  echo "usage: $0 PATH/TO/protoc-gen-swift (not found on PATH)" >&2
  exit 2
fi
command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 2; }
out=Sources/HerdWire/Generated
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public \
  --proto_path=proto-schemas --swift_out="$out" proto-schemas/herd/v1/*.proto
echo "generated with $(protoc --version) and protoc-gen-swift $("$plugin" --version 2>/dev/null || echo '?'):"
ls -1 "$out"
