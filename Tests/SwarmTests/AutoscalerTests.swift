import Shared
@testable import SwarmdKit
import XCTest

/// The autoscaler's decisions with a fake clock and synthetic observations:
/// no process, no broker, an hour simulated in milliseconds.
final class AutoscalerTests: XCTestCase {
    var settings: AutoscaleSettings = {
        var s = AutoscaleSettings()
        s.enabled = true
        s.min = 1
        s.targetDrainSeconds = 60
        s.cooldownUp = 60
        s.cooldownDown = 300
        return s
    }()

    func lag(_ values: [Int64]) -> [TopicPartition: Int64] {
        Dictionary(uniqueKeysWithValues: values.enumerated().map { (TopicPartition(topic: "t", partition: Int32($0.offset)), $0.element) })
    }

    func observe(_ wanted: Int, _ lags: [Int64], rate: Double, stuck: Set<Int32> = [], steady: Bool = true, busy: Double = 0) -> Autoscaler.Observation {
        Autoscaler.Observation(wanted: wanted, steady: steady, lag: lag(lags), stuck: Set(stuck.map { TopicPartition(topic: "t", partition: $0) }),
                               rate: rate, busy: busy)
    }

    func testABacklogScalesUpAtOnceToNoMoreThanThePartitionsWithLagInAnEvenStep() {
        var a = Autoscaler()
        // 12 partitions, 6 of them with lag: 60,000 behind at 200/s drains in 300 s, five times the target.
        let lags: [Int64] = [10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 0, 0, 0, 0, 0, 0]
        let d = a.evaluate(observe(2, lags, rate: 200), settings: settings, now: 100)
        XCTAssertEqual(d?.size, 6, "×5 wanted 10, capped by the 6 partitions with lag, and 6 divides 12")
        XCTAssertTrue(d?.reason.contains("lag 60000 drains in 300 s at 200/s > target 60 s; 6 partitions with lag") == true, d?.reason ?? "")
        XCTAssertNil(a.evaluate(observe(6, lags, rate: 200), settings: settings, now: 110), "cooldown_up after a change")
    }

    func testEvenSteps() {
        XCTAssertEqual(Autoscaler.evenStepUp(from: 4, toward: 5, partitions: 12, cap: 12), 6, "5 nodes still leave some with 3 partitions")
        XCTAssertEqual(Autoscaler.evenStepUp(from: 1, toward: 2, partitions: 12, cap: 12), 2)
        XCTAssertEqual(Autoscaler.evenStepUp(from: 6, toward: 12, partitions: 12, cap: 8), 8, "bounded by the cap")
        XCTAssertEqual(Autoscaler.evenStepDown(from: 6, partitions: 12), 4, "one more partition each")
        XCTAssertEqual(Autoscaler.evenStepDown(from: 2, partitions: 12), 1)
        XCTAssertEqual(Autoscaler.evenStepDown(from: 5, partitions: 3), 3, "beyond the partition count: the waiting nodes go first")
    }

    func testNothingHappensWhileTheSwarmIsNotSteady() {
        var a = Autoscaler()
        XCTAssertNil(a.evaluate(observe(1, [100_000], rate: 10, steady: false), settings: settings, now: 0))
    }

    func testAStuckPartitionDoesNotScale() {
        var a = Autoscaler()
        // Partition 0 stopped at a poison message with a huge lag; the rest keep up.
        let d = a.evaluate(observe(1, [1_000_000, 0, 0, 0], rate: 50, stuck: [0]), settings: settings, now: 0)
        XCTAssertNil(d, "more nodes would not move a partition stopped at a failing message")
    }

