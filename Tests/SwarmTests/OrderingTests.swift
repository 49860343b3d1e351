import Foundation
import Shared
import SwarmKafka
@testable import SwarmdKit
import XCTest

/// Kafka's semantics through the handler: a failure never reorders its
/// partition, and a tombstone stays a tombstone.
final class OrderingTests: XCTestCase {
    typealias P = TopicPartition
    let p0 = P(topic: "t", partition: 0)
    let p1 = P(topic: "t", partition: 1)

    // MARK: The decisions, with a fake clock

    func testAFailureStopsItsPartitionAndTheLaterMessagesComeAgainWhileOthersFlow() {
        var r = OrderedRetries(retries: 2, backoff: 0.5)
        let batch = [(p0, Int64(10)), (p1, 20), (p0, 11), (p0, 12), (p1, 21)]
        let d = r.decide(batch, answers: [.ok, .ok, .failed("boom"), .ok, .ok], now: 100)
        XCTAssertEqual(d, [.handled, .handled, .retry(attempt: 1, until: 100.5), .redelivered, .handled])
        XCTAssertEqual(r.stops[p0]?.offset, 11)
        XCTAssertNil(r.stops[p1], "the other partition is not stopped")
    }

    func testRetriesBackOffDoublingThenTheFailurePolicySettlesAndThePartitionGoesOn() {
        var r = OrderedRetries(retries: 2, backoff: 0.5)
        XCTAssertEqual(r.decide([(p0, 5), (p0, 6)], answers: [.failed("x"), .ok], now: 0), [.retry(attempt: 1, until: 0.5), .redelivered])
        XCTAssertEqual(r.due(now: 0.4), [], "not before the backoff")
        var admitted = r.admit([(p0, 6), (p1, 9)])
        XCTAssertEqual(admitted.keep, [false, true], "fetched before the rewind: dropped while paused")
        XCTAssertEqual(r.due(now: 0.5), [p0])
        admitted = r.admit([(p0, 6), (p0, 7)])
        XCTAssertEqual(admitted.keep, [false, false])
        XCTAssertEqual(admitted.rewind, [p0: 5], "past the failed message: rewind again")
        admitted = r.admit([(p0, 5), (p0, 6), (p1, 10)])
        XCTAssertEqual(admitted.keep, [true, true, true], "from the failed message on, in order")
        XCTAssertEqual(admitted.rewind, [:])
        XCTAssertEqual(r.decide([(p0, 5), (p0, 6)], answers: [.failed("y"), .ok], now: 1), [.retry(attempt: 2, until: 2), .redelivered])
        XCTAssertEqual(r.due(now: 2), [p0])
        XCTAssertEqual(r.decide([(p0, 5), (p0, 6)], answers: [.failed("z"), .ok], now: 2), [.exhausted(reason: "z"), .handled])
        XCTAssertTrue(r.stops.isEmpty)
    }

    func testASuccessfulRetryClearsTheStopAndANewFailureStartsCountingAgain() {
        var r = OrderedRetries(retries: 1, backoff: 1)
        _ = r.decide([(p0, 5)], answers: [.failed("x")], now: 0)
        _ = r.due(now: 1)
        XCTAssertEqual(r.decide([(p0, 5), (p0, 6)], answers: [.ok, .failed("y")], now: 1), [.handled, .retry(attempt: 1, until: 2)])
        XCTAssertEqual(r.stops[p0]?.offset, 6)
    }

    func testADeferralRewindsWithoutCountingAnAttempt() {
        var r = OrderedRetries(retries: 1, backoff: 0.25)
        XCTAssertEqual(r.decide([(p0, 5), (p0, 6)], answers: [.failed("x"), .deferred], now: 0), [.retry(attempt: 1, until: 0.25), .redelivered])
        _ = r.due(now: 1)
        XCTAssertEqual(r.decide([(p0, 5)], answers: [.deferred], now: 1), [.deferred(until: 1.25)])
        XCTAssertEqual(r.stops[p0]?.attempts, 1, "a deferral is not an attempt")
        _ = r.due(now: 2)
        XCTAssertEqual(r.decide([(p0, 5)], answers: [.failed("x")], now: 2), [.exhausted(reason: "x")])
    }

