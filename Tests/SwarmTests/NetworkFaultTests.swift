import Foundation
import Shared
import XCTest

/// What crosses a network: hosts in network namespaces (`TestNetwork`)
/// whose links are cut.
final class NetworkFaultTests: XCTestCase {
    /// One host's link to the broker goes down for longer than a session while the other host keeps consuming: its partitions move to
    /// the other host, it reports disconnected and restarts nothing, and once
    /// the link is back nothing is lost and only what was in flight on the
    /// cut-off host is handled twice.
    func testAHostCutOffFromTheBrokerHandsItsPartitionsOverAndLosesNothing() throws {
        let network = try TestNetwork(hosts: ["h1", "h2"])
        let broker = try BrokerUnderTest(topics: ["events": 6], launcher: network.brokerLauncher)
        try network.relay(port: try XCTUnwrap(broker.bootstrap.split(separator: ":").last.map(String.init)))
        let records = [Record.fresh(), Record.fresh()]
        let config = kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: "events", batchSize: 10, extraSupervisor: "disconnected_after = 3")
        let hosts = try (0..<2).map { i in
            try SwarmdUnderTest(config: config, environment: ["RECORD_FILE": records[i].path, "SLOW_MS": "2"],
                                launcher: network.launcher(host: i, hostname: "node\(i + 1).test"))
        }
        func partitions(_ i: Int) -> Int64 { hosts[i].status()?.nodes.map(\.partitions).reduce(0, +) ?? 0 }
        func handled() -> Set<String> { records[0].okKeys.union(records[1].okKeys) }
        let keys = (0..<900).map { "c\($0)" }
        try broker.produce("events", keys: Array(keys[..<300]))
        eventually("both hosts consume", timeout: 120) { handled().isSuperset(of: keys[..<300]) && partitions(0) > 0 && partitions(1) > 0 }

        try network.cut(host: 0)
        let cutAt = Date()
        try broker.produce("events", keys: Array(keys[300..<600]))
        var conditions: Set<String> = []
        eventually("host 2 holds every partition and handles what was produced meanwhile", timeout: 120) {
            for n in hosts[0].status()?.nodes ?? [] { conditions.insert(n.kafka ?? "-") }
            return partitions(1) == 6 && records[1].okKeys.isSuperset(of: keys[300..<600])
        }
        print("cut off: host 2 took over every partition \(String(format: "%.1f", Date().timeIntervalSince(cutAt))) s after the cut")
        eventually("the cut-off host says it is disconnected", timeout: 60) {
            for n in hosts[0].status()?.nodes ?? [] { conditions.insert(n.kafka ?? "-") }
            return hosts[0].status()?.nodes.allSatisfy { $0.kafka == "disconnected" } == true
        }
        print("the cut-off host's conditions: \(conditions.sorted())")
        XCTAssertEqual(hosts[0].status()?.restarts, 0, "a cut-off host restarts no node")

        try network.restore(host: 0)
        try broker.produce("events", keys: Array(keys[600...]))
        eventually("every key handled, and the host back in the group", timeout: 180) {
            handled().isSuperset(of: keys) && partitions(0) > 0
        }
        eventually("everything committed", timeout: 90) {
            (try? broker.committedAndEnd(group: "swarm-test", topic: "events", partitions: 6)).map { $0.committed == $0.end } ?? false
        }
        let entries = records[0].entries.filter { $0.outcome == "ok" } + records[1].entries.filter { $0.outcome == "ok" }
        let twice = entries.count - keys.count
        print("cut off and back: \(twice) of \(keys.count) handled twice")
        // In flight on the cut-off host: its fetched batches and what it handled since its last commit.
        XCTAssertLessThanOrEqual(twice, 300, "only what was in flight is handled twice")
        XCTAssertEqual(hosts.map { $0.status()?.restarts }, [0, 0])
        for h in hosts { h.signal(SIGTERM); XCTAssertEqual(h.waitForExit(), 0) }
    }
}