    func testAStepThatDidNotHelpIsUndoneAndNotRetriedBeforeItsHoldOff() {
        var a = Autoscaler()
        let lags: [Int64] = [50_000, 50_000, 50_000, 50_000]
        XCTAssertEqual(a.evaluate(observe(1, lags, rate: 500), settings: settings, now: 0)?.size, 4)
        // A minute later the 4 nodes handle 520/s: the database behind them is the limit.
        let undo = a.evaluate(observe(4, lags, rate: 520), settings: settings, now: 61)
        XCTAssertEqual(undo?.size, 1)
        XCTAssertTrue(undo?.reason.hasPrefix("undo: 1 -> 4 raised throughput only from 500 to 520/s") == true, undo?.reason ?? "")
        XCTAssertNil(a.evaluate(observe(1, lags, rate: 500), settings: settings, now: 130), "held off")
        XCTAssertNil(a.evaluate(observe(1, lags, rate: 500), settings: settings, now: 290), "held off for 4 × cooldown_up")
        XCTAssertEqual(a.evaluate(observe(1, lags, rate: 500), settings: settings, now: 302)?.size, 4, "tried again after the hold-off")
    }

    func testAStepThatHelpedStays() {
        var a = Autoscaler()
        let lags: [Int64] = [50_000, 50_000, 50_000, 50_000]
        XCTAssertEqual(a.evaluate(observe(1, lags, rate: 500), settings: settings, now: 0)?.size, 4)
        XCTAssertNil(a.evaluate(observe(4, [5_000, 5_000, 5_000, 5_000], rate: 1_900), settings: settings, now: 61))
    }

    func testASwarmThatKeepsUpOnlyBecauseItIsLargeIsNotIdle() {
        var a = Autoscaler()
        // No lag, but 6 nodes are 80 % busy: 4 nodes could not carry it.
        for t in stride(from: 0.0, through: 1_200, by: 5) {
            XCTAssertNil(a.evaluate(observe(6, Array(repeating: 0, count: 12), rate: 2_400, busy: 4.8), settings: settings, now: t))
        }
    }

    func testAnIdleSwarmStepsDownAfterTheDownCooldownToNoLessThanMin() {
        var a = Autoscaler()
        settings.min = 2
        var size = 6
        var changes: [(Double, Int)] = []
        for t in stride(from: 0.0, through: 1_800, by: 5) {
            if let d = a.evaluate(observe(size, Array(repeating: 0, count: 12), rate: 0), settings: settings, now: t) {
                size = d.size
                changes.append((t, d.size))
            }
        }
        XCTAssertEqual(changes.map(\.1), [4, 3, 2], "one even step at a time, down to min")
        XCTAssertEqual(changes.first?.0, 300, "after cooldown_down idle")
        XCTAssertTrue(zip(changes, changes.dropFirst()).allSatisfy { $1.0 - $0.0 >= 300 }, "each step waits cooldown_down again")
    }

    func testASawtoothLoadOverAnHourDoesNotOscillate() {
        var a = Autoscaler()
        var size = 1
        var changes = 0
        let partitions = 12
        var backlog = 0.0
        // Ten-minute teeth: 5 minutes of 3,000/s in, then 5 minutes of nothing; each node handles 500/s.
        for step in 0..<720 {
            let t = Double(step) * 5
            let incoming = (Int(t) / 300) % 2 == 0 ? 3_000.0 : 0
            let rate = min(backlog / 5 + incoming, Double(size) * 500)
            backlog = max(0, backlog + (incoming - rate) * 5)
            let per = Int64(backlog) / Int64(partitions)
            let busy = rate / 500  // each node can handle 500/s: its busy share is its rate over that
            if let d = a.evaluate(observe(size, Array(repeating: per, count: partitions), rate: rate, busy: busy), settings: settings, now: t) {
                size = d.size
                changes += 1
            }
        }
        XCTAssertLessThanOrEqual(changes, 3, "an hour of sawtooth load: a few decisive steps, not one per tooth (\(changes))")
        XCTAssertGreaterThan(changes, 0)
    }

