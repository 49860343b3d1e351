import Shared
@testable import SwarmdKit
import XCTest

/// The pure core under random event sequences: spawns, exits, reports with
/// extreme values, commands, ticks far apart, reloads, autoscaling, a
/// handover (encode and decode) now and then. Asserts that nothing traps
/// and the invariants hold after every event. Seeded: a failure names its
/// seed; `SWARM_FUZZ_SEED` replays it, `SWARM_FUZZ_SCALE` runs longer
/// (README, "Fuzzing"). No process, no fd.
final class SwarmFuzzTests: XCTestCase {
    func testTheCoreNeverTrapsAndKeepsItsInvariantsUnderRandomEvents() throws {
        var events = 0
        for seed in FuzzBudget.seeds(80) {
            let started = Date()
            defer {
                if ProcessInfo.processInfo.environment["SWARM_FUZZ_TRACE"] != nil {
                    FileHandle.standardError.write("seed \(seed) \(Date().timeIntervalSince(started)) s\n".data(using: .utf8)!)
                }
            }
            var rng = SeededRandom(seed: seed)
            do {
                events += try SwarmFuzzDriver.session(&rng, events: 250).events
            } catch {
                XCTFail("seed \(seed) (SWARM_FUZZ_SEED=\(seed) replays it): \(error)")
                return
            }
        }
        XCTAssertGreaterThan(events, 10_000, "the fuzzer ran too few events to mean anything")
    }
}
