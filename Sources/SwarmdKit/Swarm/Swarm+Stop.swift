import Shared

/// The multi-step flows that end or replace nodes in turn: the rolling
/// restart (`RollingRestart`) and the swarm's stop (`Mode`).
extension Swarm {
    // MARK: Rolling restarts

    /// Restarts queued slots one at a time: the next goes only once the
    /// previous one's replacement reports healthy, so capacity never drops by more than one node.
    mutating func advanceRoll() {
        guard !mode.isStopping else { roll.cancel(); return }
        if let current = roll.current {
            if let slot = slots[current], !isSettled(slot) {
                guard isDue(.rollReplacement) else { return }
                // A replacement that cannot join (a broker outage) must not hold the roll forever.
                log(.rollingOn(node(slot), readyTimeout: settings.readyTimeout))
            }
            _ = roll.finishCurrent()
            releaseHolds(except: current)
        }
        if let step = roll.next(now: now, rollable: { [slots] in slots[$0].map { $0.process != nil && $0.state.phase != .stopping } ?? false }) {
            holdOthers(except: [step.slot])
            stop(step.slot, reason: step.reason, signal: .term, grace: settings.killTimeout, membership: true)
        }
        if roll.isIdle, mode == .reloading {
            mode = .running
            log(.reloadComplete)
            effects.append(.notify(.ready))
        }
    }

    // MARK: Stopping the swarm

    /// A graceful stop (TERM, `swarmctl stop`): every node gets
    /// `shutdown_timeout` from now to be gone.
    mutating func beginStop() {
        guard !mode.isStopping else { return }
        effects.append(.notify(.stopping))
        let stopBy = now + settings.shutdownTimeout
        for slot in slots.values where slot.process == nil { slots[slot.id] = nil }
        if settings.nodeCommand.isEmpty {
            // Built-in nodes first pause and commit while the group is stable
            // (the broker refuses commits during the rebalance a leaving node starts).
            mode = .pausing(until: now + min(settings.shutdownTimeout / 2, 10), stopBy: stopBy)
            for id in slots.keys.sorted() {
                if let slot = slots[id], slot.state.phase != .stopping, let p = slot.process {
                    effects.append(.tell(spawn: p.spawn, .pause))
                }
            }
            log(.pausing)
        } else {
            terminateAll(stopBy: stopBy)
        }
    }

    private mutating func terminateAll(stopBy: Double) {
        mode = .stopping
        let grace = max(0.1, stopBy - now)
        for id in slots.keys.sorted() { stop(id, reason: .shutdown, signal: .term, grace: grace) }
    }

    mutating func beginQuit() {
        if !mode.isStopping { effects.append(.notify(.stopping)) }
        mode = .quitting
        for slot in slots.values where slot.process == nil { slots[slot.id] = nil }
        for id in slots.keys.sorted() { stop(id, reason: .quit, signal: .quit, grace: settings.quitTimeout) }
    }

    /// Pausing ends once every live node says drained (or is stopping
    /// already), or at the pause's deadline.
    mutating func advanceStop() {
        guard case .pausing(_, let stopBy) = mode else { return }
        let live = slots.values.filter { $0.process != nil }
        let allPaused = live.allSatisfy { $0.state.phase == .stopping || $0.process?.lastReport?.state == .drained }
        if allPaused || isDue(.pause) {
            if !allPaused { log(.notPausedInTime) }
            terminateAll(stopBy: stopBy)
        }
    }
}
