import Foundation
import Shared
import SwarmKafka
import XCTest

let recordHandler = fixtures.appendingPathComponent("record-handler.py").path

/// `swarmd broker`: a development broker that outlives the swarms of a test.
final class BrokerUnderTest {
    let process = Process()
    let bootstrap: String
    private let input = Pipe()

    /// `launcher` runs it through another program that execs it (`ip netns exec NS`).
    init(topics: [String: Int], launcher: [String] = []) throws {
        let output = Pipe()
        let args = ["broker"] + topics.flatMap { ["--topic", "\($0.key):\($0.value)"] }
        process.executableURL = URL(fileURLWithPath: launcher.first ?? swarmdPath)
        process.arguments = launcher.isEmpty ? args : Array(launcher.dropFirst()) + [swarmdPath] + args
        process.standardOutput = output
        process.standardInput = input
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while true {
            let byte = output.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            line += byte
        }
        bootstrap = String(decoding: line, as: UTF8.self)
        precondition(bootstrap.contains(":"), "swarmd broker printed no bootstrap address")
    }

    deinit {
        try? input.fileHandleForWriting.close()  // EOF on stdin stops it
        process.waitUntilExit()
    }

    func committedAndEnd(group: String, topic: String, partitions: Int) throws -> (committed: [Int64], end: [Int64]) {
        let c = try KafkaConsumer(properties: ["bootstrap.servers": bootstrap, "group.id": group, "log_level": "0"])
        defer { c.close() }
        return (try c.committed(topic: topic, partitions: partitions), try c.highWatermarks(topic: topic, partitions: partitions))
    }
}

/// What the record handler wrote: one entry per message seen.
struct Record {
    struct Entry: Hashable {
        var slot: String
        var partition: Int
        var offset: Int
        var key: String
        var outcome: String
    }

    let path: String

    /// A record file of its own, for one swarm (or several in turn) to write.
    static func fresh() -> Record {
        Record(path: makeTempDir().appendingPathComponent("record").path)
    }

    var entries: [Entry] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ").map(String.init)
            guard f.count == 6, let p = Int(f[2]), let o = Int(f[3]) else { return nil }
            return Entry(slot: f[0], partition: p, offset: o, key: f[4], outcome: f[5])
        }
    }
    var okKeys: Set<String> { Set(entries.filter { $0.outcome == "ok" }.map(\.key)) }

    /// One past the highest offset handled in each partition: where the
    /// group's committed offsets must end (never the broker's high
    /// watermark, which Tansu reports wrong).
    func nextOffsets(partitions: Int) -> [Int64] {
        var highest = [Int64](repeating: -1, count: partitions)
        for e in entries where e.outcome == "ok" && e.partition < partitions { highest[e.partition] = max(highest[e.partition], Int64(e.offset)) }
        return highest.map { $0 + 1 }
    }

    /// How many handlings there were beyond one per key, for `keys` produced.
    func handledTwice(of keys: Int) -> Int { entries.filter { $0.outcome == "ok" }.count - keys }
}

/// A swarm configuration of built-in nodes with the record handler, against a broker.
func kafkaConfig(bootstrap: String, nodes: Int, topic: String, batchSize: Int = 20, extraHandler: String = "", extraSupervisor: String = "",
                 extraProperties: String = "") -> String {
    """
    [supervisor]
    nodes = \(nodes)
    report_interval = 0.5
    kill_timeout = 10
    shutdown_timeout = 30
    \(extraSupervisor)

    [kafka]
    topics = ["\(topic)"]
    group_id = "swarm-test"

    [kafka.properties]
    "bootstrap.servers" = "\(bootstrap)"
    "session.timeout.ms" = 6000
    "heartbeat.interval.ms" = 500
    \(extraProperties)

    [handler]
    kind = "exec"
    command = ["/usr/bin/python3", "\(recordHandler)"]
    batch_size = \(batchSize)
    commit_interval = 0.5
    \(extraHandler)
    """
}
