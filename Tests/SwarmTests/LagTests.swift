import Foundation
import Shared
import XCTest

/// Lag as the broker sees it, through every kind of rebalance: no partition
/// is ever shown with its whole size just because it was just assigned
/// (issue #27: every rebalance looked like a full backlog to status,
/// /metrics and the autoscaler).
final class LagTests: XCTestCase {
    func testLagMatchesTheBrokerThroughScaleUpScaleDownDrainAndRestart() throws {
        let topic = "lagged"
        let broker = try BrokerUnderTest(topics: [topic: 4])
        let keys = (0..<400).map { "k\($0)" }
        try broker.produce(topic, keys: keys)
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic),
                                         environment: ["RECORD_FILE": record.path])
        eventually("every message handled", timeout: 60) { record.okKeys.count == keys.count }
        eventually("the group committed to the end", timeout: 30) {
            guard let o = try? broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 4) else { return false }
            return o.committed == o.end
        }
        // The broker says 0 behind on every partition from here on: nothing more is produced.
        for (change, args) in [("scale up", ["scale", "3"]), ("scale down", ["scale", "2"]), ("drain", ["drain", "1"]),
                               ("resume", ["resume", "1"]), ("restart", ["restart"])] {
            XCTAssertEqual(try swarmctl(args, socket: swarmd.socket).status, 0, change)
            // Watch every report through the rebalance, for at least 9 s and until every partition's lag
            // is known again: a lag shown must be the broker's (0); unknown is left out. (A fixed 9 s window
            // failed on a slower CI machine: the restarted nodes had not reported a position yet.)
            let start = Date()
            var seen = 0
            var settled = false
            while Date() < start.addingTimeInterval(60) {
                let nodes = swarmd.status()?.nodes ?? []
                for n in nodes {
                    for l in n.partitionLag ?? [] {
                        seen += 1
                        XCTAssertEqual(l.lag, 0, "\(change): slot \(n.slot) shows \(l.topic)/\(l.partition) \(l.lag) behind; the broker says 0")
                    }
                    if let total = n.lag { XCTAssertEqual(total, 0, "\(change): slot \(n.slot) shows lag \(total)") }
                }
                let lags = nodes.flatMap { $0.partitionLag ?? [] }
                settled = Set(lags.map(\.partition)) == [0, 1, 2, 3] && lags.allSatisfy { $0.lag == 0 }
                if settled && Date() > start.addingTimeInterval(9) { break }
                usleep(100_000)
            }
            XCTAssertGreaterThan(seen, 0, "\(change): no lag reported at all")
            XCTAssertTrue(settled, "\(change): every partition's lag known again and 0 within 60 s")
        }
        // And a real backlog reads as the broker says, partition by partition.
        _ = try swarmctl(["drain"], socket: swarmd.socket)
        eventually("every node drained") { swarmd.status()?.nodes.allSatisfy { $0.state == .drained } == true }
        try broker.produce(topic, keys: (0..<40).map { "late\($0)" }, partition: 2)
        // Every node drained, nobody consumes: status, the table and /metrics still show the
        // lag, as the broker states it (swarmd asks it), instead of losing the partitions.
        eventually("the lag of partitions no node consumes, from the broker", timeout: 30) {
            let unowned = swarmd.status()?.unownedLag ?? []
            return unowned.count == 4 && unowned.first { $0.partition == 2 }?.lag == 40 && unowned.filter { $0.partition != 2 }.allSatisfy { $0.lag == 0 }
        }
        let metrics = try swarmctl(["metrics"], socket: swarmd.socket).stdout
        XCTAssertTrue(metrics.contains("kafka_consumergroup_lag{consumergroup=\"swarm-test\",partition=\"2\",topic=\"lagged\"} 40"),
                      metrics.split(separator: "\n").filter { $0.hasPrefix("kafka_consumergroup_lag") }.joined(separator: "\n"))
        let table = try swarmctl(["status"], socket: swarmd.socket).stdout
        XCTAssertTrue(table.contains("no node consumes 4 partition(s), lag 40 as the broker states it"), table)
        _ = try swarmctl(["resume"], socket: swarmd.socket)
        eventually("the late messages handled", timeout: 60) { record.okKeys.count == keys.count + 40 }
        eventually("lag back to the broker's 0", timeout: 30) {
            guard let o = try? broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 4), o.committed == o.end else { return false }
            let lags = swarmd.status()?.nodes.flatMap { $0.partitionLag ?? [] } ?? []
            return lags.count == 4 && lags.allSatisfy { $0.lag == 0 }
        }
        XCTAssertNil(swarmd.status()?.unownedLag, "every partition consumed: nothing is shown twice")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }
}
