@testable import SwarmdKit
import XCTest

/// The node's once-a-second checks of its brokers and topics, with a fake
/// clock: when it probes, when a silence begins and ends, how it joins again
/// when a topic comes back, and when it gives up on its consumer. End to end
/// on a real broker: BrokerMatrixTests (a frozen broker, a broker started
/// again empty).
final class BrokerWatchTests: XCTestCase {
    let idle = BrokerWatch.Look(active: true, assigned: 0, brokersDown: false, revoked: false)

    func testOnlyANodeWhosePartitionsWereRevokedProbesAndItsSilenceIsSaidOnceEachWay() {
        var w = BrokerWatch(now: 0)
        XCTAssertNil(w.probeDue(idle), "a node the group gives nothing asks nothing")
        var revoked = idle
        revoked.revoked = true
        XCTAssertEqual(w.probeDue(revoked), .silence)
        XCTAssertEqual(BrokerWatch.Probe.silence.timeoutMs, 500)
        XCTAssertEqual(w.probed(.silence, answered: true, now: 1), nil, "an answer while nothing was wrong is not news")
        XCTAssertEqual(w.probed(.silence, answered: false, now: 2),
                       .warn("no broker answers a metadata request within 500 ms, though the connections are open"))
        XCTAssertEqual(w.silentSince, 2)
        XCTAssertEqual(w.probed(.silence, answered: false, now: 3), nil, "said once")
        XCTAssertEqual(w.silentSince, 2, "the silence dates from its start")
        XCTAssertEqual(w.probed(.silence, answered: true, now: 4), .notice("a broker answers again"))
        XCTAssertNil(w.silentSince)
        _ = w.probed(.silence, answered: false, now: 5)
        var assigned = revoked
        assigned.assigned = 3
        XCTAssertNil(w.probeDue(assigned))
        XCTAssertNil(w.silentSince, "assigned again: the silence is over")
        XCTAssertNil(w.probeDue(BrokerWatch.Look(active: false, assigned: 0, brokersDown: false, revoked: true)),
                     "paused, drained or held: not asked")
    }

    func testWhileLibrdkafkaSaysEveryBrokerIsDownTheNodeAsksWhetherOneIsBack() {
        var w = BrokerWatch(now: 0)
        var revoked = idle
        revoked.revoked = true
        _ = w.probeDue(revoked)
        _ = w.probed(.silence, answered: false, now: 1)
        for active in [true, false] {
            let down = BrokerWatch.Look(active: active, assigned: 0, brokersDown: true, revoked: true)
            XCTAssertEqual(w.probeDue(down), .outage, "asked in every mode: librdkafka never says a broker is back")
            XCTAssertNil(w.silentSince, "librdkafka's own word on the outage takes over from the silence")
        }
        XCTAssertEqual(BrokerWatch.Probe.outage.timeoutMs, 200)
        XCTAssertNil(w.probed(.outage, answered: false, now: 2), "the outage is librdkafka's to say, not a new silence")
        XCTAssertNil(w.silentSince)
        XCTAssertEqual(w.probed(.outage, answered: true, now: 3), .notice("a broker answers again"))
    }

    func testTopicsAreCheckedEveryIntervalOnlyWhileNothingIsAssigned() {
        let w = BrokerWatch(now: 0)
        XCTAssertFalse(w.topicCheckDue(idle, now: 4.9))
        XCTAssertTrue(w.topicCheckDue(idle, now: 5))
        var assigned = idle
        assigned.assigned = 1
        XCTAssertFalse(w.topicCheckDue(assigned, now: 50))
        var down = idle
        down.brokersDown = true
        XCTAssertFalse(w.topicCheckDue(down, now: 50), "nobody to ask")
        var held = idle
        held.active = false
        XCTAssertFalse(w.topicCheckDue(held, now: 50))
    }

    func testAMissingTopicIsSaidOnceAndItsReturnJoinsAgainAtEachCheckAtMostSixTimes() {
        var w = BrokerWatch(now: 0)
        XCTAssertEqual(w.topicsChecked(missingBefore: nil, missingAfter: "unknown-topic: orders", now: 5),
                       [.warn("unknown-topic: orders: waiting for it (nothing to consume)")])
        XCTAssertEqual(w.topicsChecked(missingBefore: "unknown-topic: orders", missingAfter: "unknown-topic: orders", now: 10), [],
                       "still missing: nothing new to say, nothing to join")
        XCTAssertFalse(w.topicCheckDue(idle, now: 14.9), "the check's clock restarted at 10")
        XCTAssertEqual(w.topicsChecked(missingBefore: "unknown-topic: orders", missingAfter: nil, now: 15),
                       [.notice("the subscribed topics exist again: joining with them"), .resubscribe])
        for i in 1..<BrokerWatch.rejoins {
            XCTAssertEqual(w.topicsChecked(missingBefore: nil, missingAfter: nil, now: 15 + 5 * Double(i)), [.resubscribe], "join \(i + 1)")
        }
        XCTAssertEqual(w.rejoinsLeft, 0)
        XCTAssertEqual(w.staleGroupViewSince, 40, "the sixth join")
    }

    func testAGroupThatStillAssignsNothingAfterTheJoinsMakesTheNodeLeaveOnce() {
        var w = BrokerWatch(now: 0)
        _ = w.topicsChecked(missingBefore: nil, missingAfter: "unknown-topic: orders", now: 5)
        for t in stride(from: 10.0, through: 35, by: 5) { _ = w.topicsChecked(missingBefore: t == 10 ? "unknown-topic: orders" : nil, missingAfter: nil, now: t) }
        XCTAssertEqual(w.staleGroupViewSince, 35)
        let leave = w.topicsChecked(missingBefore: nil, missingAfter: nil, now: 40)
        XCTAssertEqual(leave, [.leave("the subscribed topics are back but the group still assigns nothing after 6 joins: leaving, so that a fresh consumer joins")])
    }

    func testAnAssignmentEndsTheTopicsReturn() {
        var w = BrokerWatch(now: 0)
        _ = w.topicsChecked(missingBefore: "unknown-topic: orders", missingAfter: nil, now: 5)
        XCTAssertEqual(w.rejoinsLeft, BrokerWatch.rejoins - 1)
        w.assigned()
        XCTAssertEqual(w.rejoinsLeft, 0)
        XCTAssertNil(w.staleGroupViewSince)
        XCTAssertEqual(w.topicsChecked(missingBefore: nil, missingAfter: nil, now: 100), [], "nothing assigned later, topics fine: no join, no leave")
    }

    func testATopicThatGoesAgainBeforeTheGroupAssignsStopsTheJoins() {
        var w = BrokerWatch(now: 0)
        _ = w.topicsChecked(missingBefore: "unknown-topic: orders", missingAfter: nil, now: 5)
        XCTAssertEqual(w.topicsChecked(missingBefore: nil, missingAfter: "unknown-topic: orders", now: 10),
                       [.warn("unknown-topic: orders: waiting for it (nothing to consume)")], "no join while it is missing")
        XCTAssertEqual(w.rejoinsLeft, BrokerWatch.rejoins - 1, "kept for when it is back")
    }
}
