import Shared

/// Back-to-back group changes wait for the previous one to settle.
///
/// The rule: after swarmd changed the group (a node joined, left, drained or
/// resumed), the next change it makes waits until every wanted node reports
/// a settled assignment (consuming, idle or waiting) in a report sent at
/// least `quiet` after the change went out, or until `limit`. Changes asked
/// for meanwhile (an operator draining one node after another, a rolling
/// deploy, the autoscaler) queue here and go out together, behind one set of
/// holds and one commit barrier: one rebalance instead of one per change.
/// A drain and a resume of the same node that meet in the queue cancel out.
///
/// Why: a change made while the group still rebalances starts another
/// rebalance on top, commits are refused in between, and the held nodes'
/// promise breaks. BENCHMARKS.md, "Churn", has the figures before and after.
///
/// `quiet` is librdkafka's default heartbeat interval: by then every member
/// has heard of a rebalance the change started and reports `rebalancing`,
/// so an earlier "consuming" is not taken for settled. Crash respawns never
/// wait here: a dead node's replacement is not a change swarmd decided.
struct SettleGate: Codable, Equatable {
    /// When the last change went out.
    let since: Double
    /// The longest a queued change waits (then it goes, and says so).
    let deadline: Double
    /// Changes asked for since, in order.
    var queued: [GroupChange] = []
    /// Slots those changes concern: not held when they go out.
    var changing: Set<Int> = []
    /// A change asked for holds of the other nodes.
    var holdsAsked = false
    /// Eager assignment: each running node's count of assignments when the
    /// change went out. Every eager rebalance revokes and reassigns every
    /// member, so a node has seen the change's rebalance through once its
    /// count rose; "consuming" before that may only mean it has not heard
    /// of the rebalance yet (up to a heartbeat interval, 3 s by default),
    /// and a change let out then lands inside that rebalance, where the
    /// broker refuses the held nodes' commits.
    var assignmentsBefore: [Int: Int64] = [:]

    static let quiet = 3.0
    static let limit = 15.0

    init(now: Double) {
        since = now
        deadline = now + Self.limit
    }

    var isEmpty: Bool { queued.isEmpty && !holdsAsked }

    /// Queues a step, cancelling a drain and a resume of the same node that
    /// meet here. A slot's spawn is queued once: scale 2 → 4 → 3 → 4 while
    /// the group settles asks for slot 3 twice, and both would go out
    /// together, each starting a process.
    mutating func queue(_ step: GroupChange) {
        if case .spawn = step, queued.contains(step) { return }
        if case .tell(let spawn, let command) = step, command == .drain || command == .resume {
            let opposite: NodeCommand = command == .drain ? .resume : .drain
            if let i = queued.lastIndex(of: .tell(spawn: spawn, opposite)) {
                queued.remove(at: i)
                return
            }
        }
        queued.append(step)
    }

    /// True once the group looks settled: `reports` has, for every wanted
    /// running node, when it last reported, whether it said settled, and
    /// (eager) whether it was assigned again since the change.
    func settled(now: Double, reports: [(at: Double, settled: Bool, reassigned: Bool)]) -> Bool {
        now >= since + Self.quiet && reports.allSatisfy { $0.at >= since + Self.quiet && $0.settled && $0.reassigned }
    }
}
