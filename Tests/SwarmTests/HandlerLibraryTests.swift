import Foundation
import Shared
import SwarmKafka
@testable import SwarmdKit
import XCTest

/// contrib/python/swarm_handler.py: a Python handler gets message objects,
/// in either framing, with every byte and every null as produced.
final class HandlerLibraryTests: XCTestCase {
    let topic = "lib"
    let library = fixtures.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("contrib/python").path

    /// A handler that writes each message it gets as JSON (bytes as hex, null as null).
    func dumpingHandler(_ dir: URL, raiseOnce: String? = nil) throws -> String {
        let path = dir.appendingPathComponent("dump.py")
        try """
        import json, os, sys
        sys.path.insert(0, \(String(reflecting: library)))
        import swarm_handler
        out = open(os.environ["DUMP_FILE"], "a", buffering=1)
        marker = os.environ["DUMP_FILE"] + ".raised"
        def hexed(b):
            return None if b is None else b.hex()
        def handle(batch):
            keys = [m.key for m in batch]
            if \(String(reflecting: raiseOnce ?? "")).encode() in keys and not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("downstream said no")
            for m in batch:
                out.write(json.dumps({"topic": m.topic, "partition": m.partition, "offset": m.offset, "key": hexed(m.key),
                                      "value": hexed(m.value), "headers": [[n, hexed(v)] for n, v in m.headers],
                                      "ts": m.timestamp > 0, "protocol": os.environ["SWARM_HANDLER_PROTOCOL"]}) + "\\n")
        swarm_handler.run(handle)
        """.write(to: path, atomically: true, encoding: .utf8)
        return path.path
    }

