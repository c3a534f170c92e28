// swift-tools-version:6.0
import PackageDescription

// One target per part of the data flow (see ../shared/DESIGN.md):
// LuaShim (C) → LuamemTracker → LuamemAgent (flusher) → LuamemStore (SQLite) ← LuamemCommands (CLI).
// Only the `luamem` executable links liblua5.3; in-process targets never import Foundation.
let package = Package(
    name: "luamem",
    products: [
        .executable(name: "luamem", targets: ["luamem"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .target(name: "LuaShim"),
        .target(name: "LuamemMigrations"),
        .target(name: "LuamemTracker", dependencies: ["LuaShim"]),
        .target(name: "LuamemStore", dependencies: ["CSQLite", "LuamemMigrations"]),
        .target(name: "LuamemAgent", dependencies: ["LuamemTracker", "LuamemStore", "LuaShim"]),
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
        .testTarget(
            name: "LuamemTests",
            dependencies: ["luamem", "LuamemStore", "LuamemMigrations"],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
