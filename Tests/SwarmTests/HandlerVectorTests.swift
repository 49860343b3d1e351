import Foundation
import SwarmKafka
@testable import SwarmdKit
import XCTest

/// The shared test vectors of swarm-handler(7) (contrib/vectors): the bytes
/// the node's framing code writes for each vector are the bytes on file, and
/// the answers a kit must write back parse to the results the vector gives.
/// The Python, Ruby and Node.js kits read the same files in their own tests,
/// so the four stay byte-compatible.
///
/// `SWARM_WRITE_VECTORS=1 swift test --filter HandlerVectorTests` writes the
/// frame files from vectors.json instead (after a deliberate framing change).
final class HandlerVectorTests: XCTestCase {
    static let directory = fixtures.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("contrib/vectors")

    struct Vector {
        var name: String
        var batches: [[KafkaMessage]]
        var results: [[HandleOutcome]]
        var answers: String
    }

    /// A byte field of vectors.json: null, {"text"}, {"base64"} or {"pattern", "length"}.
    static func bytes(_ field: Any?) throws -> [UInt8]? {
        guard let object = field as? [String: Any] else { return nil }
        if let text = object["text"] as? String { return Array(text.utf8) }
        if let b64 = object["base64"] as? String, let data = Data(base64Encoded: b64) { return Array(data) }
        if let pattern = object["pattern"] as? String, let length = object["length"] as? Int {
            let unit = Array(pattern.utf8)
            return (0..<length).map { unit[$0 % unit.count] }
        }
        throw NSError(domain: "vectors.json", code: 1, userInfo: [NSLocalizedDescriptionKey: "a byte field that is none of text, base64, pattern: \(object)"])
    }

    static func outcome(_ result: String) -> HandleOutcome {
        if result == "ok" { return .ok }
        if result == "defer" { return .deferred }
        // What every kit writes for a reason: its whitespace runs as single spaces.
        return .failed(result.dropFirst("fail:".count).split(whereSeparator: \.isWhitespace).joined(separator: " "))
    }

    static func load() throws -> [Vector] {
        let data = try Data(contentsOf: directory.appendingPathComponent("vectors.json"))
        let doc = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return try (doc["vectors"] as! [[String: Any]]).map { v in
            let batches = v["batches"] as! [[[String: Any]]]
            return Vector(
                name: v["name"] as! String,
                batches: try batches.map { batch in
                    try batch.map { m in
                        KafkaMessage(topic: m["topic"] as! String, partition: Int32(m["partition"] as! Int), offset: Int64(m["offset"] as! Int),
                                     key: try bytes(m["key"]), value: try bytes(m["value"]), timestamp: Int64(m["timestamp"] as! Int),
                                     headers: try (m["headers"] as! [[Any]]).map { (name: $0[0] as! String, value: try bytes($0[1]) ?? []) })
                    }
                },
                results: batches.map { $0.map { outcome($0["result"] as! String) } },
                answers: v["answers"] as! String)
        }
    }

    func testTheNodeWritesEveryVectorByteForByteInBothFramings() throws {
        let vectors = try Self.load()
        XCTAssertGreaterThanOrEqual(vectors.count, 9)
        let write = ProcessInfo.processInfo.environment["SWARM_WRITE_VECTORS"] == "1"
        for v in vectors {
            for framing in [1, 2] {
                let frame = v.batches.flatMap { framing == 2 ? ExecHandler.frameV2($0) : ExecHandler.frame($0) }
                let file = Self.directory.appendingPathComponent("\(v.name).\(framing)")
                if write { try Data(frame).write(to: file) }
                let onFile = try Data(contentsOf: file)
                XCTAssertEqual(Array(onFile), frame, "\(v.name), framing \(framing): the node's bytes differ from \(file.lastPathComponent)")
            }
        }
    }

    func testEveryVectorsAnswersParseToItsResults() throws {
        for v in try Self.load() {
            var outcomes: [HandleOutcome] = []
            for line in v.answers.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
                let answer = try XCTUnwrap(ExecAnswer.parse(Array(line.utf8)), "\(v.name): \"\(line)\" is not an answer")
                switch answer {
                case .ok(let n): outcomes += repeatElement(.ok, count: n)
                case .deferred(let n): outcomes += repeatElement(.deferred, count: n)
                case .fail(let reason): outcomes.append(.failed(reason))
                case .blank: break
                }
            }
            XCTAssertEqual(outcomes, v.results.flatMap { $0 }, v.name)
        }
    }
}