    func swarm(_ broker: BrokerUnderTest, handler: String, protocolVersion: Int, dump: String, pipeline: Int = 2) throws -> SwarmdUnderTest {
        try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic, batchSize: 7,
                                                extraHandler: "protocol = \(protocolVersion)\nretry_backoff = 0.05\npipeline = \(pipeline)")
            .replacingOccurrences(of: "command = [\"/usr/bin/python3\", \"\(recordHandler)\"]", with: "command = [\"/usr/bin/python3\", \"\(handler)\"]"),
                            environment: ["DUMP_FILE": dump])
    }

    func dumped(_ path: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func testEveryByteAndEveryNullArrivesInBothFramings() throws {
        for version in [1, 2] {
            let broker = try BrokerUnderTest(topics: [topic: 1])
            // kcat, the independent producer: message and key delimiters that the data never holds,
            // so that values carry newlines, NULs and every other byte.
            let binary = Data((0...255).map { UInt8($0) }.filter { $0 != UInt8(ascii: "#") })
            var input = Data("k1~plain value#".utf8)
            input += Data("k2~".utf8) + binary + Data("#".utf8)
            input += Data("no key at all#".utf8)
            input += Data("k4~#".utf8)
            var r = try runCommand("/usr/bin/kcat", ["-P", "-b", broker.bootstrap, "-t", topic, "-K", "~", "-D", "#",
                                                     "-H", "trace=abc", "-H", "bin=\u{1}\u{2}"], stdin: input)
            XCTAssertEqual(r.status, 0, r.stderr)
            r = try runCommand("/usr/bin/kcat", ["-P", "-b", broker.bootstrap, "-t", topic, "-K", "~", "-Z"], stdin: Data("gone~\n".utf8))
            XCTAssertEqual(r.status, 0, r.stderr)
            let dir = makeTempDir()
            let dump = dir.appendingPathComponent("dump").path
            let swarmd = try swarm(broker, handler: try dumpingHandler(dir), protocolVersion: version, dump: dump)
            eventually("the five messages (framing \(version))", timeout: 60) { dumped(dump).count >= 5 }
            let got = dumped(dump)
            XCTAssertEqual(got.count, 5)
            func hex(_ s: String) -> String { Data(s.utf8).map { String(format: "%02x", $0) }.joined() }
            XCTAssertEqual(got.map { $0["key"] as? String }, [hex("k1"), hex("k2"), nil, hex("k4"), hex("gone")])
            XCTAssertEqual(got.map { $0["value"] as? String }, [hex("plain value"), binary.map { String(format: "%02x", $0) }.joined(), hex("no key at all"), "", nil],
                           "an empty value is empty, a tombstone is null")
            XCTAssertEqual(got.map { $0["offset"] as? Int }, [0, 1, 2, 3, 4])
            XCTAssertEqual(got[0]["headers"] as? [[String]], [["trace", hex("abc")], ["bin", "0102"]])
            XCTAssertEqual(got[4]["headers"] as? [[String]], [])
            XCTAssertTrue(got.allSatisfy { $0["topic"] as? String == topic && $0["ts"] as? Bool == true })
            XCTAssertTrue(got.allSatisfy { $0["protocol"] as? String == "\(version)" })
            XCTAssertEqual(swarmd.status()?.failed, 0)
            swarmd.signal(SIGTERM)
            XCTAssertEqual(swarmd.waitForExit(), 0)
        }
    }

    func testARaisingHandlerFailsItsBatchWhichIsRetriedAndNothingIsLost() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        let keys = (0..<20).map { "r\($0)" }
        try broker.produce(topic, keys: keys)
        let dir = makeTempDir()
        let dump = dir.appendingPathComponent("dump").path
        // One batch at a time: with batches pipelined, the batch after the failed one was
        // handled too and comes again after it (OrderingTests checks that rule).
        let swarmd = try swarm(broker, handler: try dumpingHandler(dir, raiseOnce: "r3"), protocolVersion: 2, dump: dump, pipeline: 1)
        eventually("every key handled", timeout: 60) { Set(dumped(dump).compactMap { $0["key"] as? String }).count == keys.count }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dump + ".raised"), "the handler did raise once")
        XCTAssertTrue(swarmd.log.contains("RuntimeError: downstream said no"), "the exception's text is the failure reason")
        let offsets = dumped(dump).map { $0["offset"] as! Int }
        XCTAssertEqual(offsets, Array(0..<20), "the failed batch came again, in order, and was handled once")
        XCTAssertEqual(swarmd.status()?.failed, 0, "retried, not given up")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testFraming2IsWhatTheManPageSays() {
        let m = KafkaMessage(topic: "t", partition: 3, offset: 9, key: nil, value: Array("v".utf8), timestamp: 5,
                             headers: [(name: "h", value: [7])])
        let tombstone = KafkaMessage(topic: "t", partition: 3, offset: 10, key: Array("k".utf8), value: nil, timestamp: -1)
        let frame = ExecHandler.frameV2([m, tombstone])
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let records = 2 * 64 + 1 * 32 + 1 * 16  // two messages, one header, one topic
        // The data: "t" at 176, then the first message's header "h"=[7], its (null) key and value "v", then the key "k".
        let t = Int64(records)
        var rest = le(UInt32(0)) + le(Int32(3)) + le(Int64(9)) + le(Int64(5)) + le(Int64(-1)) + le(Int64(-1))
        rest += le(t + 3) + le(t + 4) + le(UInt32(0)) + le(UInt32(1))
        rest += le(UInt32(0)) + le(Int32(3)) + le(Int64(10)) + le(Int64(-1)) + le(t + 4) + le(t + 5)
        rest += le(Int64(-1)) + le(Int64(-1)) + le(UInt32(1)) + le(UInt32(0))
        rest += le(t + 1) + le(t + 2) + le(t + 2) + le(t + 3)  // the header: name, value
        rest += le(t) + le(t + 1)  // the topic
        rest += Array("t".utf8) + Array("h".utf8) + [7] + Array("v".utf8) + Array("k".utf8)
        XCTAssertEqual(rest.count, records + 5)
        XCTAssertEqual(frame, Array("SWB2".utf8) + le(UInt32(2)) + le(UInt32(1)) + le(UInt32(1)) + le(UInt64(rest.count)) + rest)
    }
}
