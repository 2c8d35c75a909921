// swift-tools-version:6.1
import PackageDescription

// sitroom is Linux-only (docs/architecture.md): it builds on inotify, glibc and Debian's liblmdb and libcurl, so the
// package names no `platforms` (that list only sets Apple deployment floors; on Linux it has no effect).
let package = Package(
    name: "sitroom",
    products: [
        .executable(name: "sitroomd", targets: ["sitroomd"]),
        .executable(name: "sitroomctl", targets: ["sitroomctl"]),
        .executable(name: "zoom-sim", targets: ["zoom-sim"]),
        .executable(name: "sitroom-bench", targets: ["sitroom-bench"]),
        .executable(name: "sitroom-intake", targets: ["sitroom-intake"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        // Hummingbird's own: the intake names NIO's channel and HTTP/1 parser types.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // C libraries (Debian: liblmdb-dev, libcurl4-openssl-dev).
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        // Safe wrappers over C.
        .target(name: "LMDB", dependencies: ["CLMDB", "SitroomRuntime"]),
        .target(name: "Curl", dependencies: ["CCurl", "SitroomRuntime"]),
        .target(name: "PosixIO", dependencies: ["SitroomRuntime"]),

        // The runtime layer: executors and blocking workers that keep blocking calls off Swift's cooperative pool,
        // and the one reader-writer lock (everything else locks with `Synchronization.Mutex`).
        .target(name: "SitroomRuntime"),

        // Domain.
        .target(name: "SitroomCore"),
        .target(
            name: "SitroomConfig",
            dependencies: [
                "SitroomCore", .product(name: "Yams", package: "Yams"),
                .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        // The room machine: every decision about a room, as values (no I/O).
        .target(name: "SitroomRooms", dependencies: ["SitroomCore"]),
        .target(
            name: "SitroomStore",
            dependencies: ["SitroomCore", "LMDB", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "SitroomZoom",
            dependencies: [
                "SitroomCore", "Curl", .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Zoom's WebSocket event subscription (the live room): a client of its own, so only sitroomd links SwiftNIO's
        // WebSocket client (swift-websocket, from the Hummingbird project; libcurl on Debian 12 has no WebSocket).
        .target(
            name: "SitroomZoomEvents",
            dependencies: [
                "SitroomCore", "SitroomZoom", .product(name: "Logging", package: "swift-log"),
                .product(name: "WSClient", package: "swift-websocket"),
            ]
        ),
        .target(
            name: "SitroomNotify",
            dependencies: [
                "SitroomCore", "SitroomConfig", "SitroomRuntime", "PosixIO", "Curl",
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What sitroomd and sitroom-intake share as processes: root and paths, exit codes, log lines, the etc/ watch,
        // the metrics registry (swift-metrics over swift-prometheus, written as a textfile), the intake's state file.
        .target(
            name: "SitroomService",
            dependencies: [
                "PosixIO", "SitroomCore", .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "SitroomDaemon",
            dependencies: [
                "SitroomCore", "SitroomRooms", "SitroomConfig", "SitroomStore", "SitroomZoom", "SitroomZoomEvents",
                "SitroomNotify",
                "SitroomService", "SitroomRuntime", "PosixIO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "sitroomd",
            dependencies: [
                "SitroomDaemon", "SitroomService", "SitroomCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "sitroomctl",
            dependencies: [
                // SitroomConfig: `submit --check` parses a spool file as sitroomd would.
                "PosixIO", "SitroomCore", "SitroomConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // The HTTP front door (SPEC §11): the only part that listens on a port; it puts files into the spool and never
        // opens LMDB (no SitroomStore, no LMDB here).
        .target(
            name: "SitroomIntake",
            dependencies: [
                "SitroomService", "SitroomConfig", "SitroomCore", "SitroomZoom", "SitroomRuntime", "PosixIO",
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "sitroom-intake",
            dependencies: [
                "SitroomIntake", "SitroomService", "SitroomCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // The benchmark's floor and store prefill (`make bench`; README "Performance").
        .executableTarget(
            name: "sitroom-bench",
            dependencies: [
                "SitroomCore", "SitroomStore", "SitroomZoom", "PosixIO", "Curl", "LMDB",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // The Zoom API simulator: its own product, the only one that links an HTTP server.
        .target(
            name: "ZoomSim",
            dependencies: [
                "Curl",  // delivers webhooks (SimWebhooks)
                .product(name: "Hummingbird", package: "hummingbird"),
                // Zoom's WebSocket event subscriptions (the live room's events).
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "zoom-sim",
            dependencies: ["ZoomSim", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // Test fixtures: real servers on 127.0.0.1 (aiosmtpd SMTP, an SMS gateway/chat webhook double) and real
        // parsers (Python's email, icalendar), driven as Python child processes.
        .target(name: "SitroomTestFixtures", path: "Tests/Fixtures"),

        // Unit tests: one target per module.
        .testTarget(name: "LMDBTests", dependencies: ["LMDB"]),
        .testTarget(
            name: "SitroomRoomsTests",
            dependencies: [
                "SitroomRooms", "SitroomCore", .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(name: "CurlTests", dependencies: ["Curl", "SitroomTestFixtures"]),
        .testTarget(name: "SitroomNotifyTests", dependencies: ["SitroomNotify", "SitroomCore", "SitroomTestFixtures"]),
        .testTarget(name: "PosixIOTests", dependencies: ["PosixIO"]),
        .testTarget(name: "SitroomConfigTests", dependencies: ["SitroomConfig", "SitroomCore", "SitroomTestFixtures"]),
        .testTarget(name: "SitroomZoomTests", dependencies: ["SitroomZoom", "Curl"]),
        .testTarget(
            name: "SitroomStoreTests",
            dependencies: ["SitroomStore", "SitroomCore", "LMDB", "SitroomTestFixtures"]
        ),
        .testTarget(
            name: "SitroomDaemonTests",
            dependencies: [
                "SitroomDaemon", "SitroomNotify", "SitroomCore", "SitroomConfig", "SitroomStore", "SitroomService",
                "PosixIO",
                "Curl", "SitroomZoom", "SitroomTestFixtures", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SitroomIntakeTests",
            dependencies: [
                "SitroomIntake", "SitroomService", "SitroomConfig", "SitroomCore", "SitroomZoom", "PosixIO",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ZoomSimTests",
            dependencies: [
                "ZoomSim", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
                // A WebSocket client no one here wrote, for the event subscription endpoint `/ws`.
                .product(name: "WSClient", package: "swift-websocket"),
            ]
        ),
        // End-to-end: real processes (zoom-sim, sitroomd, sitroomctl) in a temporary root.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "PosixIO", "Curl", "LMDB", "SitroomZoom", "SitroomDaemon", "SitroomStore", "SitroomConfig",
                "SitroomCore",
                "SitroomTestFixtures", .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