    func testBoundsAreRespected() {
        var a = Autoscaler()
        settings.max = 3
        XCTAssertEqual(a.evaluate(observe(1, Array(repeating: 100_000, count: 12), rate: 10), settings: settings, now: 0)?.size, 3)
        var b = Autoscaler()
        XCTAssertEqual(b.evaluate(observe(5, Array(repeating: 0, count: 12), rate: 0), settings: settings, now: 0)?.size, 3, "above max")
        var c = Autoscaler()
        settings.min = 2
        XCTAssertEqual(c.evaluate(observe(1, [0, 0], rate: 0), settings: settings, now: 0)?.size, 2, "below min")
    }

    /// A look in the middle of a cooperative rebalance sees only some of the
    /// partitions: the ceiling is the most ever seen, not that look's count.
    func testPartitionsHiddenByARebalanceDoNotLowerTheCeiling() {
        var a = Autoscaler()
        XCTAssertEqual(a.evaluate(observe(1, [500, 500, 500, 500], rate: 5), settings: settings, now: 0)?.size, 4)
        a.sizeChanged(now: -1000)  // as long ago as any cooldown
        XCTAssertNil(a.evaluate(observe(4, [300], rate: 5), settings: settings, now: 100), "1 partition visible mid-rebalance: not \"above max 1\"")
    }

    func testAManualScaleSuspendsAutoscalingUntilTurnedOnAgain() {
        var h = SwarmCoreTests.Harness(nodes: 1, "[autoscale]\nenabled = true\ncooldown_up = 0\n")
        h.started()
        XCTAssertEqual(h.command(.scale(.absolute(2)))?.message, "scaling to 2 nodes; autoscaling suspended (swarmctl autoscale on resumes it)")
        XCTAssertEqual(h.swarm.status(now: 0).autoscale?.active, false)
        XCTAssertEqual(h.command(.autoscale(on: true))?.message, "autoscaling on")
        XCTAssertEqual(h.swarm.status(now: 0).autoscale?.active, true)
        var off = SwarmCoreTests.Harness(nodes: 1)
        off.started()
        XCTAssertEqual(off.command(.autoscale(on: true))?.error?.code, ControlErrorCode.badArgument.rawValue, "not configured: said so")
    }
}

/// End to end: a burst on the mock broker takes a swarm up from `min`, the
/// backlog drains, and the idle swarm comes back down; nothing is lost.
final class AutoscaleEndToEndTests: XCTestCase {
    func testABurstScalesUpDrainsAndComesBackDown() throws {
        let topic = "burst"
        let broker = try BrokerUnderTest(topics: [topic: 4])
        let keys = (0..<1_200).map { "b\($0)" }
        try broker.produce(topic, keys: keys)
        let record = Record.fresh()
        // The handler takes 10 ms a message: one node drains 1,200 in 12 s, over the 4 s target.
        let config = kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic) + """

            [autoscale]
            enabled = true
            min = 1
            target_drain_seconds = 4
            cooldown_up = 5
            cooldown_down = 8
            """
        let swarmd = try SwarmdUnderTest(config: config, environment: ["RECORD_FILE": record.path, "SLOW_MS": "10"])
        swarmd.waitForLog("autoscale 1 -> ", timeout: 90)
        let up = swarmd.log.split(separator: "\n").first { $0.contains("autoscale 1 -> ") }.map(String.init) ?? ""
        XCTAssertTrue(up.contains("partitions with lag"), up)
        eventually("the backlog handled", timeout: 120) { record.okKeys == Set(keys) }
        // Idle: lag under a quarter of the target (it may still be a few messages when the step down is decided).
        swarmd.waitForLog("idle: lag ", timeout: 120)
        eventually("back down", timeout: 60) { (swarmd.status()?.wanted ?? 99) < 4 }
        let s = try XCTUnwrap(swarmd.status())
        XCTAssertEqual(s.autoscale?.active, true)
        XCTAssertNotNil(s.autoscale?.lastDecision)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        let offsets = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 4)
        XCTAssertEqual(offsets.committed, offsets.end, "everything handled is committed")
    }
}
