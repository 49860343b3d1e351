import Foundation

/// A seeded generator for the fuzz tests (SplitMix64): a failure names its
/// seed, and `SWARM_FUZZ_SEED=N` replays it exactly.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What the fuzzers draw from any generator: `SeededRandom` in the suite,
/// the input bytes themselves under libFuzzer (`FuzzBytes`, Fuzz/).
extension RandomNumberGenerator {
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &self)] }

    /// An integer biased to the edges a parser or a subtraction trips on.
    mutating func edgy(_ low: Int64, _ high: Int64) -> Int64 {
        switch Int.random(in: 0..<6, using: &self) {
        case 0: return low
        case 1: return high
        case 2: return Int64.random(in: low...min(high, low + 3), using: &self)
        case 3: return Int64.random(in: max(low, high - 3)...high, using: &self)
        default: return Int64.random(in: low...high, using: &self)
        }
    }

    /// Bytes mutated from a valid input: flips, cuts, repeats and splices,
    /// the way a coverage-blind fuzzer finds what a hand-written test misses.
    mutating func mutate(_ input: [UInt8], dictionary: [[UInt8]] = []) -> [UInt8] {
        var b = input
        for _ in 0..<Int.random(in: 1...4, using: &self) {
            switch Int.random(in: 0..<7, using: &self) {
            case 0 where !b.isEmpty: b[Int.random(in: 0..<b.count, using: &self)] = UInt8.random(in: 0...255, using: &self)
            case 1 where !b.isEmpty: b.removeSubrange(Int.random(in: 0..<b.count, using: &self)...)
            case 2 where !b.isEmpty:
                let i = Int.random(in: 0..<b.count, using: &self)
                b.insert(contentsOf: b[i..<min(b.count, i + Int.random(in: 1...16, using: &self))], at: i)
            case 3 where !dictionary.isEmpty:
                b.insert(contentsOf: pick(dictionary), at: Int.random(in: 0...b.count, using: &self))
            case 4 where !b.isEmpty: b.remove(at: Int.random(in: 0..<b.count, using: &self))
            case 5: b.insert(pick([0, 10, 13, 32, 0x22, 0x5C, 0x7B, 0x5B, 0xFF, 0xC3, 0xE2]), at: Int.random(in: 0...b.count, using: &self))
            default: b += (0..<Int.random(in: 0...8, using: &self)).map { _ in UInt8.random(in: 0...255, using: &self) }
            }
        }
        return b
    }
}

/// How much fuzzing a test does: its default budget times `SWARM_FUZZ_SCALE`
/// (default 1: seconds in the default suite; 100 for a long run, see README).
/// `SWARM_FUZZ_SEED` fixes the first seed.
enum FuzzBudget {
    static var scale: Int { ProcessInfo.processInfo.environment["SWARM_FUZZ_SCALE"].flatMap(Int.init).map { max(1, $0) } ?? 1 }
    static var firstSeed: UInt64 { ProcessInfo.processInfo.environment["SWARM_FUZZ_SEED"].flatMap(UInt64.init) ?? 0x5EED }

    /// The seeds to run: `runs` times the scale, from the first seed on.
    static func seeds(_ runs: Int) -> [UInt64] { (0..<UInt64(runs * scale)).map { firstSeed &+ $0 } }
}
