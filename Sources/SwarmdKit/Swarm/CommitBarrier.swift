import Shared

/// A change swarmd makes to the consumer group (a node joins, leaves,
/// drains or resumes) waits behind a commit barrier: every other built-in
/// node was told to hold (commit what it handled, stop handling until the
/// group's next assignment), and the change goes out once each has said it
/// did (`holds=` in its report), or when `limit` passed.
///
/// Why wait rather than send the holds and the change together: measured on
/// the handover benchmark (eager assignment, scale 3 → 4 → 3, 1 ms a
/// message, batches of 50), the new node joined the group 13 ms after its
/// spawn, while the others finished their batch and committed 33–40 ms
/// after the hold; the group was rebalancing by then, the broker refused
/// their commits, and 1,485 messages per change were handled twice. With
/// the barrier (BENCHMARKS.md, handover, eager, changes 2 s apart): per
/// drain + resume 692 → 0, per rolling restart 883 → 0, per scale step
/// 2,659 → 1,100–1,711 (what is left comes from rebalances the mock broker starts
/// by itself after a burst of changes, not from swarm's own).
///
/// Only with eager assignment. With cooperative-sticky the hold's commit
/// blocks until a rebalance in progress ends (3–5 s on the mock), so the
/// barrier held every change that long, the held nodes' sessions fell
/// behind the group, and drain + resume cost 644–1,383 redeliveries per
/// pair against 283–367 with the holds alone: cooperative nodes are held, not
/// waited for.
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
}

/// One thing that changes the group, as a barrier holds it back.
enum GroupChange: Equatable, Codable {
    case spawn(slot: Int)
    case tell(spawn: Int, NodeCommand)
    case signal(spawn: Int, NodeSignal)
}

extension NodeCommand: Codable {}
