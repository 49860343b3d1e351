import Foundation
import Shared
import SwarmKafka
@testable import SwarmdKit
import XCTest

final class ProtocolTests: XCTestCase {
    /// swarmctl status --json decides its exit status from the JSON alone:
    /// the same answer as from the decoded status, for statuses of every shape.
    func testHealthReadFromStatusJSONIsHealthReadFromTheStatus() throws {
        var rng = SeededRandom(seed: 27)
        for round in 0..<500 {
            let wanted = Int.random(in: 0...6, using: &rng)
            let nodes = (0..<Int.random(in: 0...8, using: &rng)).map { slot in
                NodeStatus(slot: slot, pid: 100 + Int32(slot), state: NodeStatusState.allCases.randomElement(using: &rng)!, uptimeS: 1,
                           restarts: 0, lastExit: nil, rssBytes: nil, handled: 0, failed: 0, rate: 0, partitions: 1, lag: nil,
                           reportAgeMs: nil, health: Bool.random(using: &rng) ? .ok : NodeHealth.allCases.randomElement(using: &rng)!)
            }
            let status = SwarmStatus(pid: 1, state: .running, wanted: wanted, running: nodes.count, healthy: 0, uptimeS: 1, restarts: 0,
                                     handled: 0, failed: 0, rate: 0, malformedReports: 0, nodes: nodes)
            let json = try JSONValue.parse(StatusJSON.document(status))
            XCTAssertEqual(StatusTable.allHealthy(json: json), StatusTable.allHealthy(status), "round \(round): \(json.text)")
        }
        XCTAssertFalse(StatusTable.allHealthy(json: .object([:])), "not a status: not healthy")
        XCTAssertFalse(StatusTable.allHealthy(json: try JSONValue.parse("{\"wanted\":1,\"nodes\":[{\"slot\":0}]}")), "no health: not healthy")
    }

    func testReportCountersAndTheBatchHistogramRoundTrip() throws {
        var r = NodeReport()
        r.kafka = .waiting
        r.retried = 3
        r.deadLettered = 1
        r.rebalances = 2
        r.holds = 5
        r.batchBuckets = (0...NodeReport.batchBucketsMs.count).map { Int64($0) }
        r.batchSumMs = 1234
        XCTAssertEqual(try NodeReport.parse(Array(r.encoded().dropLast().utf8)), r)
        XCTAssertTrue(r.encoded().contains(" holds=5 "), "the answer to a hold, on the wire: \(r.encoded())")
        XCTAssertThrowsError(try NodeReport.parse(Array("v=1 holds=many".utf8)))
        XCTAssertThrowsError(try NodeReport.parse(Array("v=1 batch_ms=1,2".utf8)))
        XCTAssertThrowsError(try NodeReport.parse(Array("v=1 kafka=sleepy".utf8))) {
            XCTAssertTrue("\($0)".contains("kafka=sleepy is not one of joining, consuming"), "\($0)")
        }
        XCTAssertEqual(NodeReport.batchBucket(ms: 0.3), 0)
        XCTAssertEqual(NodeReport.batchBucket(ms: 7), 2)
        XCTAssertEqual(NodeReport.batchBucket(ms: 120_000), NodeReport.batchBucketsMs.count)
    }

    /// A detail (librdkafka's words for a refusal) is one word on the line:
    /// spaces, "%" and control characters travel escaped and come back; a
    /// detail from an older node (spaces as "_") still reads.
    func testADetailWithSpacesPercentAndControlCharactersRoundTrips() throws {
        var r = NodeReport()
        r.kafka = .authFailed
        r.detail = "SASL authentication error: 100% refused\tby \"broker\" ünïcode"
        let line = r.encoded()
        XCTAssertEqual(line.filter { $0 == " " }.count, line.split(separator: " ").count - 1, "one word per key: \(line)")
        let back = try NodeReport.parse(Array(line.dropLast().utf8))
        XCTAssertEqual(back.detail, "SASL authentication error: 100% refused by \"broker\" ünïcode", "a tab reads back as a space")
        XCTAssertEqual(back.kafka, .authFailed)
        XCTAssertEqual(try NodeReport.parse(Array("v=1 detail=no_poll_for_5_s".utf8)).detail, "no_poll_for_5_s")
    }

