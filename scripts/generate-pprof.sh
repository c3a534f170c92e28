#!/usr/bin/env bash
# Generates Sources/LuamemCommands/Profile.pb.swift from Proto/pprof.proto. Run by hand when
# the .proto changes (the generated file is committed; builds and CI do not run protoc). Needs
# protoc (Debian's protobuf-compiler) and builds protoc-gen-swift from the swift-protobuf
# version Package.swift resolves.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "generate-pprof.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
swift package resolve
plugin_build=.build/protoc-gen-swift
swift build -c release --package-path .build/checkouts/swift-protobuf --scratch-path "$plugin_build" \
    --product protoc-gen-swift
protoc --plugin=protoc-gen-swift="$plugin_build/release/protoc-gen-swift" \
    --swift_opt=Visibility=Internal --swift_out=Sources/LuamemCommands --proto_path=Proto pprof.proto
mv Sources/LuamemCommands/pprof.pb.swift Sources/LuamemCommands/Profile.pb.swift
echo "generate-pprof.sh: wrote Sources/LuamemCommands/Profile.pb.swift"