    func testUnansweredMessagesAreNotStoredAndRevokedPartitionsAreForgotten() {
        var r = OrderedRetries(retries: 3, backoff: 1)
        XCTAssertEqual(r.decide([(p0, 1), (p1, 2), (p0, 3)], answers: [.failed("x")], now: 0), [.retry(attempt: 1, until: 1), .unanswered, .redelivered])
        r.keep(only: [p1])
        XCTAssertTrue(r.stops.isEmpty, "the new owner starts from the committed offset")
    }

    func testAHandlerThatDiesChargesNoMessageUntilEachGoesAlone() {
        var r = OrderedRetries(retries: 1, backoff: 1)
        let lost = HandleOutcome.lost("handler exited")
        XCTAssertEqual(r.decide([(p0, 1), (p0, 2), (p1, 7), (p0, 3)], answers: [.ok, lost, lost, lost], now: 0),
                       [.handled, .deferred(until: 1), .retry(attempt: 1, until: 1), .redelivered], "p1's message was alone in its partition: charged")
        XCTAssertEqual(r.stops[p0]?.attempts, 0, "no attempt charged for a crash in a batch")
        XCTAssertTrue(r.isIsolated(p0, offset: 3))
        XCTAssertFalse(r.isIsolated(p0, offset: 4))
        _ = r.due(now: 1)
        XCTAssertEqual(r.decide([(p0, 2)], answers: [.ok], now: 1), [.handled], "alone, 2 passes")
        XCTAssertEqual(r.decide([(p0, 3)], answers: [lost], now: 1), [.retry(attempt: 1, until: 2)], "alone, 3 is the culprit")
        XCTAssertTrue(r.isIsolated(p0, offset: 3))
        _ = r.due(now: 2)
        XCTAssertEqual(r.decide([(p0, 3)], answers: [lost], now: 2), [.exhausted(reason: "handler exited")])
        XCTAssertFalse(r.isIsolated(p0, offset: 3), "past the suspects: whole batches again")
    }

    // MARK: End to end, against the mock broker

    let topic = "ordered"

