// swift-tools-version:6.0
import PackageDescription

// One target per part of the data flow (see docs/ARCHITECTURE.md):
// LuaShim (C) → LuamemTracker → LuamemAgent (flusher) → LuamemStore (SQLite) ← LuamemCommands (CLI).
// Only the `luamem` and `luamem-run` executables link liblua5.3; in-process targets (and
// luamem-run, which runs the scripts of `luamem run`) never import Foundation.
// In-process Swift targets import neither _Concurrency nor _StringProcessing, so the shared
// library loaded into a host does not map those runtimes (measured with README's RSS check).
let leanRuntime: [SwiftSetting] = [
    .unsafeFlags([
        "-Xfrontend", "-disable-implicit-concurrency-module-import",
        "-Xfrontend", "-disable-implicit-string-processing-module-import",
    ])
]

/// luamem's version: the one place it is written. `luamem --version` prints it, and
/// scripts/package.sh names the archive and the .deb after it.
let version = "0.2.0"

/// The commit a build comes from, when the builder says so: scripts/package.sh and .ci/run set
/// LUAMEM_COMMIT (SwiftPM reads the environment again on every build; a file it read would be
/// cached with the manifest and go stale).
let commit = (Context.environment["LUAMEM_COMMIT"] ?? "").filter {
    $0.isHexDigit || $0 == "-" || ($0.isLetter && $0.isASCII)
}

let package = Package(
    name: "luamem",
    products: [
        // `luamem`: runs `luamem run` itself, lean (no Foundation, no ArgumentParser), and hands
        // every other command to luamem-cli, the command line that has them.
        .executable(name: "luamem", targets: ["luamem"]),
        .executable(name: "luamem-cli", targets: ["luamem-cli"]),
        .executable(name: "luamem-run", targets: ["luamem-run"]),
        // The Lua module (`require "luamem"`) and the C API (luamem.h) in one shared library:
        // libluamem-embed.so. It links neither liblua5.3 (the host has Lua) nor Foundation.
        .library(name: "luamem-embed", type: .dynamic, targets: ["Luamem", "LuamemAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // pprof profiles (`luamem export --format pprof`); the CLI only.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        // gzip for pprof files (zlib1g-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .target(name: "LuaShim"),
        .target(
            name: "LuamemVersion",
            cSettings: [
                .define("LUAMEM_VERSION", to: "\"\(version)\""),
                .define("LUAMEM_COMMIT", to: "\"\(commit)\""),
            ]),
        .target(name: "LuamemMigrations"),
        .target(name: "LuamemTracker", dependencies: ["LuaShim"], swiftSettings: leanRuntime),
        .target(
            name: "LuamemStore", dependencies: ["CSQLite", "LuamemMigrations"],
            swiftSettings: leanRuntime),
        .target(
            name: "LuamemAgent", dependencies: ["LuamemTracker", "LuamemStore", "LuaShim"],
            swiftSettings: leanRuntime),
        // luamem.h includes <lua.h>, as Lua modules do; Debian keeps it in /usr/include/lua5.3
        // (`pkg-config --cflags lua5.3`).
        .target(
            name: "Luamem", dependencies: ["LuaShim"],
            cSettings: [.unsafeFlags(["-I/usr/include/lua5.3"])]),
        .target(
            name: "LuamemCommands",
            dependencies: [
                "LuamemAgent", "LuamemStore", "LuamemTracker", "LuaShim", "LuamemVersion", "CZlib",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // `luamem run` in this lean executable (a tracked process starts in a few ms); the other
        // commands are executed from luamem-cli.
        .executableTarget(
            name: "luamem",
            dependencies: ["LuamemAgent"],
            swiftSettings: leanRuntime,
            linkerSettings: [.linkedLibrary("lua5.3")]
        ),
        .executableTarget(
            name: "luamem-cli",
            dependencies: ["LuamemCommands"],
            linkerSettings: [.linkedLibrary("lua5.3")]
        ),
        // `luamem run` without Foundation or ArgumentParser, by its own name (luamem-run
        // [options] script.lua); luamem-cli executes it for `luamem-cli run`.
        .executableTarget(
            name: "luamem-run",
            dependencies: ["LuamemAgent"],
            swiftSettings: leanRuntime,
            linkerSettings: [.linkedLibrary("lua5.3")]
        ),
        // Writes a large synthetic history through the real snapshot writer, for
        // Benchmarks/storage.py.
        .executableTarget(
            name: "luamem-gendb",
            dependencies: ["LuamemStore"],
            path: "Benchmarks/gendb"
        ),
        .testTarget(
            name: "LuamemTests",
            dependencies: [
                "luamem", "luamem-cli", "luamem-run", "luamem-gendb", "LuamemCommands", "LuamemStore",
                "LuamemMigrations",
                "LuamemAgent",
            ],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
