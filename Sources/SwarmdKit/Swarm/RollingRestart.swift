/// Rolling restarts (`swarmctl restart`, a reload the nodes see, a node over
/// its memory limit), one slot at a time: the next is stopped only once the
/// previous one's replacement consumes, or `ready_timeout` after its stop (a
/// replacement that cannot join, in a broker outage, must not hold the roll
/// for ever), so capacity never drops by more than one node.
///
/// A sub-machine of `Swarm`: it keeps the queue and the step in progress;
/// `Swarm.advanceRoll` asks it what to stop next and tells it when a step is
/// over. Its fields travel in the upgrade handover under the keys they had
/// as `Swarm`'s own (`rollQueue`, `rollCurrent`, `rollStartedAt`).
struct RollingRestart: Equatable {
    /// One slot to restart, and why.
    struct Step: Equatable, Codable {
        var slot: Int
        var reason: StopReason
    }

    /// Slots still to restart, in order.
    private(set) var queue: [Step] = []
    /// The slot being rolled now: the next waits until its replacement consumes.
    private(set) var current: Int?
    /// When the current step began (its replacement gets `ready_timeout` to consume).
    private(set) var startedAt: Double?

    init(queue: [Step] = [], current: Int? = nil, startedAt: Double? = nil) {
        self.queue = queue
        self.current = current
        self.startedAt = startedAt
    }

    /// Nothing queued, nothing in progress.
    var isIdle: Bool { current == nil && queue.isEmpty }

    /// True when `slot` is queued or being rolled now.
    func includes(_ slot: Int) -> Bool { current == slot || queue.contains { $0.slot == slot } }

    /// Queues a slot, once: asked again while it waits, it keeps its place and first reason.
    mutating func enqueue(_ slot: Int, reason: StopReason) {
        guard !queue.contains(where: { $0.slot == slot }) else { return }
        queue.append(Step(slot: slot, reason: reason))
    }

    /// Forgets queued slots at or above `n` (scaled away: nothing left to roll).
    mutating func dropSlots(from n: Int) {
        queue.removeAll { $0.slot >= n }
    }

    /// Forgets everything (the swarm stops).
    mutating func cancel() {
        self = RollingRestart()
    }

    /// When the current step's replacement has had its time, if a step is in progress.
    func deadline(readyTimeout: Double) -> Double? {
        guard current != nil, let at = startedAt else { return nil }
        return at + readyTimeout
    }

    /// Ends the step in progress; returns its slot.
    mutating func finishCurrent() -> Int? {
        defer { current = nil; startedAt = nil }
        return current
    }

    /// Starts the next step if none is in progress: the first queued slot
    /// that `rollable` accepts (one with a process that is not stopping);
    /// the others are dropped on the way.
    mutating func next(now: Double, rollable: (Int) -> Bool) -> Step? {
        while current == nil, !queue.isEmpty {
            let step = queue.removeFirst()
            guard rollable(step.slot) else { continue }
            current = step.slot
            startedAt = now
            return step
        }
        return nil
    }
}
