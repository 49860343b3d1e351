import Foundation
import Shared
import XCTest

/// Swarms of built-in nodes against librdkafka's mock cluster, with kcat as
/// an independent producer and consumer.
final class KafkaTests: XCTestCase {
    let topic = "events"
    let keys = (0..<200).map { "k\($0)" }

    func testSwarmHandlesEveryMessageSpreadsPartitionsAndCommitsToTheEndThenRedeliversNothing() throws {
        let broker = try BrokerUnderTest(topics: [topic: 4])
        try broker.produce(topic, keys: keys)
        let record = Record.fresh()
        var swarmd: SwarmdUnderTest? = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic),
                                                           environment: ["RECORD_FILE": record.path])
        eventually("every message handled", timeout: 60) { record.okKeys.count == keys.count }
        XCTAssertEqual(record.okKeys, Set(keys))
        XCTAssertEqual(Set(record.entries.map(\.slot)), ["0", "1"], "both nodes got partitions")
        eventually("both nodes to report 2 partitions", timeout: 30) {
            swarmd!.status()?.nodes.map(\.partitions) == [2, 2]
        }
        // Nodes report every report_interval: the count catches up with the record within one.
        eventually("the swarm's count to reach every message") { swarmd!.status()?.handled == Int64(keys.count) }
        eventually("every partition's lag reported, at 0") {
            let lags = swarmd!.status()?.nodes.flatMap { $0.partitionLag ?? [] } ?? []
            return Set(lags.map(\.partition)) == [0, 1, 2, 3] && lags.allSatisfy { $0.topic == "events" && $0.lag == 0 }
        }

        swarmd!.signal(SIGTERM)
        XCTAssertEqual(swarmd!.waitForExit(), 0)
        let offsets = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 4)
        XCTAssertEqual(offsets.committed, offsets.end, "the group's committed offsets reached the end")
        XCTAssertEqual(offsets.end.reduce(0, +), Int64(keys.count))
        swarmd = nil

        // A new swarm in the same group starts where the old one committed:
        // a marker per partition arrives, and nothing before it comes again.
        let seen = record.entries.count
        let again = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic),
                                        environment: ["RECORD_FILE": record.path])
        for p in 0..<4 { try broker.produce(topic, keys: ["marker\(p)"], partition: p) }
        eventually("the markers", timeout: 60) { record.okKeys.isSuperset(of: (0..<4).map { "marker\($0)" }) }
        XCTAssertEqual(record.entries.count, seen + 4, "messages were delivered again: \(record.entries.dropFirst(seen))")
        again.signal(SIGTERM)
        XCTAssertEqual(again.waitForExit(), 0)
    }

    func testAKilledNodesUnacknowledgedMessagesAreRedeliveredAndNoneIsLost() throws {
        let broker = try BrokerUnderTest(topics: [topic: 2])
        try broker.produce(topic, keys: keys)
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic),
                                         environment: ["RECORD_FILE": record.path, "SLOW_MS": "20"])
        eventually("the node to be busy", timeout: 60) { record.entries.count >= 30 }
        let victim = try XCTUnwrap(swarmd.nodePids().first)
        kill(victim, SIGKILL)
        swarmd.waitForLog("node exited: killed by signal KILL")
        eventually("every message handled", timeout: 90) { record.okKeys.count == keys.count }
        let redelivered = record.entries.count - keys.count
        XCTAssertGreaterThanOrEqual(redelivered, 0)
        XCTAssertLessThanOrEqual(redelivered, 60, "only messages in flight or uncommitted at the kill may repeat")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        let offsets = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 2)
        XCTAssertEqual(offsets.committed, offsets.end)
    }

    func testFailedMessagesAreRetriedThenSkipped() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        try broker.produce(topic, keys: ["a", "b", "c"])
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(
            config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic,
                                extraHandler: "retries = 2\nretry_backoff = 0.05\non_failure = \"skip\""),
            environment: ["RECORD_FILE": record.path, "FAIL_KEYS": "b"])
        swarmd.waitForLog("message failed every retry: skipped", timeout: 60)
        XCTAssertEqual(record.okKeys, ["a", "c"])
        XCTAssertEqual(record.entries.filter { $0.key == "b" }.count, 3, "one try and two retries")
        eventually("the failure to be counted") { swarmd.status()?.failed == 1 }
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        let offsets = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 1)
        XCTAssertEqual(offsets.committed, [3], "a skipped message does not stop its partition")
    }

    func testFailedMessagesGoToTheDeadLetterTopicWithTheReason() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1, "events.dlq": 1])
        try broker.produce(topic, keys: ["a", "poison", "c"])
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(
            config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic,
                                extraHandler: "retries = 1\nretry_backoff = 0.05\non_failure = \"dead-letter\"\ndead_letter_topic = \"events.dlq\""),
            environment: ["RECORD_FILE": record.path, "FAIL_KEYS": "poison"])
        // On failure, what the broker holds too: messages never produced and messages never fetched look alike in the log.
        eventually("a and c handled; broker (committed, end): \(String(describing: try? broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 1)))\n"
                   + "status: \(String(describing: swarmd.status()))\n\(swarmd.log.suffix(3000))", timeout: 60) { record.okKeys == ["a", "c"] }
        var dead: [String] = []
        eventually("the dead letter", timeout: 30) { dead = (try? broker.consumeAll("events.dlq")) ?? []; return !dead.isEmpty }
        XCTAssertEqual(dead.count, 1)
        let letter = try XCTUnwrap(dead.first, "no dead letter\n\(swarmd.log.suffix(3000))")
        XCTAssertTrue(letter.hasPrefix("poison|"), letter)
        XCTAssertTrue(letter.contains("swarm.error=injected failure"), letter)
        XCTAssertTrue(letter.contains("swarm.source=events/0/1"), letter)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testAHandlerThatCrashesIsRestartedAndItsMessageDeliveredAgain() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        try broker.produce(topic, keys: ["a", "boom", "c"])
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(
            config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic, extraHandler: "retry_backoff = 0.05"),
            environment: ["RECORD_FILE": record.path, "CRASH_KEY": "boom"])
        eventually("every message handled", timeout: 60) { record.okKeys == ["a", "boom", "c"] }
        XCTAssertTrue(swarmd.log.contains("handler exited: exited with status 1"), swarmd.log)
        XCTAssertEqual(swarmd.logCount("handler started"), 2)
        XCTAssertEqual(swarmd.status()?.nodes.first?.restarts, 0, "the node itself kept running")
    }

    func testKillingSwarmdStopsEveryBuiltInNodeAndPidofFindsOnlyTheSupervisor() throws {
        let broker = try BrokerUnderTest(topics: [topic: 2])
        let dir = makeTempDir()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic),
                                         environment: ["RECORD_FILE": dir.appendingPathComponent("record").path])
        swarmd.waitForHealthy(2)
        let pids = swarmd.nodePids()
        for pid in pids {
            let cmdline = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
            XCTAssertTrue(cmdline.hasPrefix("swarmd-node\u{0}node"), cmdline)
            // The supervisor's signals, sent to a whole unit by `systemctl kill`, must not hurt a node.
            let ignored = UInt64(try procStatusField(pid, "SigIgn"), radix: 16)!
            for sig in [SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU] {
                XCTAssertNotEqual(ignored & (1 << UInt64(sig - 1)), 0, "node does not ignore signal \(sig)")
            }
        }
        let pidof = try runCommand("/usr/bin/pidof", ["swarmd"])
        XCTAssertTrue(pidof.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.contains("\(swarmd.pid)"))
        for pid in pids { XCTAssertFalse(pidof.stdout.contains("\(pid)"), "pidof swarmd found a node") }
        swarmd.signal(SIGKILL)
        eventually("every node to leave on its own", timeout: 10) { pids.allSatisfy { !alive($0) } }
    }

    func testEmbeddedBrokerWithSyntheticTrafficIsTheDemo() throws {
        let swarmd = try SwarmdUnderTest(config: """
        [supervisor]
        nodes = 2
        [kafka.properties]
        "bootstrap.servers" = "embedded"
        "session.timeout.ms" = 6000
        [handler]
        kind = "cpu"
        cpu_rounds = 10
        [embedded]
        partitions = 4
        produce_rate = 500
        """)
        swarmd.waitForLog("embedded DEVELOPMENT broker")
        eventually("traffic to flow through both nodes", timeout: 60) {
            guard let s = swarmd.status() else { return false }
            return s.nodes.allSatisfy { $0.handled > 50 }
        }
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testTheExampleHandlersInPythonAndBashHandleEveryMessage() throws {
        let examples = fixtures.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples")
        for (name, command) in [("python", "[\"/usr/bin/python3\", \"\(examples.path)/handler.py\"]"),
                                ("bash", "[\"/bin/bash\", \"\(examples.path)/handler.sh\"]")] {
            let broker = try BrokerUnderTest(topics: [topic: 2])
            try broker.produce(topic, keys: (0..<40).map { "\(name)\($0)" })
            let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic)
                .replacingOccurrences(of: "command = [\"/usr/bin/python3\", \"\(recordHandler)\"]", with: "command = \(command)"))
            eventually("the \(name) example to handle 40 messages", timeout: 60) { swarmd.status()?.handled == 40 }
            XCTAssertEqual(swarmd.status()?.failed, 0)
            if name == "bash" { XCTAssertTrue(swarmd.log.contains("key=bash7 value=value-of-bash7"), "the handler's stderr is logged") }
            swarmd.signal(SIGTERM)
            XCTAssertEqual(swarmd.waitForExit(), 0)
        }
    }

    /// A handler that answers each message as soon as it has read it, with
    /// long answers: its stdout pipe fills while the node is still writing the
    /// batch. The node must read while it writes, or both wait forever.
    func testAHandlerThatAnswersWhileReadingABigBatchNeverDeadlocks() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        try broker.produce(topic, keys: (0..<400).map { "big\($0)" }, value: String(repeating: "v", count: 2000))
        let dir = makeTempDir()
        let handler = dir.appendingPathComponent("eager.py")
        try """
        import sys
        inp = sys.stdin.buffer
        while True:
            line = inp.readline()
            if not line:
                break
            for _ in range(int(line.split()[1])):
                f = inp.readline().split()
                inp.read(max(int(f[5]), 0) + int(f[6]) + 1)
                sys.stdout.write("fail " + "x" * 400 + "\\n")
                sys.stdout.flush()
        """.write(to: handler, atomically: true, encoding: .utf8)
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic, batchSize: 400,
                                                             extraHandler: "retries = 0")
            .replacingOccurrences(of: "command = [\"/usr/bin/python3\", \"\(recordHandler)\"]",
                                  with: "command = [\"/usr/bin/python3\", \"\(handler.path)\"]"))
        eventually("all 400 failed and skipped", timeout: 60) { swarmd.status()?.failed == 400 }
        XCTAssertFalse(swarmd.log.contains("handler exited"), "the handler was never restarted")
    }
}
