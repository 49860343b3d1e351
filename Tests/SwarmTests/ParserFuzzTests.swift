import Foundation
import Shared
@testable import SwarmdKit
import XCTest

/// Every parser of untrusted bytes under mutated and random input: node
/// reports, control requests (decoded, mapped, and handed to a core), HTTP
/// request heads, exec handler answers, cluster records from the status
/// topic, JSON and TOML. Nothing may trap; what is accepted must be within
/// the documented ranges. Seeded like `SwarmFuzzTests` (README, "Fuzzing").
final class ParserFuzzTests: XCTestCase {
    /// Runs the property on `runs` inputs mutated from its seeds, and on random bytes.
    private func fuzz(_ property: ParserProperty) {
        for seed in FuzzBudget.seeds(1) {
            var rng = SeededRandom(seed: seed)
            for i in 0..<property.runs {
                var input = rng.chance(0.1) ? (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                                             : rng.pick(property.seeds)
                for _ in 0..<Int.random(in: 0...3, using: &rng) { input = rng.mutate(input, dictionary: property.dictionary) }
                do { try property.check(input) } catch {
                    XCTFail("\(property.name): seed \(seed), input \(i) \(Array(input.prefix(200))): \(error)")
                    return
                }
            }
        }
    }

    func testNodeReportsAreParsedOrRefusedAndAcceptedValuesAreInRange() { fuzz(.report()) }

    func testControlRequestsAreDecodedMappedAndHandledWithoutATrap() throws { fuzz(try .control()) }

    func testHTTPRequestHeadsAreParsedOrRefused() { fuzz(.http()) }

    func testExecHandlerAnswersAreParsedOrRefused() { fuzz(.exec()) }

    func testClusterRecordsAndJSONFromOtherHostsNeverTrap() throws { fuzz(try .cluster()) }

    func testConfigurationFilesAreReadOrRefusedWithAnError() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        fuzz(.config(demo: try [UInt8](Data(contentsOf: root.appendingPathComponent("examples/demo.toml")))))
    }
}
