import Foundation
import Shared
import SwarmKafka
import XCTest

/// A 3-broker mock cluster hosted in the test process, for the faults only
/// the mock can inject (a broker process cannot be told to move a leader or
/// fail the next three commits): the group coordinator's broker down, a
/// partition leader moved, commits and heartbeats refused, added round-trip
/// time. Nothing may be lost and no node restarted.
final class MockFaultTests: XCTestCase {
    final class InProcessMock: TestBroker {
        let cluster: MockCluster
        let name = "mock-3"
        var bootstrap: String { cluster.bootstrapServers }
        init(brokers: Int, topics: [String: Int]) throws {
            cluster = try MockCluster(brokers: brokers)
            for (t, p) in topics { try cluster.createTopic(t, partitions: p) }
        }
    }

    func testCoordinatorDownLeaderMovedRequestsRefusedAndSlowBrokersLoseNothingAndRestartNothing() throws {
        let topic = "faults"
        let broker = try InProcessMock(brokers: 3, topics: [topic: 6])
        broker.cluster.setGroupCoordinator(group: "swarm-test", broker: 1)
        let keys = (0..<1200).map { "f\($0)" }
        try broker.produce(topic, keys: Array(keys[..<300]))
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic,
                                                             extraSupervisor: "disconnected_after = 3"),
                                         environment: ["RECORD_FILE": record.path, "SLOW_MS": "2"])
        eventually("the first messages", timeout: 120) { record.okKeys.count == 300 }
        var conditions: Set<String> = []
        func watch(_ seconds: Double) {
            let until = Date().addingTimeInterval(seconds)
            eventually("\(seconds) s of watching", timeout: seconds + 10) {
                for n in swarmd.status()?.nodes ?? [] { conditions.insert(n.kafka ?? "-") }
                return Date() >= until
            }
        }

        // 1. The coordinator's broker (also the leader of a third of the partitions, which
        // have no other replica) goes down for longer than a session, then comes back.
        try broker.produce(topic, keys: Array(keys[300..<500]))
        broker.cluster.setBroker(1, up: false)
        watch(8)
        broker.cluster.setBroker(1, up: true)
        // 2. A leader moves; 3. commits and heartbeats are refused, as a coordinator
        // that moves or loads would refuse them.
        broker.cluster.setLeader(topic: topic, partition: 0, broker: 3)
        let notCoordinator: Int32 = 16, loadInProgress: Int32 = 14, timedOut: Int32 = 7
        broker.cluster.failNextRequests(apiKey: 8, with: [notCoordinator, loadInProgress, timedOut])
        broker.cluster.failNextRequests(apiKey: 12, with: [notCoordinator, notCoordinator])
        try broker.produce(topic, keys: Array(keys[500..<800]))
        watch(4)
        // 4. Every broker 300 ms slower.
        for b in Int32(1)...3 { broker.cluster.setRoundTripTime(broker: b, ms: 300) }
        try broker.produce(topic, keys: Array(keys[800...]))
        eventually("every message handled", timeout: 180) { record.okKeys == Set(keys) }
        for b in Int32(1)...3 { broker.cluster.setRoundTripTime(broker: b, ms: 0) }

        let next = record.nextOffsets(partitions: 6)
        eventually("the group committed everything handled", timeout: 90) {
            (try? broker.committed(group: "swarm-test", topic: topic, partitions: 6)) == next
        }
        let twice = record.handledTwice(of: keys.count)
        print("3-broker mock faults: \(twice) of \(keys.count) handled twice; conditions seen: \(conditions.sorted())")
        XCTAssertEqual(swarmd.status()?.restarts, 0, "broker faults restart no node")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }
}
