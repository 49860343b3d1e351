import Shared

/// The one timer table (`Deadline`): what the shell's timer is armed for,
/// and what fires when it goes off.
extension Swarm {
    // MARK: Deadlines

    /// The spawn ids of nodes whose report deadline passed: the shell reads
    /// their pipes before the tick, so that none is called hung on a stale report.
    func hangSuspects(now: Double) -> [Int] {
        deadlines().compactMap { deadline, at in
            guard case .report(let id) = deadline, now >= at else { return nil }
            return slots[id]?.process?.spawn
        }.sorted()
    }

    /// The timer table: every armed deadline with its time, per-slot ones
    /// in slot order (`Deadline` says what each one does when due).
    func deadlines() -> [(Deadline, Double)] {
        var table: [(Deadline, Double)] = []
        for id in slots.keys.sorted() {
            guard let slot = slots[id] else { continue }
            switch slot.state {
            // A stopping swarm respawns nothing: a due backoff would wake the loop
            // at once, again and again, until the stop ends (found by SwarmFuzzTests).
            case .backoff(let at?): if !mode.isStopping { table.append((.respawn(slot: id), at)) }
            case .backoff(nil): break
            case .stopping(_, let order): if !order.killed { table.append((.kill(slot: id), order.killAt)) }
            default:
                if let p = slot.process { table.append((.report(slot: id), p.lastReportAt + settings.reportTimeout)) }
            }
        }
        return table + swarmWideDeadlines()
    }

    /// The table's swarm-wide part (the steps that own these read only this
    /// part: no walk over every slot after every event).
    private func swarmWideDeadlines() -> [(Deadline, Double)] {
        var table: [(Deadline, Double)] = []
        if case .pausing(let until, _) = mode { table.append((.pause, until)) }
        if let b = barrier { table.append((.barrier, b.deadline)) }
        if let g = gate {
            table.append((.settleLimit, g.deadline))
            if !g.isEmpty && now < g.since + SettleGate.quiet { table.append((.settleQuiet, g.since + SettleGate.quiet)) }
        }
        if !readySent && mode == .running { table.append((.ready, startedAt + settings.readyTimeout)) }
        if let at = roll.deadline(readyTimeout: settings.readyTimeout) { table.append((.rollReplacement, at)) }
        return table
    }

    /// The earliest time the core has something to do, if any: the shell's one timer.
    func nextDeadline() -> Double? {
        deadlines().lazy.map(\.1).min()
    }

    /// True when a swarm-wide `deadline` is armed and its time has come, by
    /// the same table the shell's timer comes from.
    func isDue(_ deadline: Deadline) -> Bool {
        swarmWideDeadlines().contains { $0.0 == deadline && now >= $0.1 }
    }

    /// A tick: the per-slot deadlines that are due fire, in slot order. (The
    /// swarm-wide ones fire in the steps that own them, after every event.)
    mutating func checkDeadlines() {
        for (deadline, at) in deadlines() where now >= at {
            switch deadline {
            case .kill(let id):
                guard let slot = slots[id], case .stopping(let p, _) = slot.state else { continue }
                log(.killedAtDeadline(node(slot)))
                move(id, on: .killed, "KILL at the stop deadline")
                if mode.isStopping { anyKilledWhileStopping = true }
                effects.append(.signal(spawn: p.spawn, .kill))
            case .respawn(let id):
                requestSpawn(id, decided: false)
            case .report(let id):
                guard let slot = slots[id] else { continue }
                log(.hung(node(slot), after: settings.reportTimeout))
                stop(id, reason: .hung, signal: .term, grace: settings.killTimeout)
            case .pause, .barrier, .settleQuiet, .settleLimit, .ready, .rollReplacement:
                continue
            }
        }
    }
}
