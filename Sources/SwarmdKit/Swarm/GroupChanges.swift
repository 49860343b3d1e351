import Shared

/// swarmd's own changes of the consumer group in flight, as a sub-machine of
/// `Swarm`: the settle gate a change opens (`SettleGate`), the commit barrier
/// the holds raise (`CommitBarrier`), and where each new change goes. It owns
/// both; the coordinator (`Swarm+GroupChange`) tells it what only it knows
/// (which nodes run, whether the group settled) and emits what comes out.
/// The protocol end to end: ARCHITECTURE.md, "the hold protocol".
///
///     decided change ──▶ gate open?  ── yes ─▶ queued (goes out with the queue once the group settled)
///                          │ no
///                          ▼
///                     barrier up? ── yes ─▶ held (goes out once every held node committed)
///                          │ no
///                          ▼
///                         out now ─▶ the gate opens at the end of the event
struct GroupChanges: Equatable {
    /// Open while the last change settles; later changes queue in it.
    private(set) var gate: SettleGate?
    /// Up while held nodes have not said they committed; changes wait behind it.
    private(set) var barrier: CommitBarrier?
    /// A change went out during this event: the gate opens once the event is
    /// handled, so the steps of one command (a scale by 2) go out together.
    private(set) var wentOut = false

    init(gate: SettleGate? = nil, barrier: CommitBarrier? = nil) {
        self.gate = gate
        self.barrier = barrier
    }

    /// Where a change went.
    enum Route: Equatable {
        /// Queued while the previous change settles; `first`: the queue was empty.
        case queued(first: Bool)
        /// Behind the commit barrier.
        case held
        /// Out now: the caller emits it.
        case now
    }

    /// A change swarmd decided: queued while the previous one settles,
    /// behind the barrier while it is up, out now otherwise.
    mutating func route(_ step: GroupChange) -> Route {
        if gate != nil {
            let first = gate!.isEmpty
            gate!.queue(step)
            return .queued(first: first)
        }
        if barrier != nil {
            barrier!.hold(step)
            return .held
        }
        wentOut = true
        return .now
    }

    /// A step that is part of a change already going out, or of none (a
    /// rolled or crashed node's replacement): it never waits for the group
    /// to settle, only behind a barrier that is up.
    mutating func routeReplacement(_ step: GroupChange) -> Route {
        guard barrier != nil else { return .now }
        barrier!.hold(step)
        return .held
    }

    /// Holds asked for while the previous change settles go out later, with
    /// the queue; false when no change settles (the caller holds now).
    mutating func deferHolds(except changing: Set<Int>) -> Bool {
        guard gate != nil else { return false }
        gate!.changing.formUnion(changing)
        gate!.holdsAsked = true
        return true
    }

    /// A hold went to `spawn`: the next change waits for its commit.
    mutating func awaitCommit(of spawn: Int, now: Double) {
        if barrier == nil { barrier = CommitBarrier(now: now) }
        barrier!.waiting.insert(spawn)
    }

    /// `spawn` committed for its holds, exited, or is being stopped: nobody waits for it.
    mutating func release(_ spawn: Int) {
        barrier?.waiting.remove(spawn)
    }

    func awaits(_ spawn: Int) -> Bool { barrier?.waiting.contains(spawn) ?? false }

    /// When a change decided now would go out at the latest: after the
    /// settling in progress and a barrier's wait, or after the barrier up now.
    func latestStart(now: Double) -> Double {
        gate.map { $0.deadline + CommitBarrier.limit } ?? barrier?.deadline ?? now
    }

    /// The end of an event: true (once) if a change went out during it, so
    /// the coordinator opens the gate.
    mutating func takeWentOut() -> Bool {
        defer { wentOut = false }
        return wentOut
    }

    /// Starts the settling of the change that just went out.
    mutating func open(_ gate: SettleGate) { self.gate = gate }

    /// Takes the gate down (the group settled, its limit passed, or the swarm stops).
    mutating func closeGate() { gate = nil }

    /// Takes the barrier down (every held node committed, its limit passed,
    /// or the swarm stops).
    mutating func lowerBarrier() { barrier = nil }

    /// Changes the barrier held went out: the gate opens at the end of the event.
    mutating func markWentOut() { wentOut = true }
}
