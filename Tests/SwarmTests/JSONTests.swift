import Foundation
import Shared
import XCTest

/// swarm's own JSON (Sources/Shared/JSON), checked against the RFC's edge
/// cases and against Foundation's reading of the same text.
final class JSONTests: XCTestCase {
    private func status() -> SwarmStatus {
        SwarmStatus(pid: 42, state: .running, wanted: 2, running: 1, healthy: 1, uptimeS: 12.5, restarts: 3,
                    handled: Int64.max, failed: 0, rate: 0.1, malformedReports: 0, nodes: [
                        NodeStatus(slot: 0, pid: 100, state: .running, uptimeS: 1, restarts: 0, lastExit: "killed by \"KILL\"\n",
                                   rssBytes: 1 << 40, handled: 5, failed: 1, rate: 2.25, partitions: 6, lag: nil,
                                   partitionLag: [PartitionLag(topic: "orders/é", partition: 3, lag: 9)],
                                   reportAgeMs: 12, health: .ok),
                        NodeStatus(slot: 1, pid: nil, state: .backoff, uptimeS: 0, restarts: 7, lastExit: nil, rssBytes: nil,
                                   handled: 0, failed: 0, rate: 0, partitions: 0, lag: nil, reportAgeMs: nil, health: .down),
                    ])
    }

    func testStatusRoundTripsWithSnakeCaseSortedKeysAndNoNulls() throws {
        let response = ControlResponse(ok: true, status: status())
        let line = ControlProtocol.line(response)
        XCTAssertEqual(line.last, UInt8(ascii: "\n"))
        XCTAssertFalse(line.dropLast().contains(UInt8(ascii: "\n")), "one response is one line")
        XCTAssertEqual(try ControlProtocol.decoder.decode(ControlResponse.self, from: line.dropLast()), response)

        // Foundation reads the same text the same way: any JSON library can speak the protocol.
        let object = try JSONSerialization.jsonObject(with: Data(line)) as! [String: Any]
        let s = object["status"] as! [String: Any]
        XCTAssertEqual((s["handled"] as! NSNumber).int64Value, Int64.max, "64-bit counters survive exactly")
        XCTAssertEqual(s["uptime_s"] as? Double, 12.5)
        let nodes = s["nodes"] as! [[String: Any]]
        XCTAssertEqual(nodes[0]["last_exit"] as? String, "killed by \"KILL\"\n")
        XCTAssertEqual(nodes[0]["rss_bytes"] as? Int, 1 << 40)
        XCTAssertEqual((nodes[0]["partition_lag"] as! [[String: Any]])[0]["topic"] as? String, "orders/é")
        XCTAssertNil(nodes[1]["pid"], "nil is left out, as JSONEncoder does")
        XCTAssertEqual(String(decoding: line, as: UTF8.self).prefix(15), "{\"ok\":true,\"sta", "keys are sorted")
    }

    func testSnakeCase() {
        XCTAssertEqual(JSONValueEncoder.snakeCase("reportAgeMs"), "report_age_ms")
        XCTAssertEqual(JSONValueEncoder.snakeCase("uptimeS"), "uptime_s")
        XCTAssertEqual(JSONValueEncoder.snakeCase("v"), "v")
        XCTAssertEqual(JSONValueEncoder.snakeCase("nodeURL"), "node_url")
        XCTAssertEqual(JSONValueEncoder.snakeCase("URLValue"), "url_value")
    }