    func testReportsRoundTripAndIgnoreUnknownKeys() throws {
        var r = NodeReport()
        r.handled = 12
        r.failed = 1
        r.partitions = 3
        r.lag = 7
        r.health = .unhealthy
        r.reason = 2
        r.detail = "stuck for 70 s"
        let parsed = try NodeReport.parse(Array(r.encoded().dropLast().utf8))
        XCTAssertEqual(parsed.handled, 12)
        XCTAssertEqual(parsed.reason, 2)
        XCTAssertEqual(parsed.detail, "stuck for 70 s", "the detail comes back as it was written")
        XCTAssertEqual(try NodeReport.parse(Array("v=1 health=ok future_key=9".utf8)).health, .ok)
        r.partitionLag = [TopicPartition(topic: "orders.v2", partition: 0): 5, TopicPartition(topic: "orders.v2", partition: 11): 0,
                          TopicPartition(topic: "a/b", partition: 2): 7]
        XCTAssertEqual(try NodeReport.parse(Array(r.encoded().dropLast().utf8)).partitionLag, r.partitionLag)
        XCTAssertEqual(PartitionLag.list(r.partitionLag), [PartitionLag(topic: "a/b", partition: 2, lag: 7),
                                                           PartitionLag(topic: "orders.v2", partition: 0, lag: 5),
                                                           PartitionLag(topic: "orders.v2", partition: 11, lag: 0)])
    }

    func testMalformedReportsSayWhatIsWrong() {
        func reason(_ line: String) -> String {
            do { _ = try NodeReport.parse(Array(line.utf8)); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertEqual(reason("health=ok"), "no v=1 field")
        XCTAssertEqual(reason("v=2 health=ok"), "version 2 is not supported (this swarmd speaks v=1)")
        XCTAssertEqual(reason("v=1 handled=lots"), "handled=lots is not an integer")
        XCTAssertEqual(reason("v=1 health=meh"), "health=meh is not ok or unhealthy")
        XCTAssertEqual(reason("v=1 garbage"), "'garbage' is not key=value")
    }

    func testLineBufferSplitsLinesAndCapsTheirLength() {
        var b = LineBuffer(limit: 8)
        XCTAssertEqual(b.feed(Array("ab\ncd".utf8)), [.line(Array("ab".utf8))])
        XCTAssertEqual(b.feed(Array("e\r\n".utf8)), [.line(Array("cde".utf8))])
        XCTAssertEqual(b.feed(Array("0123456789".utf8)), [.overflow])
        XCTAssertEqual(b.feed(Array("xx\nok\n".utf8)), [.line(Array("ok".utf8))])
    }

    func testBackoffRestartsAtOnceThenDoublesUpToTheCap() {
        let b = Backoff(cap: 5)
        XCTAssertEqual((1...6).map { b.delay(afterFailures: $0) }, [0, 0.5, 1, 2, 4, 5])
    }

    func testSHA256MatchesTheStandardVectors() {
        func hex(_ s: String) -> String { SHA256.hash(Array(s.utf8)).map { String(format: "%02x", $0) }.joined() }
        XCTAssertEqual(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex(String(repeating: "a", count: 1000)), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    func testExecFramingIsBinarySafe() {
        let m = KafkaMessage(topic: "t", partition: 2, offset: 40, key: [0, 10], value: Array("a\nb".utf8), timestamp: 5,
                             headers: [(name: "h", value: [1])])
        let frame = ExecHandler.frame([m])
        let expected: [UInt8] = Array("batch 1\nmessage t 2 40 5 2 3 1\nheader 1 1\nh".utf8) + [1, 10] + [0, 10] + Array("a\nb\n".utf8)
        XCTAssertEqual(frame, expected)
    }

    func testSocketPathLookupOrder() {
        XCTAssertEqual(SocketPath.resolve(option: "/x.sock", environment: ["SWARMD_SOCKET": "/y"]), "/x.sock")
        XCTAssertEqual(SocketPath.resolve(option: nil, environment: ["SWARMD_SOCKET": "/y", "RUNTIME_DIRECTORY": "/run/a"]), "/y")
        XCTAssertEqual(SocketPath.resolve(option: nil, environment: ["RUNTIME_DIRECTORY": "/run/a:/run/b"]), "/run/a/swarmd.sock")
        XCTAssertEqual(SocketPath.resolve(option: nil, environment: [:]), "/run/swarmd/swarmd.sock")
    }
}
