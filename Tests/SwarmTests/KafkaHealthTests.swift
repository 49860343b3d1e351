import Foundation
import Shared
import XCTest

/// Healthy means consuming: what a swarm says, and does, about Kafka itself —
/// a backlog, a broker outage, more nodes than partitions, nodes that leave.
/// Real swarmd, real nodes, the mock broker (`swarmd broker`).
final class KafkaHealthTests: XCTestCase {
    let topic = "health"

    /// swarmctl status's exit status: 0 healthy, 3 degraded.
    func statusExit(_ swarmd: SwarmdUnderTest) throws -> Int32 {
        try swarmctl(["status"], socket: swarmd.socket).status
    }

    func testABacklogIsConsumedWithTheDefaultConfiguration() throws {
        let broker = try BrokerUnderTest(topics: [topic: 3])
        let keys = (0..<300).map { "b\($0)" }
        try broker.produce(topic, keys: keys)  // before any consumer of the group exists
        let record = Record.fresh()
        // No auto.offset.reset in the file: librdkafka's own default (latest) would skip all 300.
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic),
                                         environment: ["RECORD_FILE": record.path])
        eventually("the backlog handled; \(record.okKeys.count) so far", timeout: 60) { record.okKeys == Set(keys) }
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testABrokerOutageDegradesTheSwarmWithoutRestartsAndItRecoversByItself() throws {
        let broker = try BrokerUnderTest(topics: [topic: 2])
        let record = Record.fresh()
        // The outage: the broker process frozen (SIGSTOP), as a hung broker or
        // a network partition looks to a client — connections open, nothing
        // answers. (The mock's own set_down/set_up left requests sent around
        // the switch unanswered for 60 s and more: not what a broker does.)
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic,
                                                             extraSupervisor: "disconnected_after = 1",
                                                             extraProperties: "\"socket.timeout.ms\" = 2000"),
                                         environment: ["RECORD_FILE": record.path])
        eventually("both nodes consuming: \(String(describing: swarmd.status()?.nodes.map(\.kafka)))", timeout: 60) {
            try! self.statusExit(swarmd) == 0
        }
        kill(broker.process.processIdentifier, SIGSTOP)
        defer { kill(broker.process.processIdentifier, SIGCONT) }  // whatever fails below
        eventually("every node disconnected: \(String(describing: swarmd.status()?.nodes.map(\.kafka)))", timeout: 60) {
            swarmd.status()?.nodes.allSatisfy { $0.kafka == "disconnected" && $0.health == .degraded } == true
        }
        let down = try swarmctl(["status"], socket: swarmd.socket)
        XCTAssertEqual(down.status, ExitStatus.degraded, "a probe sees the outage")
        XCTAssertTrue(down.stdout.contains("slot 0: degraded: disconnected"), down.stdout)
        XCTAssertEqual(swarmd.status()?.restarts, 0, "restarting consumers brings no broker back")

        kill(broker.process.processIdentifier, SIGCONT)
        eventually("consuming again: \(String(describing: swarmd.status()?.nodes.map(\.kafka)))\n\(swarmd.log.suffix(3000))", timeout: 90) {
            try! self.statusExit(swarmd) == 0
        }
        try broker.produce(topic, keys: ["after"])
        eventually("a message produced after the outage handled", timeout: 60) { record.okKeys.contains("after") }
        XCTAssertEqual(swarmd.status()?.restarts, 0)
        XCTAssertTrue(swarmd.log.contains("a broker answers again"))
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testAnUnreachableBrokerHoldsReadyUntilTheReadyTimeoutWhichSaysWhy() throws {
        let notify = SystemdNotifyTests.NotifySocket(dir: makeTempDir())
        // Port 1 on loopback: nothing listens there.
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: "127.0.0.1:1", nodes: 2, topic: topic,
                                                             extraSupervisor: "disconnected_after = 1\nready_timeout = 6"),
                                         environment: ["NOTIFY_SOCKET": notify.path])
        eventually("every node disconnected: \(String(describing: swarmd.status()?.nodes.map(\.kafka)))", timeout: 30) {
            swarmd.status()?.nodes.count == 2 && swarmd.status()?.nodes.allSatisfy { $0.kafka == "disconnected" } == true
        }
        notify.collect()
        XCTAssertEqual(notify.count("READY=1"), 0, "nodes that report are not a swarm that consumes")
        XCTAssertTrue(notify.messages.contains { $0.text.hasPrefix("STATUS=0/2 nodes consuming (2 disconnected)") },
                      "STATUS says why: \(notify.messages.map(\.text).suffix(5))")
        eventually("READY after ready_timeout", timeout: 30) { notify.collect(); return notify.count("READY=1") == 1 }
        swarmd.waitForLog("swarm ready by ready_timeout (6.0 s), not consuming: 2 disconnected")
        XCTAssertEqual(swarmd.status()?.restarts, 0)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testMoreNodesThanPartitionsWaitAndTheSwarmIsStillReadyAndHealthy() throws {
        let broker = try BrokerUnderTest(topics: [topic: 2])
        let notify = SystemdNotifyTests.NotifySocket(dir: makeTempDir())
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 3, topic: topic),
                                         environment: ["NOTIFY_SOCKET": notify.path])
        eventually("READY", timeout: 60) { notify.collect(); return notify.count("READY=1") == 1 }
        eventually("two nodes assigned, one waiting: \(String(describing: swarmd.status()?.nodes.map(\.kafka)))", timeout: 60) {
            let nodes = swarmd.status()?.nodes ?? []
            return nodes.filter { $0.kafka == "waiting" }.count == 1 && nodes.filter { $0.partitions == 1 }.count == 2
        }
        XCTAssertEqual(try statusExit(swarmd), 0, "waiting is healthy: there is nothing for the third node to do")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    /// The mock broker ignores static membership and paces every rebalance by
    /// its own timer, so what a real broker does with the partitions cannot be
    /// timed here; what the node sends can: librdkafka's own debug log shows
    /// the LeaveGroup request of a node that goes away for good, and none
    /// from a restarted one (its replacement takes the same static id).
    func testAScaledDownNodeLeavesTheGroupAndARestartedOneKeepsItsStaticMembership() throws {
        let broker = try BrokerUnderTest(topics: [topic: 2])
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic,
                                                             extraProperties: "\"debug\" = \"cgrp\"\n\"log_level\" = 7"))
        eventually("both nodes consuming", timeout: 60) { try! self.statusExit(swarmd) == 0 }
        XCTAssertEqual(try swarmctl(["restart", "0"], socket: swarmd.socket).status, 0)
        swarmd.waitForLog("restart requested")
        eventually("slot 0 replaced and consuming", timeout: 60) {
            swarmd.status()?.nodes.first.map { $0.restarts == 1 && $0.health == .ok } == true
        }
        XCTAssertFalse(swarmd.log.contains("LeaveGroup response received"), "a restarted static member does not leave")
        XCTAssertEqual(try swarmctl(["scale", "1"], socket: swarmd.socket).status, 0)
        swarmd.waitForLog("left the group: its partitions go to the other members now")
        swarmd.waitForLog("LeaveGroup response received")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testANoOpReloadReplacesNothingAndARuntimeScaleSurvivesAReload() throws {
        let broker = try BrokerUnderTest(topics: [topic: 4])
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic))
        swarmd.waitForHealthy(2, timeout: 60)
        let pids = swarmd.nodePids()
        let same = try swarmctl(["reload"], socket: swarmd.socket)
        XCTAssertEqual(same.status, 0, same.stderr)
        XCTAssertTrue(same.stdout.contains("configuration unchanged"), same.stdout)
        XCTAssertEqual(try swarmctl(["scale", "3"], socket: swarmd.socket).status, 0)
        XCTAssertEqual(Array(swarmd.nodePids().prefix(2)), pids, "nothing replaced")

        // A change swarmd alone reads: applied in place, the runtime size stands.
        try String(contentsOfFile: swarmd.configPath, encoding: .utf8)
            .replacingOccurrences(of: "kill_timeout = 10", with: "kill_timeout = 7")
            .write(toFile: swarmd.configPath, atomically: true, encoding: .utf8)
        let own = try swarmctl(["reload"], socket: swarmd.socket)
        XCTAssertEqual(own.status, 0, own.stderr)
        XCTAssertTrue(own.stdout.contains("no node replaced"), own.stdout)
        XCTAssertEqual(swarmd.status()?.wanted, 3, "swarmctl scale 3 survives a reload that is about something else")
        XCTAssertEqual(Array(swarmd.nodePids().prefix(2)), pids)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }
}
