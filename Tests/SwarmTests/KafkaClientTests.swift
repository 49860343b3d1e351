import Foundation
import Shared
import SwarmKafka
@testable import SwarmdKit
import XCTest

/// The Kafka client swarm loads, said where an operator looks, and the
/// next-generation consumer protocol (KIP-848) on librdkafka's own mock.
final class KafkaClientTests: XCTestCase {
    /// Debian 12's own librdkafka, for running swarmd with the other library.
    static let systemLibrary = "/usr/lib/\(multiarch)/librdkafka.so.1"
    static var multiarch: String {
        (try? runCommand("/usr/bin/gcc", ["-print-multiarch"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? "x86_64-linux-gnu"
    }

    func testTheConsumerProtocolIsRefusedOnAClientTooOldAndBesideAnAssignmentStrategy() throws {
        XCTAssertThrowsError(try SwarmdValidation.checkGroupProtocol(["group.protocol": "consumer"], client: 0x0200_02FF, clientText: "2.0.2")) {
            XCTAssertTrue("\($0)".contains("needs librdkafka 2.12 or later; this swarmd loaded librdkafka 2.0.2"), "\($0)")
        }
        XCTAssertNoThrow(try SwarmdValidation.checkGroupProtocol(["group.protocol": "consumer"], client: 0x020E_02FF, clientText: "2.14.2"))
        XCTAssertThrowsError(try SwarmdValidation.checkGroupProtocol(["group.protocol": "consumer", "partition.assignment.strategy": "range"],
                                                                     client: 0x020E_02FF, clientText: "2.14.2")) {
            XCTAssertTrue("\($0)".contains("has no meaning with \"group.protocol\" = \"consumer\""), "\($0)")
        }
        XCTAssertThrowsError(try SwarmdValidation.checkGroupProtocol(["group.protocol": "next"], client: 0x020E_02FF, clientText: "2.14.2"))
        XCTAssertThrowsError(try SwarmdValidation.checkGroupProtocol(["group.protocol": "consumer", "session.timeout.ms": "6000"],
                                                                     client: 0x020E_02FF, clientText: "2.14.2")) {
            XCTAssertTrue("\($0)".contains("\"session.timeout.ms\" is not supported with \"group.protocol\" = \"consumer\""), "\($0)")
        }
        XCTAssertNoThrow(try SwarmdValidation.checkGroupProtocol(["group.protocol": "classic"], client: 0x0200_02FF, clientText: "2.0.2"))
    }

    /// Runs in both builds (.ci/run runs it against Debian's 2.0.2 too): the
    /// real `swarmd --check` refuses KIP-848 exactly when the loaded library
    /// is older than 2.12, and says which library that is.
    func testCheckSaysWhichLibraryRefusesTheConsumerProtocol() throws {
        let dir = makeTempDir()
        let file = dir.appendingPathComponent("swarmd.toml").path
        try "[kafka.properties]\n\"bootstrap.servers\" = \"kafka1:9092\"\n\"group.protocol\" = \"consumer\"\n".write(toFile: file, atomically: true, encoding: .utf8)
        let r = try runCommand(swarmdPath, ["--check", "--config", file])
        let (status, output) = (r.status, r.stdout + r.stderr)
        if Librdkafka.versionNumber < SwarmdValidation.consumerProtocolSince {
            XCTAssertEqual(status, 78, output)
            XCTAssertTrue(output.contains("needs librdkafka 2.12 or later; this swarmd loaded librdkafka \(Librdkafka.version)"), output)
        } else {
            XCTAssertEqual(status, 0, output)
        }
    }

    func testVersionNamesTheLoadedLibraryAndAnotherOneOnTheLibraryPath() throws {
        let own = try runCommand(swarmdPath, ["--version"]).stdout
        XCTAssertTrue(own.contains("librdkafka \(Librdkafka.version)"), own)
        guard FileManager.default.fileExists(atPath: Self.systemLibrary) else {
            throw XCTSkip("Debian's librdkafka1 is not installed: no other library to load")
        }
        let dir = makeTempDir()
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("librdkafka.so.1").path, withDestinationPath: Self.systemLibrary)
        var env = ProcessInfo.processInfo.environment
        env["LD_LIBRARY_PATH"] = dir.path
        let other = try runCommand(swarmdPath, ["--version"], environment: env).stdout
        let otherVersion = try XCTUnwrap(other.range(of: #"librdkafka [0-9.]+"#, options: .regularExpression).map { String(other[$0]) })
        XCTAssertTrue(otherVersion.hasPrefix("librdkafka 2.0."), "Debian 12's library is 2.0.x: \(other)")
        if !Librdkafka.version.hasPrefix("2.0.") {
            XCTAssertNotEqual(otherVersion, "librdkafka \(Librdkafka.version)", "the library on LD_LIBRARY_PATH is the one named")
        }
    }

    func testStatusAndMetricsNameTheClientAndTheGroupProtocolPerNode() throws {
        let broker = try BrokerUnderTest(topics: ["events": 2])
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: "events"),
                                         environment: ["RECORD_FILE": Record.fresh().path])
        eventually("both nodes to name their client") { swarmd.status()?.nodes.allSatisfy { $0.client != nil } == true }
        let status = try XCTUnwrap(swarmd.status())
        XCTAssertEqual(status.client, "librdkafka/\(Librdkafka.version)")
        XCTAssertEqual(Set(status.nodes.map(\.client)), ["librdkafka/\(Librdkafka.version)"])
        XCTAssertEqual(Set(status.nodes.map(\.groupProtocol)), ["classic"])
        let metrics = try swarmctl(["metrics"], socket: swarmd.socket).stdout
        XCTAssertTrue(metrics.contains("swarm_build_info{version=\"\(SwarmVersion.number)\",client=\"librdkafka/\(Librdkafka.version)\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("swarm_node_info{slot=\"0\",client=\"librdkafka/\(Librdkafka.version)\",group_protocol=\"classic\"} 1"), metrics)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    /// KIP-848 on librdkafka's mock: scale 1 -> 4 -> 2, drain + resume, a
    /// rolling restart and a node SIGKILL while 2,000 messages arrive; every
    /// message handled and the group committed to the end.
    func testTheConsumerProtocolScalesDrainsRollsAndSurvivesAKillWithNothingLost() throws {
        guard Librdkafka.versionNumber >= SwarmdValidation.consumerProtocolSince else {
            throw XCTSkip("librdkafka \(Librdkafka.version) has no KIP-848 (2.12 or later)")
        }
        let topic = "kip848"
        let broker = try BrokerUnderTest(topics: [topic: 8])
        let record = Record.fresh()
        let keys = (0..<2000).map { "k\($0)" }
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic,
                                                             extraProperties: "\"group.protocol\" = \"consumer\"")
                                            .replacingOccurrences(of: "\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n", with: ""),
                                         environment: ["RECORD_FILE": record.path, "SLOW_MS": "1"])
        eventually("the node to consume", timeout: 60) { swarmd.status()?.nodes.first?.kafka.map { ["consuming", "idle"].contains($0) } == true }
        XCTAssertEqual(swarmd.status()?.nodes.first?.groupProtocol, "consumer")
        try broker.produce(topic, keys: Array(keys[0..<500]))
        _ = try swarmctl(["scale", "4"], socket: swarmd.socket)
        eventually("four nodes holding partitions", timeout: 60) { swarmd.status()?.nodes.filter { $0.partitions > 0 }.count == 4 }
        try broker.produce(topic, keys: Array(keys[500..<1000]))
        _ = try swarmctl(["scale", "2"], socket: swarmd.socket)
        _ = try swarmctl(["drain", "1"], socket: swarmd.socket)
        _ = try swarmctl(["resume", "1"], socket: swarmd.socket)
        try broker.produce(topic, keys: Array(keys[1000..<1500]))
        _ = try swarmctl(["restart"], socket: swarmd.socket)
        let victim = try XCTUnwrap(swarmd.status()?.nodes.first?.pid)
        kill(victim, SIGKILL)
        try broker.produce(topic, keys: Array(keys[1500...]))
        eventually("every message handled", timeout: 120) { record.okKeys.count == keys.count }
        XCTAssertEqual(record.okKeys, Set(keys))
        eventually("the group committed to the end", timeout: 60) {
            guard let o = try? broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 8) else { return false }
            return o.committed == o.end
        }
        let twice = record.entries.filter { $0.outcome == "ok" }.count - keys.count
        print("KIP-848 scale, drain, roll, kill: \(twice) of \(keys.count) handled twice")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testCheckWarnsAboutAutoscaleBoundsThatCannotTakeEffect() throws {
        let dir = makeTempDir()
        let file = dir.appendingPathComponent("swarmd.toml").path
        try "[kafka.properties]\n\"bootstrap.servers\" = \"embedded\"\n[autoscale]\nmin = 2\nmax = 8\n".write(toFile: file, atomically: true, encoding: .utf8)
        let r = try runCommand(swarmdPath, ["--check", "--config", file])
        XCTAssertEqual(r.status, 0, "valid, with a warning: \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("warning: [autoscale] max, min set, but enabled = false: nothing autoscales (set enabled = true)"), r.stderr)
        try "[kafka.properties]\n\"bootstrap.servers\" = \"embedded\"\n[autoscale]\nenabled = true\nmax = 8\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertFalse(try runCommand(swarmdPath, ["--check", "--config", file]).stderr.contains("warning"))
    }
}
