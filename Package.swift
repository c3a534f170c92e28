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

let package = Package(
    name: "luamem",
    products: [
        .executable(name: "luamem", targets: ["luamem"]),
        .executable(name: "luamem-run", targets: ["luamem-run"]),
        // The Lua module (`require "luamem"`) and the C API (luamem.h) in one shared library:
        // libluamem-embed.so. It links neither liblua5.3 (the host has Lua) nor Foundation.
        .library(name: "luamem-embed", type: .dynamic, targets: ["Luamem", "LuamemAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .target(name: "LuaShim"),
        .target(name: "LuamemMigrations"),
        .target(name: "LuamemTracker", dependencies: ["LuaShim"], swiftSettings: leanRuntime),
        .target(
            name: "LuamemStore", dependencies: ["CSQLite", "LuamemMigrations"],
            swiftSettings: leanRuntime),
        .target(
            name: "LuamemAgent", dependencies: ["LuamemTracker", "LuamemStore", "LuaShim"],
            swiftSettings: leanRuntime),
        .target(name: "Luamem", dependencies: ["LuaShim"]),
        .target(
            name: "LuamemCommands",
            dependencies: [
                "LuamemAgent", "LuamemStore", "LuamemTracker", "LuaShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "luamem",
            dependencies: ["LuamemCommands"],
            linkerSettings: [.linkedLibrary("lua5.3")]
        ),
        // `luamem run` without Foundation or ArgumentParser; `luamem run` executes it.
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
                "luamem", "luamem-run", "luamem-gendb", "LuamemCommands", "LuamemStore",
                "LuamemMigrations",
                "LuamemAgent",
            ],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