    func testRequestsDecodeFromAnyValidSpellingAndWrongTypesNameTheField() throws {
        let d = ControlProtocol.decoder
        let r = try d.decode(ControlRequest.self, from: Array(#" { "cmd" : "scale", "v" : 1, "nodes" : 1e1, "slots": [1, 2], "now": null } "#.utf8))
        XCTAssertEqual(r, ControlRequest(cmd: .scale, nodes: 10, slots: [1, 2]))
        XCTAssertThrowsError(try d.decode(ControlRequest.self, from: Array(#"{"v":1,"cmd":"scale","nodes":"12"}"#.utf8))) { error in
            guard case DecodingError.typeMismatch(_, let ctx) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(ctx.codingPath.map(\.stringValue), ["nodes"])
        }
        XCTAssertThrowsError(try d.decode(ControlRequest.self, from: Array(#"{"v":1,"cmd":"scale","nodes":2.5}"#.utf8)))
        XCTAssertThrowsError(try d.decode(ControlRequest.self, from: Array(#"{"v":1,"cmd":"scale","nodes":1e40}"#.utf8)))
        XCTAssertThrowsError(try d.decode(ControlRequest.self, from: Array(#"{"cmd":"status"}"#.utf8))) { error in
            guard case DecodingError.keyNotFound(let key, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(key.stringValue, "v")
        }
    }

    func testParserFollowsTheRFC() throws {
        XCTAssertEqual(try JSONValue.parse(#""a\"b\\c\/d\n\u00e9\ud83d\ude00""#), .string("a\"b\\c/d\né😀"))
        XCTAssertEqual(try JSONValue.parse("[-0, 1.5e-3, 12345678901234567890]"),
                       .array([.number("-0"), .number("1.5e-3"), .number("12345678901234567890")]))
        XCTAssertEqual(try JSONValue.parse("{\"a\":{},\"b\":[]}"), .object(["a": .object([:]), "b": .array([])]))
        for bad in ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", ".5", "+1", "tru", "nul", "'a'", "[1] 2",
                    "\"\\ud800\"", "\"\\x\"", "\"a\u{01}b\"", "\"abc", "{a:1}", "NaN", "\"\\u12\""] {
            XCTAssertThrowsError(try JSONValue.parse(bad), "accepted \(bad.debugDescription)") { error in
                XCTAssertTrue(error is JSONSyntaxError, "\(error)")
            }
        }
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        XCTAssertThrowsError(try JSONValue.parse(deep)) { XCTAssertTrue("\($0)".contains("nested deeper than 64")) }
        XCTAssertNoThrow(try JSONValue.parse(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)))
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0xFF, 0x22] as [UInt8]), "a string that is not UTF-8")
    }

    func testWriterEscapesWhatJSONRequiresAndRefusesNonFiniteNumbers() throws {
        XCTAssertEqual(JSONValue.string("a\"\\\n\t\u{01}/é").text, #""a\"\\\n\t\u0001/é""#)
        XCTAssertThrowsError(try JSONValueEncoder().encode([Double.nan]))
        XCTAssertThrowsError(try JSONValueEncoder().encode(["x": Double.infinity]))
    }

    func testTheNodeConfigurationRoundTrips() throws {
        var c = SwarmConfig()
        c.kafka.properties["sasl.password"] = "p\"w\\d"
        c.supervisor.socketMode = 0o660
        c.supervisor.memoryLimit = 3 << 30
        c.handler.command = ["/usr/bin/python3", "-u", "handler.py"]
        c.handler.onFailure = .deadLetter
        let text = try JSONValueEncoder().encode(c).text
        XCTAssertEqual(try JSONValueDecoder().decode(SwarmConfig.self, from: Array(text.utf8)), c)
        XCTAssertEqual(try JSONDecoder().decode(SwarmConfig.self, from: Data(text.utf8)), c, "Foundation reads it too")
    }

    func testTheStatusWriterWritesExactlyWhatCodableWrites() {
        var full = NodeStatus(slot: 3, pid: 77, state: .running, uptimeS: 12.5, restarts: 2, lastExit: "exited with status 1 \"x\"\n",
                              rssBytes: 123, handled: 9_000_000_000, failed: 1, rate: 0.1, partitions: 2, lag: 40,
                              partitionLag: [PartitionLag(topic: "orders/é", partition: 3, lag: 9), PartitionLag(topic: "b", partition: 0, lag: 0)],
                              reportAgeMs: 150, health: .ok)
        full.pssBytes = 99
        full.kafka = "disconnected"
        full.reason = "disconnected"
        full.processes = [ProcessMemoryStatus(pid: 77, name: "swarmd-node", rssBytes: 100, pssBytes: 50),
                          ProcessMemoryStatus(pid: 78, name: "py\tthon", rssBytes: 23, pssBytes: nil)]
        let bare = NodeStatus(slot: 0, pid: nil, state: .backoff, uptimeS: 0, restarts: 0, lastExit: nil, rssBytes: nil,
                              handled: 0, failed: 0, rate: 0, partitions: 0, lag: nil, reportAgeMs: nil, health: .down)
        let autoscale = AutoscaleStatus(active: false, min: 1, max: 0, lastDecision: "3 -> 5", reason: "lag \"x\" drains in 90 s",
                                        nextChangeInS: 12.5)
        for (version, upgrades, scaler) in [(String?.some("0.3.0 (build x)"), Int?.some(2), AutoscaleStatus?.some(autoscale)), (nil, nil, nil)] {
            var status = SwarmStatus(pid: 42, state: .running, wanted: 2, running: 1, healthy: 1, uptimeS: 1e-3, restarts: 3,
                                     handled: 5, failed: 6, rate: 1234.5, malformedReports: 7, version: version, upgrades: upgrades,
                                     autoscale: scaler, nodes: [bare, full])
            if version != nil { status.unownedLag = [PartitionLag(topic: "orders/é", partition: 1, lag: 51)] }
            for message in [nil, "ok"] {
                let response = ControlResponse(ok: true, message: message, status: status)
                XCTAssertEqual(String(decoding: ControlProtocol.line(response), as: UTF8.self),
                               String(decoding: ControlProtocol.codableLine(response), as: UTF8.self))
            }
        }
    }
}
