import Shared

/// A change swarmd makes to the consumer group (a node joins, leaves,
/// drains or resumes) waits behind a commit barrier: every other built-in
/// node was told to hold (commit what it handled, stop handling until the
/// group's next assignment), and the change goes out once each has said it
/// did (`holds=` in its report), or when `limit` passed.
///
/// Why wait rather than send the holds and the change together: a new
/// member joins faster than the others finish their batch and commit, the
/// broker refuses a commit that lands inside the rebalance, and what they
/// handled is delivered again.
///
/// Only with eager assignment: under cooperative-sticky a hold's commit
/// blocks until a rebalance in progress ends, so waiting for it held every
/// change that long; cooperative nodes are held, not waited for.
/// The figures for both: BENCHMARKS.md, "Membership changes behind a
/// commit barrier".
struct CommitBarrier: Equatable, Codable {
    /// Spawn ids of held nodes that have not said they committed.
    var waiting: Set<Int>
    let openedAt: Double
    let deadline: Double
    /// The group changes held back, in the order they were decided.
    var changes: [GroupChange] = []

    /// The longest a change waits for the commits. A node answers a hold
    /// after its current batch, usually within milliseconds; a handler in a
    /// long batch (up to `batch_timeout`) must not hold an operator's scale
    /// or drain for that long: past this, the change goes out anyway and
    /// what that node handles meanwhile may be delivered again
    /// (at-least-once, as before the barrier existed).
    static let limit = 5.0

    init(now: Double) {
        waiting = []
        openedAt = now
        deadline = now + Self.limit
    }

    /// Holds a change back; a slot's spawn only once (each would start a process).
    mutating func hold(_ step: GroupChange) {
        if case .spawn = step, changes.contains(step) { return }
        changes.append(step)
    }
}

/// One thing that changes the group, as a barrier holds it back.
enum GroupChange: Equatable, Codable {
    case spawn(slot: Int)
    case tell(spawn: Int, NodeCommand)
    case signal(spawn: Int, NodeSignal)
}

extension NodeCommand: Codable {}
