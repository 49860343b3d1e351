/// The one loop between the core and whoever carries out its effects.
/// swarmd's shell (`Supervisor.feed`) and the tests' drivers
/// (`SwarmCoreTests.Harness`, `SwarmFuzzDriver`) run this same code, so the
/// order the tests check is the order swarmd keeps.
///
/// The order, for every caller:
/// 1. the event is handled, and its effects queue in the order the core
///    returned them;
/// 2. effects are carried out one at a time, first in first out;
/// 3. an effect the carrier answers with events (a `.spawn` answered by
///    `.spawned` or `.spawnFailed`) has them handled at once, before the next
///    effect is carried out, and their effects join the end of the queue.
///
/// So a spawn's outcome reaches the core as an event of its own, never from
/// inside `handle`; and no effect is carried out twice or skipped.
enum SwarmDriver {
    /// Feeds `event` and every event its effects lead to; returns every
    /// effect carried out, in order.
    @discardableResult
    static func feed(_ event: SwarmEvent, handle: (SwarmEvent) -> [SwarmEffect],
                     carryOut: (SwarmEffect) -> [SwarmEvent]) -> [SwarmEffect] {
        var done: [SwarmEffect] = []
        var pending = handle(event)
        var next = 0
        while next < pending.count {
            let effect = pending[next]
            next += 1
            done.append(effect)
            for answer in carryOut(effect) { pending += handle(answer) }
        }
        return done
    }
}
