@testable import SwarmdKit
import XCTest

/// Where a change of the group goes, alone: queued while the previous one
/// settles, held behind the barrier while it is up, out now otherwise.
/// How the coordinator drives it: `SwarmCoreTests` ("group changes").
final class GroupChangesTests: XCTestCase {
    func testAChangeWithNothingInFlightGoesOutAndOpensTheGateAtTheEndOfTheEvent() {
        var c = GroupChanges()
        XCTAssertEqual(c.route(.spawn(slot: 3)), .now)
        XCTAssertTrue(c.takeWentOut())
        XCTAssertFalse(c.takeWentOut(), "said once per event")
        XCTAssertEqual(c.routeReplacement(.spawn(slot: 1)), .now)
        XCTAssertFalse(c.takeWentOut(), "a replacement is no change of swarmd's: it opens no gate")
    }

    func testWhileTheGateIsOpenChangesQueueAndTheFirstSaysSo() {
        var c = GroupChanges()
        c.open(SettleGate(now: 10))
        XCTAssertEqual(c.route(.tell(spawn: 4, .drain)), .queued(first: true))
        XCTAssertEqual(c.route(.tell(spawn: 5, .drain)), .queued(first: false))
        XCTAssertEqual(c.route(.tell(spawn: 4, .resume)), .queued(first: false))
        XCTAssertEqual(c.gate?.queued, [.tell(spawn: 5, .drain)], "a drain and a resume of one node cancel out")
        XCTAssertEqual(c.routeReplacement(.spawn(slot: 0)), .now, "a crash replacement never waits for the group to settle")
        XCTAssertEqual(c.latestStart(now: 11), 10 + SettleGate.limit + CommitBarrier.limit)
        c.closeGate()
        XCTAssertNil(c.gate)
        XCTAssertFalse(c.takeWentOut())
    }

    func testHoldsAskedWhileTheGateIsOpenWaitForIt() {
        var c = GroupChanges()
        XCTAssertFalse(c.deferHolds(except: [2]), "nothing settles: hold now")
        c.open(SettleGate(now: 0))
        XCTAssertTrue(c.deferHolds(except: [2]))
        XCTAssertTrue(c.deferHolds(except: [3]))
        XCTAssertEqual(c.gate?.changing, [2, 3])
        XCTAssertEqual(c.gate?.holdsAsked, true)
    }

    func testBehindTheBarrierChangesWaitForEveryHeldNodesCommit() {
        var c = GroupChanges()
        c.awaitCommit(of: 7, now: 20)
        c.awaitCommit(of: 8, now: 21)
        XCTAssertEqual(c.barrier?.deadline, 20 + CommitBarrier.limit, "the barrier's wait starts with its first hold")
        XCTAssertEqual(c.route(.spawn(slot: 2)), .held)
        XCTAssertEqual(c.route(.spawn(slot: 2)), .held)
        XCTAssertEqual(c.routeReplacement(.spawn(slot: 0)), .held, "a replacement waits behind a barrier that is up")
        XCTAssertEqual(c.barrier?.changes, [.spawn(slot: 2), .spawn(slot: 0)], "a slot's spawn is held once")
        XCTAssertTrue(c.awaits(7))
        c.release(7)
        c.release(8)
        XCTAssertFalse(c.awaits(7))
        XCTAssertEqual(c.barrier?.waiting, [])
        c.lowerBarrier()
        c.markWentOut()
        XCTAssertNil(c.barrier)
        XCTAssertTrue(c.takeWentOut(), "what the barrier held went out: the gate opens")
    }
}
