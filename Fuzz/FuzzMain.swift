import Foundation

/// The libFuzzer entry points for `scripts/fuzz` (built only with
/// `SWARM_FUZZ=1`, see Package.swift). One binary, one target per run, named
/// by `SWARM_FUZZ_TARGET`:
///
/// - `core`: the input's bytes are the random source of `SwarmFuzzDriver`,
///   which drives the pure core with events and checks its invariants after
///   each (the same driver as `SwarmFuzzTests`);
/// - `report`, `control`, `http`, `exec`, `cluster`, `config`: the input is
///   given to that parser and its `ParserProperty` must hold (the same
///   properties as `ParserFuzzTests`).
///
/// A broken property or invariant aborts with its description, so libFuzzer
/// keeps the input as a crash file; a trap does the same by itself. The
/// files that are not this one are links to the suite's own (Tests/SwarmTests/Support).
enum FuzzTarget {
    nonisolated(unsafe) static var run: (([UInt8]) throws -> Void)?
    nonisolated(unsafe) static var seeds: [[UInt8]] = []

    static let names = ["core", "report", "control", "http", "exec", "cluster", "config"]

    static func select(_ name: String, repository: URL) throws {
        if name == "core" {
            run = { bytes in
                var source = FuzzBytes(bytes)
                _ = try SwarmFuzzDriver.session(&source, events: min(400, bytes.count / 4), renderEvery: .max)
            }
            // Seeds as the suite's seeded sessions start: random bytes.
            seeds = (0..<8).map { i in
                var rng = SeededRandom(seed: 0x5EED &+ UInt64(i))
                return (0..<1024).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            return
        }
        let property: ParserProperty
        switch name {
        case "report": property = .report()
        case "control": property = try .control()
        case "http": property = .http()
        case "exec": property = .exec()
        case "cluster": property = try .cluster()
        case "config": property = .config(demo: try [UInt8](Data(contentsOf: repository.appendingPathComponent("examples/demo.toml"))))
        default: throw FuzzFailure("no fuzz target \(name); one of \(names.joined(separator: ", "))")
        }
        run = property.check
        seeds = property.seeds
    }
}

/// A random source that is the fuzzer's input: libFuzzer mutates the bytes,
/// and so steers every choice the driver makes. Once they run out it goes
/// on as a SplitMix64 generator seeded by the input's length, never as a
/// constant: `Int.random(in:using:)` draws again while a draw falls in its
/// rejection zone, and a source that repeats one value there never returns.
struct FuzzBytes: RandomNumberGenerator {
    private let bytes: [UInt8]
    private var at = 0
    private var after: SeededRandom
    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        after = SeededRandom(seed: UInt64(bytes.count))
    }

    mutating func next() -> UInt64 {
        guard at + 8 <= bytes.count else { return after.next() }
        var value: UInt64 = 0
        for _ in 0..<8 {
            value = value << 8 | UInt64(bytes[at])
            at += 1
        }
        return value
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do { try FuzzTarget.run?(bytes) } catch {
        FileHandle.standardError.write("swarm-fuzz: \(error)\n".data(using: .utf8)!)
        abort()
    }
    return 0
}

typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: FuzzCallback) -> CInt

/// The program's entry: SwiftPM links an executable's `main` to
/// `<module>_main`, and libFuzzer's own `main` is left out of the link, so
/// this selects the target, writes its seeds into the corpus folder
/// (`SWARM_FUZZ_CORPUS`) and hands over to libFuzzer's driver.
@_cdecl("swarm_fuzz_main")
public func swarmFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let environment = ProcessInfo.processInfo.environment
    let name = environment["SWARM_FUZZ_TARGET"] ?? ""
    let repository = URL(fileURLWithPath: environment["SWARM_REPOSITORY"] ?? FileManager.default.currentDirectoryPath)
    do { try FuzzTarget.select(name, repository: repository) } catch {
        FileHandle.standardError.write("swarm-fuzz: \(error)\n".data(using: .utf8)!)
        return 2
    }
    if let corpus = environment["SWARM_FUZZ_CORPUS"] {
        try? FileManager.default.createDirectory(atPath: corpus, withIntermediateDirectories: true)
        for (i, seed) in FuzzTarget.seeds.enumerated() {
            FileManager.default.createFile(atPath: "\(corpus)/seed-\(i)", contents: Data(seed))
        }
    }
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzzOneInput)
}
