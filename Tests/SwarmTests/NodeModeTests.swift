import Shared
@testable import SwarmdKit
import XCTest

/// A node's own state machine (active, paused, drained, held), driven with
/// commands, revocations, assignments and a fake clock: the node side of
/// the hold protocol (ARCHITECTURE.md).
final class NodeModeTests: XCTestCase {
    func testAHoldCommitsPausesAndAnswersThenEndsAtTheAssignmentAfterARevocation() {
        var m = NodeMode()
        let hold = m.apply(.hold, now: 0, assigned: 3)
        XCTAssertEqual(hold.first, .commit("hold: the group is about to change"), "commit first, while the partitions are still its own")
        XCTAssertEqual(Array(hold.dropFirst().prefix(1)), [.pause])
        XCTAssertEqual(hold.last, .countHold, "the answer swarmd's barrier waits for")
        XCTAssertEqual(m.phase, .held)
        XCTAssertEqual(m.assigned(cooperative: false), [], "an assignment with no revocation before it ends an earlier rebalance, not this one")
        XCTAssertEqual(m.phase, .held)
        m.revoked()
        XCTAssertEqual(m.assigned(cooperative: false).first, .resume(keepRetriesPaused: true))
        XCTAssertEqual(m.phase, .active)
    }

    func testAHoldEndsAtItsLimitAndSaysWhetherARebalanceCame() {
        var m = NodeMode()
        _ = m.apply(.hold, now: 100, assigned: 2)
        XCTAssertEqual(m.tick(now: 100 + NodeMode.holdLimit - 0.1), [])
        XCTAssertEqual(m.tick(now: 100 + NodeMode.holdLimit).last, .log("hold over: no rebalance reached this node within 10.0 s"))
        _ = m.apply(.hold, now: 200, assigned: 2)
        m.revoked()
        XCTAssertEqual(m.tick(now: 210).last, .log("hold over: the group's rebalance did not end within 10.0 s"))
    }

    func testAHoldWhileHeldRenewsItsLimitWithoutASecondCommitAndIsAnsweredInEveryPhase() {
        var m = NodeMode()
        _ = m.apply(.hold, now: 0, assigned: 2)
        XCTAssertEqual(m.apply(.hold, now: 8, assigned: 2), [.countHold], "held already: nothing new handled, nothing to commit")
        XCTAssertEqual(m.tick(now: 12), [], "the limit counts from the second hold")
        XCTAssertEqual(m.tick(now: 18).count, 2)
        _ = m.apply(.drain, now: 20, assigned: 2)
        XCTAssertEqual(m.apply(.hold, now: 21, assigned: 0), [.countHold], "drained: answered, not held")
        XCTAssertEqual(m.phase, .drained)
    }

    func testANodeWithNoPartitionEndsItsHoldAtAnyAssignment() {
        var m = NodeMode()
        _ = m.apply(.hold, now: 0, assigned: 0)
        XCTAssertEqual(m.assigned(cooperative: false).count, 2, "nothing to revoke: librdkafka may call no revocation")
    }

    func testCooperativeAssignmentEndsAHoldAtAnyAssignment() {
        var m = NodeMode()
        _ = m.apply(.hold, now: 0, assigned: 3)
        XCTAssertEqual(m.assigned(cooperative: true).count, 2)
    }

    func testReleaseEndsAHoldAndIsIgnoredOtherwise() {
        var m = NodeMode()
        XCTAssertEqual(m.apply(.release, now: 0, assigned: 1), [])
        _ = m.apply(.hold, now: 0, assigned: 1)
        XCTAssertEqual(m.apply(.release, now: 1, assigned: 1).last,
                       .log("hold over: the change is over: the rolled node's replacement consumes"))
        XCTAssertEqual(m.phase, .active)
    }

    func testDrainFromAHoldResumesFetchingCommitsAndLeavesTheSubscriptionThenResumeSubscribes() {
        var m = NodeMode()
        _ = m.apply(.hold, now: 0, assigned: 1)
        let drain = m.apply(.drain, now: 1, assigned: 1)
        XCTAssertEqual(Array(drain.prefix(3)), [.resume(keepRetriesPaused: false), .commit("drain"), .unsubscribe])
        XCTAssertEqual(m.apply(.drain, now: 2, assigned: 0), [], "drained already")
        XCTAssertEqual(m.tick(now: 30), [], "no hold left to end")
        let resume = m.apply(.resume, now: 3, assigned: 0)
        XCTAssertEqual(Array(resume.prefix(2)), [.subscribe, .report(.running)])
        XCTAssertEqual(m.phase, .active)
        XCTAssertEqual(m.apply(.resume, now: 4, assigned: 0), [], "active already")
    }

    func testAPauseCommitsAndSaysDrainedAndAResumeFetchesAgain() {
        var m = NodeMode()
        XCTAssertEqual(Array(m.apply(.pause, now: 0, assigned: 2).prefix(3)), [.pause, .commit("pause"), .report(.drained)])
        XCTAssertEqual(m.apply(.hold, now: 1, assigned: 2), [.countHold], "paused: answered, not held")
        XCTAssertEqual(m.phase, .paused)
        XCTAssertEqual(Array(m.apply(.resume, now: 2, assigned: 2).prefix(2)), [.resume(keepRetriesPaused: true), .report(.running)])
    }

    func testARefusedCommitHoldsAnActiveNodeOnly() {
        var m = NodeMode()
        XCTAssertEqual(m.brokerRefusedCommit("REBALANCE_IN_PROGRESS", now: 0, assigned: 2).first, .pause)
        XCTAssertEqual(m.phase, .held)
        XCTAssertEqual(m.brokerRefusedCommit("REBALANCE_IN_PROGRESS", now: 1, assigned: 2), [], "held already")
        XCTAssertEqual(m.apply(.leave, now: 2, assigned: 2), [], "leaving is how the runtime stops, not a phase")
    }
}
