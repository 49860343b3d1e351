import Foundation
import SwarmKafka
import XCTest

/// `KafkaConsumer` itself, on the mock broker, where librdkafka's own
/// behaviour decides what a node fetches.
final class KafkaConsumerTests: XCTestCase {
    /// librdkafka 2.0 keeps a partition's pause, and the position saved with
    /// it, across an incremental revocation: a partition taken from a paused
    /// consumer and given back later resumes from where this consumer was
    /// handed messages up to, not from what the group committed meanwhile.
    /// A node holding still through rebalances does exactly that; the
    /// messages in between were never handled by anyone. The partition must
    /// come back from its committed offset.
    func testAPartitionGivenBackWhilePausedResumesFromItsCommittedOffsetNotAnEarlierPosition() throws {
        let broker = try BrokerUnderTest(topics: ["back": 2])
        try broker.produce("back", keys: (0..<200).map { "k\($0)" })
        let props = ["bootstrap.servers": broker.bootstrap, "group.id": "back", "partition.assignment.strategy": "cooperative-sticky",
                     "auto.offset.reset": "earliest", "session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "log_level": "0"]
        let a = try KafkaConsumer(properties: props)
        try a.subscribe(["back"])
        // A takes both partitions and is handed every message; it stores and commits none.
        var perPartition: [Int32: Int] = [:]
        XCTAssertTrue(eventually("A is handed all 200 messages", timeout: 60) {
            for m in a.pollBatch(max: 100, timeoutMs: 100).messages { perPartition[m.partition, default: 0] += 1 }
            return perPartition.values.reduce(0, +) == 200
        })
        // A holds still (a node told to hold before a change of the group), and B
        // joins: one partition moves to it (cooperative: revoked from A alone).
        a.pause()
        var b: KafkaConsumer? = try KafkaConsumer(properties: props)
        try b!.subscribe(["back"])
        XCTAssertTrue(eventually("one partition each", timeout: 60) {
            _ = a.pollBatch(max: 100, timeoutMs: 50)
            _ = b!.pollBatch(max: 100, timeoutMs: 50)
            return a.assignedCount == 1 && b!.assignedCount == 1
        })
        let moved = try XCTUnwrap(b!.assignment.first?.partition)
        // B handles the first 20 of it and commits them: the group's committed offset is 20,
        // behind where A was handed messages up to.
        var handedToB: [KafkaMessage] = []
        XCTAssertTrue(eventually("B is handed the first 20", timeout: 30) {
            handedToB += b!.pollBatch(max: 100, timeoutMs: 100).messages.filter { $0.partition == moved }
            return handedToB.count >= 20
        })
        b!.store(handedToB.prefix(20).map { ($0.topicPartition, $0.offset) })
        XCTAssertNil(b!.commit())
        // B leaves; the partition comes back to A, still holding; then A goes on.
        b!.close()
        handedToB.removeAll()  // librdkafka's destroy waits until every message it handed out is freed
        b = nil
        XCTAssertTrue(eventually("the partition is back with A", timeout: 60) {
            _ = a.pollBatch(max: 100, timeoutMs: 100)
            return a.assignedCount == 2
        })
        a.resume()
        var again: [Int64] = []
        XCTAssertTrue(eventually("A is handed partition \(moved) again from its committed offset, 20", timeout: 30) {
            again += a.pollBatch(max: 100, timeoutMs: 100).messages.filter { $0.partition == moved }.map(\.offset)
            return again.count >= perPartition[moved]! - 20
        }, "handed \(again.count) of \(perPartition[moved]! - 20)")
        XCTAssertEqual(again.first, 20)
        a.close()
    }
}
