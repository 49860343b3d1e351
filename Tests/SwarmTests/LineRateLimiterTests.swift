import Shared
import XCTest

/// The limit on a handler's stderr, driven by a fake clock.
final class LineRateLimiterTests: XCTestCase {
    func testABurstPassesThenTheRateThenACountOfTheRest() {
        var l = LineRateLimiter(linesPerSecond: 2, burst: 4, reportEvery: 10, now: 0)
        let first = (0..<10).map { _ in l.admit(now: 0) }
        XCTAssertEqual(first.prefix(4), [.pass(suppressedBefore: 0), .pass(suppressedBefore: 0), .pass(suppressedBefore: 0), .pass(suppressedBefore: 0)])
        XCTAssertEqual(Array(first.dropFirst(4)), Array(repeating: .drop(report: nil), count: 6))
        XCTAssertEqual(l.pending, 6)
        XCTAssertEqual(l.admit(now: 0.5), .pass(suppressedBefore: 6), "the next line that passes says how many were held back")
        XCTAssertEqual(l.pending, 0)
    }

    func testAFloodIsCountedOncePerInterval() {
        var l = LineRateLimiter(linesPerSecond: 1, burst: 1, reportEvery: 10, now: 0)
        var reports: [Int] = []
        var passed = 0
        // 100 lines a second for 30 s.
        for i in 0..<3000 {
            switch l.admit(now: Double(i) / 100) {
            case .pass(let before): passed += 1; if before > 0 { reports.append(before) }
            case .drop(let r): if let r { reports.append(r) }
            }
        }
        XCTAssertEqual(passed + reports.reduce(0, +) + l.pending, 3000, "every line passes or is counted")
        XCTAssertLessThanOrEqual(passed, 31)
        XCTAssertGreaterThan(reports.count, 0)
    }

    func testRateZeroLetsEverythingThrough() {
        var l = LineRateLimiter(linesPerSecond: 0, burst: 0, now: 0)
        XCTAssertTrue((0..<1000).allSatisfy { _ in l.admit(now: 0) == .pass(suppressedBefore: 0) })
    }
}
