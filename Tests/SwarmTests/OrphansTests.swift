@testable import SwarmdKit
import XCTest

/// Which of swarmd's non-node children it kills, decided from process groups alone.
final class OrphansTests: XCTestCase {
    let nodes: Set<Int32> = [100, 200]

    func testARunningNodesDoubleForkIsLeftAlone() {
        XCTAssertEqual(Orphans.verdict(pid: 150, group: 100, groupLeaderParent: 1, nodes: nodes), .leave)
    }

    func testWhatARunningNodesHandlerDoubleForkedIsLeftAlone() {
        // The handler (pid 110, a child of node 100) leads group 110.
        XCTAssertEqual(Orphans.verdict(pid: 111, group: 110, groupLeaderParent: 100, nodes: nodes), .leave)
    }

    func testWhatADeadNodeLeftBehindIsKilled() {
        XCTAssertEqual(Orphans.verdict(pid: 350, group: 300, groupLeaderParent: nil, nodes: nodes), .kill(group: false),
                       "the node's own group, its leader gone")
        XCTAssertEqual(Orphans.verdict(pid: 310, group: 310, groupLeaderParent: 1, nodes: nodes), .kill(group: true),
                       "its handler, reparented to swarmd: killed with the handler's group")
        XCTAssertEqual(Orphans.verdict(pid: 311, group: 310, groupLeaderParent: 1, nodes: nodes), .kill(group: false),
                       "what the handler started, once the handler is no node's child")
    }

    func testAStrangerWhoseGroupCannotBeReadOrLeadsItsOwnIsKilled() {
        XCTAssertEqual(Orphans.verdict(pid: 400, group: nil, groupLeaderParent: nil, nodes: nodes), .kill(group: false))
        // A process that leads its own group is judged by its own pid, not its parent (swarmd).
        XCTAssertEqual(Orphans.verdict(pid: 400, group: 400, groupLeaderParent: 100, nodes: nodes), .kill(group: true))
    }
}
