import Foundation
import Shared
import SwarmKafka
import XCTest

/// Where Tansu 0.6's group coordinator departs from Kafka's, shown with
/// plain librdkafka consumers (no swarm in between) on both brokers: the
/// mock behaves as Kafka does, Tansu does not. Each test pins the deviation,
/// so the day a Tansu upgrade fixes it, the test fails and says what to
/// remove (the chaos test's Tansu plan, the notes in `TestBroker`).
final class BrokerGroupTests: XCTestCase {
    let topic = "wedge"

    func consumer(_ broker: TestBroker, instance: String, heartbeatMs: Int = 500) throws -> KafkaConsumer {
        try KafkaConsumer(properties: ["bootstrap.servers": broker.bootstrap, "group.id": "swarm-wedge", "group.instance.id": instance,
                                       "session.timeout.ms": "12000", "heartbeat.interval.ms": String(heartbeatMs), "log_level": "0"])
    }

    /// Polls every consumer (their rebalance callbacks run inside poll) until `done` or the deadline.
    func poll(_ consumers: [KafkaConsumer], seconds: Double, until done: () -> Bool = { false }) -> Bool {
        let until = Date().addingTimeInterval(seconds)
        while Date() < until {
            for c in consumers { _ = c.pollBatch(max: 100, timeoutMs: 50) }
            if done() { return true }
        }
        return false
    }

    /// The group's leader leaves (an unsubscribe: LeaveGroup) while a
    /// rebalance is in progress. Kafka's coordinator removes it and picks a
    /// new leader among the members that joined. Tansu 0.6 removes the
    /// member but keeps it as the leader of the forming group
    /// (`tansu-broker/src/coordinator/group/administrator.rs`, `leave` of
    /// `Inner<O, Forming>`: unlike the formed group's `leave`, it never
    /// clears `state.leader`), and only the leader's SyncGroup forms a
    /// group: every other member is told REBALANCE_IN_PROGRESS for ever,
    /// and nothing is assigned until the broker restarts. A drain or a
    /// scale-down during a rebalance does exactly this (the chaos test).
    func testALeaderThatLeavesDuringARebalanceIsReplacedOnTheMockButWedgesTansu() throws {
        for name in TestBrokers.selected {
            // Tansu logs each JoinGroup at debug level: the test sees b's join land.
            let broker: TestBroker = name == "tansu"
                ? try TansuBroker(topics: [topic: 4], environment: ["RUST_LOG": "tansu_broker::coordinator=debug"])
                : try BrokerUnderTest(topics: [topic: 4])
            // a heartbeats seldom, so that it can leave before it learns of the rebalance b starts.
            let a = try consumer(broker, instance: "a", heartbeatMs: 4000)
            try a.subscribe([topic])
            XCTAssertTrue(poll([a], seconds: 90) { a.assignedCount == 4 }, "\(name): the first member got every partition")
            let b = try consumer(broker, instance: "b")
            try b.subscribe([topic])
            if let tansu = broker as? TansuBroker {
                // b's JoinGroup made the group a forming one, with a as its leader: a leaves now,
                // with no JoinGroup of its own in flight (Tansu would add it back as it retries one).
                XCTAssertTrue(poll([b], seconds: 30) { tansu.logContains("member_metadata=\"new\"", "member_id=\"b-") },
                              "tansu: b's JoinGroup in the broker's log")
            } else {
                // The mock: a learns of the rebalance when its partitions are revoked (eager protocol).
                XCTAssertTrue(poll([a, b], seconds: 60) { a.assignedCount == 0 }, "\(name): b's join started a rebalance")
            }
            a.unsubscribe()
            let replaced = poll([a, b], seconds: 30) { b.assignedCount == 4 }
            if name == "tansu" {
                XCTAssertFalse(replaced, "Tansu now replaces a leader that leaves mid-rebalance: drop the chaos test's Tansu plan and this note")
                XCTAssertEqual(b.assignedCount, 0, "tansu: the group stays wedged, nothing assigned to b")
            } else {
                XCTAssertTrue(replaced, "\(name): b, the member left, became leader and took every partition")
            }
            a.close()
            b.close()
        }
    }

    /// A static member that dies without leaving (SIGKILL). Kafka removes
    /// it after `session.timeout.ms`, and its partitions go to the others.
    /// Tansu 0.6 checks for missed heartbeats only on requests from members
    /// without a `group.instance.id`, and on LeaveGroup (the `Controller`'s
    /// `join`, `sync` and `heartbeat` skip `missed_heartbeat` when
    /// `group_instance_id` is set): in a group of static members, as
    /// swarm's always are, a dead member keeps its partitions until some
    /// member leaves. What swarm leaves behind that way: a slot scaled away
    /// while its process was dead, or nodes of a SIGKILLed swarmd that the
    /// fresh one does not start again (it starts fewer).
    func testAStaticMemberThatDiesIsRemovedAfterTheSessionTimeoutOnTheMockButNotOnTansu() throws {
        for name in TestBrokers.selected {
            let broker = try TestBrokers.start(name, topics: [topic: 4])
            let dir = makeTempDir()
            let err = dir.appendingPathComponent("kcat.err")
            _ = FileManager.default.createFile(atPath: err.path, contents: nil)
            let ghost = Process()
            ghost.executableURL = URL(fileURLWithPath: "/usr/bin/kcat")
            ghost.arguments = ["-b", broker.bootstrap, "-G", "swarm-wedge", "-X", "group.instance.id=ghost",
                               "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500", topic]
            ghost.standardOutput = FileHandle.nullDevice
            ghost.standardError = try FileHandle(forWritingTo: err)
            try ghost.run()
            eventually("\(name): kcat, a static member, assigned", timeout: 90) {
                ((try? String(contentsOf: err, encoding: .utf8)) ?? "").contains("assigned:")
            }
            kill(ghost.processIdentifier, SIGKILL)
            ghost.waitUntilExit()
            let c = try consumer(broker, instance: "c")
            try c.subscribe([topic])
            let tookAll = poll([c], seconds: 30) { c.assignedCount == 4 }
            if name == "tansu" {
                XCTAssertFalse(tookAll, "Tansu now expires dead static members: drop the chaos test's Tansu plan and this note")
            } else {
                XCTAssertTrue(tookAll, "\(name): the dead member was removed after session.timeout.ms and c took every partition")
            }
            c.close()
        }
    }
}