    /// The scenario: k5 fails once (transient), retry_backoff 0.5.
    func runTenKeysWithOneTransientFailure(ordering: String) throws -> [Record.Entry] {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        let keys = (1...10).map { "k\($0)" }
        try broker.produce(topic, keys: keys)
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(
            config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic,
                                extraHandler: "retry_backoff = 0.5\nordering = \"\(ordering)\""),
            environment: ["RECORD_FILE": record.path, "FAIL_ONCE_KEYS": "k5"])
        eventually("every key handled", timeout: 60) { record.okKeys == Set(keys) }
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        let offsets = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 1)
        XCTAssertEqual(offsets.committed, [10], "committed to the end")
        return record.entries
    }

    func testATransientFailureKeepsThePartitionInOrder() throws {
        let entries = try runTenKeysWithOneTransientFailure(ordering: "partition")
        let ok = entries.filter { $0.outcome == "ok" }.map(\.key)
        let firstOK = { (k: String) in ok.firstIndex(of: k)! }
        let lastOK = { (k: String) in ok.lastIndex(of: k)! }
        XCTAssertEqual(Array(ok.prefix(4)), ["k1", "k2", "k3", "k4"])
        for k in ["k1", "k2", "k3", "k4"] { XCTAssertEqual(ok.filter { $0 == k }.count, 1, "\(k) handled once") }
        for k in ["k6", "k7", "k8", "k9", "k10"] {
            XCTAssertGreaterThan(lastOK(k), firstOK("k5"), "the final handling of \(k) comes after k5: \(ok)")
        }
        // The final handlings, read in order, are the partition's order.
        let finals = (1...10).map { "k\($0)" }.sorted { lastOK($0) < lastOK($1) }
        XCTAssertEqual(finals, (1...10).map { "k\($0)" }, "\(ok)")
    }

    func testOrderingNoneRetriesTheFailedMessageAfterTheRestOfItsBatch() throws {
        let entries = try runTenKeysWithOneTransientFailure(ordering: "none")
        let ok = entries.filter { $0.outcome == "ok" }.map(\.key)
        XCTAssertEqual(ok, ["k1", "k2", "k3", "k4", "k6", "k7", "k8", "k9", "k10", "k5"], "today's behaviour, kept for independent messages")
    }

    func testAFailingPartitionDoesNotHoldUpTheOthers() throws {
        let broker = try BrokerUnderTest(topics: [topic: 2])
        try broker.produce(topic, keys: ["a0", "poison", "c0"], partition: 0)
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(
            config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic,
                                extraHandler: "retries = 3\nretry_backoff = 1"),
            environment: ["RECORD_FILE": record.path, "FAIL_KEYS": "poison"])
        eventually("the poison message's first failure", timeout: 60) { record.entries.contains { $0.key == "poison" } }
        // While partition 0 waits out 1 + 2 + 4 s of backoff, partition 1 flows.
        let others = (0..<50).map { "p1-\($0)" }
        try broker.produce(topic, keys: others, partition: 1)
        eventually("partition 1's messages", timeout: 30) { record.okKeys.isSuperset(of: others) }
        let poisonTries = record.entries.filter { $0.key == "poison" }.count
        XCTAssertLessThan(poisonTries, 4, "partition 1 was handled before partition 0's retries were over")
        swarmd.waitForLog("message failed every retry: skipped", timeout: 30)
        XCTAssertEqual(record.entries.filter { $0.key == "poison" }.count, 4, "one try and three retries")
        eventually("c0 handled after the poison message is settled", timeout: 30) {
            let entries = record.entries
            return entries.lastIndex { $0.key == "c0" }! > entries.lastIndex { $0.key == "poison" }!
        }
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        let offsets = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 2)
        XCTAssertEqual(offsets.committed, offsets.end)
    }

    func testAfterTheRetriesADeadLetterSettlesTheMessageAndThePartitionContinuesInOrder() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1, "ordered.dlq": 1])
        try broker.produce(topic, keys: ["a", "poison", "c", "d"])
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(
            config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic,
                                extraHandler: "retries = 1\nretry_backoff = 0.2\non_failure = \"dead-letter\"\ndead_letter_topic = \"ordered.dlq\""),
            environment: ["RECORD_FILE": record.path, "FAIL_KEYS": "poison"])
        eventually("a, c and d handled", timeout: 60) { record.okKeys == ["a", "c", "d"] }
        let entries = record.entries
        let lastPoison = entries.lastIndex { $0.key == "poison" }!
        for k in ["c", "d"] {
            XCTAssertGreaterThan(entries.lastIndex { $0.key == k && $0.outcome == "ok" }!, lastPoison, "\(k) is settled after the poison message")
        }
        var dead: [String] = []
        eventually("the dead letter", timeout: 30) { dead = (try? broker.consumeAll("ordered.dlq")) ?? []; return !dead.isEmpty }
        XCTAssertEqual(dead.count, 1)
        XCTAssertTrue(dead[0].hasPrefix("poison|"), dead[0])
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        let offsets = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 1)
        XCTAssertEqual(offsets.committed, [4])
    }

    // MARK: Pipelined batches

    func testAPipelinedBatchPastAFailureDoesNotCountAndComesAgainInOrder() {
        var r = OrderedRetries(retries: 2, backoff: 0.5)
        // Batch N fails p0@11; batch N+1 was written before that answer came.
        _ = r.decide([(p0, 10), (p0, 11)], answers: [.ok, .failed("boom")], now: 0)
        XCTAssertEqual(r.decide([(p0, 12), (p1, 3)], answers: [.ok, .ok], now: 0.1), [.redelivered, .handled])
        _ = r.due(now: 1)
        XCTAssertEqual(r.decide([(p0, 13)], answers: [.ok], now: 1), [.redelivered],
                       "backoff over, the failed message not settled yet: a later one still does not count")
        XCTAssertEqual(r.decide([(p0, 11), (p0, 12)], answers: [.ok, .ok], now: 1), [.handled, .handled])
    }

    /// Runs `count` keys through one node with `pipeline` batches of 5 in
    /// flight; returns the record and whether the handler ever found the next
    /// batch waiting before it answered.
    func runPipelined(pipeline: Int, count: Int, environment: [String: String] = [:]) throws -> (entries: [Record.Entry], waiting: Bool) {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        let keys = (1...count).map { "k\($0)" }
        try broker.produce(topic, keys: keys)
        let record = Record.fresh()
        let waiting = record.path + ".waiting"
        let swarmd = try SwarmdUnderTest(
            config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic, batchSize: 5,
                                extraHandler: "pipeline = \(pipeline)\nretry_backoff = 0.2"),
            environment: environment.merging(["RECORD_FILE": record.path, "SLOW_MS": "4", "WAITING_FILE": waiting]) { $1 })
        eventually("every key handled", timeout: 90) { record.okKeys == Set(keys) }
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        let offsets = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 1)
        XCTAssertEqual(offsets.committed, [Int64(count)], "committed to the end")
        return (record.entries, FileManager.default.fileExists(atPath: waiting))
    }

    func testPipelinedBatchesKeepThePartitionInOrderThroughAFailureAndAHandlerCrash() throws {
        let run = try runPipelined(pipeline: 4, count: 150, environment: ["FAIL_ONCE_KEYS": "k40", "CRASH_KEY": "k90"])
        XCTAssertTrue(run.waiting, "with pipeline = 4 the next batch was waiting before the handler answered")
        let ok = run.entries.filter { $0.outcome == "ok" }.map(\.key)
        let lastOK = { (k: String) in ok.lastIndex(of: k)! }
        // The final handlings, read in order, are the partition's order: what a
        // pipelined batch held past the failure and the crash came again after them.
        let finals = (1...150).map { "k\($0)" }.sorted { lastOK($0) < lastOK($1) }
        XCTAssertEqual(finals, (1...150).map { "k\($0)" }, "\(ok)")
        XCTAssertTrue(run.entries.contains { $0.key == "k90" && $0.outcome == "crash" }, "the handler did crash with batches in flight")
        for k in ["k1", "k2", "k39"] { XCTAssertEqual(ok.filter { $0 == k }.count, 1, "\(k), before the failure, handled once") }
    }

    func testAnImmediateStopAbandonsWhatIsInFlightAndCommitsNothingUnhandled() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        let keys = (1...200).map { "k\($0)" }
        try broker.produce(topic, keys: keys)
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(
            config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic, batchSize: 5, extraHandler: "pipeline = 4\nordering = \"none\""),
            environment: ["RECORD_FILE": record.path, "SLOW_MS": "40"])
        eventually("some keys handled", timeout: 60) { record.okKeys.count >= 20 }
        let stop = try swarmctl(["stop", "--now"], socket: swarmd.socket)
        XCTAssertEqual(stop.status, 0, stop.stderr)
        XCTAssertNotNil(swarmd.waitForExit(timeout: 8), "QUIT does not wait for the batches in flight")
        XCTAssertTrue(swarmd.log.contains("node left at once"), swarmd.log.suffix(2000).description)
        XCTAssertEqual(swarmd.logCount("handler started"), 1, "the handler is not started again to settle what QUIT abandoned")
        let committed = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 1).committed[0]
        XCTAssertLessThanOrEqual(committed, record.nextOffsets(partitions: 1)[0], "nothing committed beyond what was handled")
    }

    func testWithPipelineOneNothingIsWrittenBeforeTheAnswers() throws {
        let run = try runPipelined(pipeline: 1, count: 60)
        XCTAssertFalse(run.waiting, "pipeline = 1: the next batch is written only after the answers were read")
    }

    // MARK: Tombstones

    func testExecFramingSaysMinusOneForANullValueAndZeroForAnEmptyOne() {
        let tombstone = KafkaMessage(topic: "t", partition: 0, offset: 1, key: Array("k".utf8), value: nil, timestamp: 5)
        let empty = KafkaMessage(topic: "t", partition: 0, offset: 2, key: Array("k".utf8), value: [], timestamp: 5)
        XCTAssertEqual(String(decoding: ExecHandler.frame([tombstone, empty]), as: UTF8.self),
                       "batch 2\nmessage t 0 1 5 1 -1 0\nk\nmessage t 0 2 5 1 0 0\nk\n")
    }

    func testATombstoneFromAnIndependentClientArrivesAsMinusOneAndAnEmptyValueAsZero() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        // kcat -Z sends an empty value as NULL: a tombstone, as Debezium writes them.
        var r = try runCommand("/usr/bin/kcat", ["-P", "-b", broker.bootstrap, "-t", topic, "-K", ":", "-Z"], stdin: Data("deleted:\n".utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runCommand("/usr/bin/kcat", ["-P", "-b", broker.bootstrap, "-t", topic, "-K", ":"], stdin: Data("empty:\n".utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        let dir = makeTempDir()
        let seen = dir.appendingPathComponent("seen").path
        let handler = dir.appendingPathComponent("lengths.py")
        try """
        import sys
        inp, out = sys.stdin.buffer, sys.stdout
        seen = open(sys.argv[1], "a", buffering=1)
        while line := inp.readline():
            n = int(line.split()[1])
            for _ in range(n):
                f = inp.readline().split()
                key_len, value_len = int(f[5]), int(f[6])
                key = inp.read(max(key_len, 0)).decode()
                inp.read(max(value_len, 0))
                inp.read(1)
                seen.write(f"{key} {value_len}\\n")
            out.write(f"ok {n}\\n")
            out.flush()
        """.write(to: handler, atomically: true, encoding: .utf8)
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic)
            .replacingOccurrences(of: "command = [\"/usr/bin/python3\", \"\(recordHandler)\"]",
                                  with: "command = [\"/usr/bin/python3\", \"\(handler.path)\", \"\(seen)\"]"))
        eventually("both messages seen", timeout: 60) {
            ((try? String(contentsOfFile: seen, encoding: .utf8)) ?? "").split(separator: "\n").count >= 2
        }
        XCTAssertEqual(try String(contentsOfFile: seen, encoding: .utf8), "deleted -1\nempty 0\n")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testADeadLetteredTombstoneStaysATombstone() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1, "ordered.dlq": 1])
        let r = try runCommand("/usr/bin/kcat", ["-P", "-b", broker.bootstrap, "-t", topic, "-K", ":", "-Z"], stdin: Data("poison:\n".utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(
            config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic,
                                extraHandler: "retries = 0\non_failure = \"dead-letter\"\ndead_letter_topic = \"ordered.dlq\""),
            environment: ["RECORD_FILE": record.path, "FAIL_KEYS": "poison"])
        var dead = CommandResult(status: 1, stdout: "", stderr: "")
        eventually("the dead letter", timeout: 60) {
            // %S: the value's size, -1 for a null value.
            dead = (try? runCommand("/usr/bin/kcat", ["-C", "-b", broker.bootstrap, "-t", "ordered.dlq", "-e", "-q", "-f", "%k %S\n"])) ?? dead
            return !dead.stdout.isEmpty
        }
        XCTAssertEqual(dead.stdout, "poison -1\n")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }
}
