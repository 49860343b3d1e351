// swift-tools-version:6.0
import PackageDescription
#if canImport(Glibc)
import Glibc
#endif

/// The version a package build stamps into both binaries
/// (`SWARM_PACKAGE_VERSION`, set by debian/rules from debian/changelog), so
/// `swarmd --version` reports what `dpkg -l` does. Unset, the binaries report
/// `SwarmVersion.number`. Only characters a Debian version may hold are
/// accepted, so the value can go into a C string literal as it is.
let packageVersion: [CSetting] = {
    guard let raw = getenv("SWARM_PACKAGE_VERSION") else { return [] }
    let value = String(cString: raw)
    let allowed = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+~-:")
    guard !value.isEmpty, value.allSatisfy({ allowed.contains($0) }) else { return [] }
    return [.define("SWARM_PACKAGE_VERSION", to: "\"\(value)\"")]
}()

/// Release binaries are linked by lld with packed relative relocations
/// (DT_RELR, glibc 2.36+): with the Swift runtime linked statically, gold
/// left 900 KB of relocations that every start of swarmd and swarmctl reads
/// and keeps resident; RELR stores them in 7 KB. swarmd's idle RSS went from
/// 14.5 to 13.8 MB (BENCHMARKS.md). Debug builds and tests link as usual.
let releaseLinking: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"], .when(configuration: .release)),
]

/// The libFuzzer target, built only by `scripts/fuzz` (`SWARM_FUZZ=1`, its
/// own scratch path, every module instrumented with `-sanitize=fuzzer,address`):
/// the same core driver and parser properties as the suite's fuzz tests,
/// steered by coverage for as long as asked (README, "Fuzzing").
let fuzzTargets: [Target] = getenv("SWARM_FUZZ") == nil ? [] : [
    .executableTarget(
        name: "swarm-fuzz",
        dependencies: ["Shared", "SwarmdKit"],
        path: "Fuzz",
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]
    ),
]

let package = Package(
    name: "swarm",
    products: [
        .executable(name: "swarmd", targets: ["swarmd"]),
        .executable(name: "swarmctl", targets: ["swarmctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // The Linux calls Swift cannot reach directly: variadic syscall/prctl,
        // signalfd/epoll/pidfd headers, posix_spawn set-up, SO_PEERCRED.
        .target(name: "CSwarmLinux", cSettings: packageVersion),
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // What both binaries use: configuration, the control and report
        // protocols, the Linux bindings, logging.
        .target(
            name: "Shared",
            dependencies: [
                "CSwarmLinux",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The librdkafka bindings. A target of their own so that swarmctl does
        // not load librdkafka and its dozen libraries at every start: that
        // alone cost it 8 ms of its 10 ms budget.
        .target(
            name: "SwarmKafka",
            dependencies: ["CRdKafka", "Shared"]
        ),
        // The supervisor (its pure core in Swarm/, its I/O shell in
        // Supervisor/), the node runtime, its handlers and the embedded broker.
        .target(
            name: "SwarmdKit",
            dependencies: [
                "Shared", "SwarmKafka", "CSwarmLinux", "CSystemd",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "swarmd",
            dependencies: [
                "SwarmdKit", "Shared",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            linkerSettings: releaseLinking
        ),
        .executableTarget(
            name: "swarmctl",
            dependencies: [
                "Shared",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            linkerSettings: releaseLinking
        ),
        .testTarget(
            name: "SwarmTests",
            dependencies: ["Shared", "SwarmKafka", "SwarmdKit", "CSwarmLinux", "CRdKafka", "swarmd", "swarmctl"],
            exclude: ["Fixtures"]
        ),
    ] + fuzzTargets
)
