// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "provisiond",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "provisiond", targets: ["provisiond"]),
        .library(name: "HTTPServer", targets: ["HTTPServer", "Essentials"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"4.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C libraries from Debian, wrapped as system-library modules.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // libpq, for the PostgreSQL store (several instances on one database).
        .systemLibrary(
            name: "CPostgreSQL",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // epoll and eventfd, which Glibc does not export.
        .systemLibrary(name: "CLinux"),
        // What the server, the store and the dispatcher all use: the JSON value and a lock.
        .target(name: "Essentials"),
        .target(
            name: "HTTPServer",
            dependencies: ["Essentials", "CLinux", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Provisioning",
            dependencies: [
                "Essentials", "HTTPServer", "CSQLite", "CPostgreSQL", "CCurl", "CLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "provisiond",
            dependencies: [
                "Essentials", "HTTPServer", "Provisioning",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // libFuzzer targets (make fuzz); in a normal build, corpus replayers.
        .systemLibrary(name: "CFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzer"]),
        .executableTarget(name: "FuzzHTTPParser", dependencies: ["HTTPServer", "FuzzSupport"]),
        .executableTarget(name: "FuzzRequestDecoding", dependencies: ["Essentials", "Provisioning", "FuzzSupport"]),
        .testTarget(name: "EssentialsTests", dependencies: ["Essentials"]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "Essentials"]),
        .testTarget(name: "ProvisioningTests", dependencies: ["Provisioning", "Essentials", "CSQLite"]),
    ],
    swiftLanguageModes: [.v6]
)
