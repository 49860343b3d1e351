import Foundation
import Shared
import XCTest

/// What matters to a user, against librdkafka's mock and against Tansu, a
/// real broker process (`SWARM_TEST_BROKER`, see `TestBroker` for how the
/// two differ). Completeness is counted by what was produced and handled,
/// and committed offsets against the highest offset handled, never against
/// a broker's high watermark (Tansu's is its last batch's base offset + 1).
final class BrokerMatrixTests: XCTestCase {
    func testABacklogScaleDrainKillAndRestartLoseNothingOnEachBroker() throws {
        for name in TestBrokers.selected {
            try journey(on: name)
        }
    }

    private func journey(on name: String) throws {
        let topic = "journey"
        let broker = try TestBrokers.start(name, topics: [topic: 4])
        let keys = (0..<800).map { "k\($0)" }
        try broker.produce(topic, keys: Array(keys[..<400]))
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic),
                                         environment: ["RECORD_FILE": record.path, "SLOW_MS": "1"])
        eventually("\(name): the backlog consumed", timeout: 120) { record.okKeys.count == 400 }
        for args in [["scale", "3"], ["drain", "0"], ["resume", "0"]] {
            XCTAssertEqual(try swarmctl(args, socket: swarmd.socket).status, 0, "\(name): swarmctl \(args)")
        }
        try broker.produce(topic, keys: Array(keys[400..<600]))
        let victim = try XCTUnwrap(swarmd.status()?.nodes.last?.pid)
        kill(victim, SIGKILL)
        swarmd.waitForLog("node exited: killed by signal KILL")
        XCTAssertEqual(try swarmctl(["restart"], socket: swarmd.socket).status, 0, "\(name): swarmctl restart")
        try broker.produce(topic, keys: Array(keys[600...]))
        eventually("\(name): every message handled", timeout: 180) { record.okKeys.count == keys.count }
        XCTAssertEqual(record.okKeys, Set(keys), name)
        // The group's committed offset of each partition is one past the highest offset handled there.
        var highest = [Int64](repeating: -1, count: 4)
        for e in record.entries where e.outcome == "ok" { highest[e.partition] = max(highest[e.partition], Int64(e.offset)) }
        eventually("\(name): the group committed everything handled", timeout: 60) {
            (try? broker.committed(group: "swarm-test", topic: topic, partitions: 4)) == highest.map { $0 + 1 }
        }
        let twice = record.entries.filter { $0.outcome == "ok" }.count - keys.count
        print("\(name): scale, drain, resume, SIGKILL, restart: \(twice) of \(keys.count) handled twice")
        XCTAssertEqual(swarmd.status()?.restarts, 1 + 3, "\(name): the killed node and the three rolled ones, nothing else")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0, name)
    }

    /// A broker that stops answering (SIGSTOP) for longer than
    /// `session.timeout.ms`, then goes on: no node is restarted (restarting
    /// consumers brings no broker back), and consumption goes on after.
    func testAFrozenBrokerRestartsNothingAndConsumptionResumes() throws {
        guard TestBrokers.selected.contains("tansu") else { throw XCTSkip("SWARM_TEST_BROKER leaves Tansu out") }
        let topic = "frozen"
        let broker = try TansuBroker(topics: [topic: 2])
        try broker.produce(topic, keys: (0..<100).map { "a\($0)" })
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic,
                                                             extraSupervisor: "disconnected_after = 3"),
                                         environment: ["RECORD_FILE": record.path])
        eventually("the first messages", timeout: 120) { record.okKeys.count == 100 }
        broker.freeze()
        let frozenAt = Date()
        var conditions: Set<String> = []
        while Date().timeIntervalSince(frozenAt) < 12 {
            for n in swarmd.status()?.nodes ?? [] { conditions.insert(n.kafka ?? "-") }
            usleep(200_000)
        }
        broker.thaw()
        print("node conditions seen while the broker was frozen 12 s: \(conditions.sorted())")
        XCTAssertEqual(swarmd.status()?.restarts, 0, "a frozen broker restarts no node")
        try broker.produce(topic, keys: (0..<100).map { "b\($0)" })
        let thawed = Date()
        eventually("consumption after the broker came back", timeout: 120) { record.okKeys.count == 200 }
        print("consuming again \(String(format: "%.1f", Date().timeIntervalSince(thawed))) s after the broker came back")
        XCTAssertEqual(swarmd.status()?.restarts, 0)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }
}
