import Shared

/// swarmd's own changes of the group: what the coordinator knows and
/// `GroupChanges` (the settle gate, the commit barrier) does not — which
/// nodes run and hold, whether the group settled, whether a queued change
/// still applies. The protocol end to end, both processes: ARCHITECTURE.md,
/// "A change of the group, end to end (the hold protocol)".
extension Swarm {
    /// Before swarmd itself changes the group (a node joins, leaves, drains or
    /// resumes), every other built-in node holds: it commits what it handled
    /// and stops handling until its next assignment. In the rebalance that
    /// follows, commits are refused, so what a node handles between the change
    /// and its revocation is delivered again; a held node hands nothing new
    /// to that window (BENCHMARKS.md, "Redeliveries from the swarm's own
    /// membership changes"). The change itself waits for their commits
    /// (`CommitBarrier`).
    /// `now`: part of a change already going out (a rolled node's
    /// replacement), so not deferred by the settle gate.
    mutating func holdOthers(except changing: Set<Int>, now immediately: Bool = false) {
        guard settings.nodeCommand.isEmpty, !mode.isStopping, !config.kafka.usesConsumerProtocol else { return }
        // The previous change still settles: the holds go out with this one, later.
        if !immediately && changes.deferHolds(except: changing) { return }
        for id in slots.keys.sorted() where !changing.contains(id) {
            guard let slot = slots[id], slot.state.phase == .running, let p = slot.process else { continue }
            effects.append(.tell(spawn: p.spawn, .hold))
            // Cooperative: no wait; its hold commit blocks until a rebalance in
            // progress ends (CommitBarrier says why).
            guard !config.kafka.cooperative else { continue }
            slots[id]?.state = slot.state.updatingProcess { $0.holdsSent += 1 }
            changes.awaitCommit(of: p.spawn, now: now)
        }
    }

    /// Ends the others' holds once a rolled node's replacement consumes. On
    /// the mock, and on a real broker whenever the group rebalances, their
    /// own assignment has ended them already; on a real broker a replacement
    /// that rejoins under the same static member id within
    /// `session.timeout.ms` gets its partitions back without any rebalance,
    /// so no assignment would reach the held nodes, and each would sit idle
    /// for its 10 s hold limit, every rolling step.
    mutating func releaseHolds(except rolled: Int) {
        guard settings.nodeCommand.isEmpty else { return }
        for id in slots.keys.sorted() where id != rolled {
            guard let slot = slots[id], slot.state.phase == .running, let p = slot.process else { continue }
            emit(.tell(spawn: p.spawn, .release))
        }
    }

    /// A change of the group: queued while the previous one settles
    /// (`SettleGate`), behind the barrier while one is open, now otherwise.
    mutating func change(_ step: GroupChange) {
        switch changes.route(step) {
        case .queued(let first): if first { log(.changeWaits) }
        case .held: break
        case .now: emit(step)
        }
    }

    /// Starts the settling after a change went out (built-in nodes only:
    /// they say where they stand with Kafka).
    mutating func openGate() {
        guard settings.nodeCommand.isEmpty, !mode.isStopping else { return }
        var gate = SettleGate(now: now)
        if !config.kafka.cooperative && !config.kafka.usesConsumerProtocol {
            for slot in slots.values {
                guard let p = slot.process, slot.state.phase == .running, slot.want == .up, let r = p.lastReport else { continue }
                gate.assignmentsBefore[p.spawn] = r.rebalances
            }
        }
        changes.open(gate)
    }

    /// Lets the queued changes out once the group settled (or at the limit):
    /// the holds first, then the changes, behind one barrier.
    mutating func advanceGate() {
        guard let g = changes.gate else { return }
        // Nodes that run: a slot whose spawn waits in the queue has nothing to say yet.
        let reports = slots.values.filter { $0.id < wanted && $0.want == .up && $0.process != nil && $0.state.phase != .stopping }
            .map { slot -> (at: Double, settled: Bool, reassigned: Bool) in
                let p = slot.process!
                let reassigned = g.assignmentsBefore[p.spawn].map { (p.lastReport?.rebalances ?? 0) > $0 } ?? true
                return (at: p.lastReportAt, settled: isSettled(slot), reassigned: reassigned)
            }
        let settled = g.settled(now: now, reports: reports)
        guard settled || isDue(.settleLimit) || mode.isStopping else { return }
        changes.closeGate()
        guard !g.isEmpty, !mode.isStopping else { return }
        if !settled {
            log(.changesUnsettled(missing: missing()))
        } else {
            log(.groupSettled(queued: g.queued.count, waitedMs: Int(saturating: ((now - g.since) * 1000).rounded())))
        }
        if g.holdsAsked { holdOthers(except: g.changing) }
        for step in g.queued where stillApplies(step) { change(step) }
    }

    /// A queued step whose target is gone (a slot scaled away meanwhile, an exited process) is dropped.
    private func stillApplies(_ step: GroupChange) -> Bool {
        switch step {
        case .spawn(let id):
            return !mode.isStopping && slots[id]?.state == .backoff(respawnAt: nil)
        case .tell(let spawn, let command):
            // A stopping swarm pauses its nodes: a drain or resume decided before must not undo that.
            return bySpawn[spawn] != nil && !(mode.isStopping && (command == .drain || command == .resume))
        case .signal(let spawn, _):
            return bySpawn[spawn] != nil
        }
    }

    mutating func emit(_ step: GroupChange) {
        switch step {
        case .spawn(let slot): effects.append(.spawn(slot: slot))
        case .tell(let spawn, let command): effects.append(.tell(spawn: spawn, command))
        case .signal(let spawn, let signal): effects.append(.signal(spawn: spawn, signal))
        }
    }

    /// Lets the held-back changes out once every held node committed, or at
    /// the barrier's deadline; each still applies only if its target is
    /// still there (a slot scaled away meanwhile is not spawned, an exited
    /// process not told).
    mutating func advanceBarrier() {
        guard let b = changes.barrier, b.waiting.isEmpty || isDue(.barrier) || mode.isStopping else { return }
        changes.lowerBarrier()
        if !b.waiting.isEmpty && !mode.isStopping {
            log(.barrierLate(slots: b.waiting.compactMap { bySpawn[$0] }.sorted()))
        } else if !b.changes.isEmpty {
            log(.barrierPassed(waitedMs: Int(saturating: ((now - b.openedAt) * 1000).rounded())))
        }
        var emitted = false
        for step in b.changes where stillApplies(step) {
            emit(step)
            emitted = true
        }
        if emitted { changes.markWentOut() }
    }

    /// Drains the slots asked for that are not drained already, and returns
    /// how many that is. A slot drained (or draining) already changes nothing
    /// in the group: no hold, no tell, no settling to wait for.
    mutating func drain(_ targets: [Int]) -> Int {
        let changing = targets.filter { slots[$0].map { $0.want != .drained } ?? false }
        guard !changing.isEmpty else { return 0 }
        holdOthers(except: Set(changing))
        for id in changing {
            guard let slot = slots[id] else { continue }
            slots[id]?.want = .drained
            if slot.state.phase == .running || slot.state.phase == .starting {
                move(id, on: .drain, "drain requested")
            }
            if let p = slot.process { change(.tell(spawn: p.spawn, .drain)) }
        }
        return changing.count
    }

    /// Resumes the slots asked for that are drained (or draining, or asked to
    /// drain), and returns how many that is. A node that consumes already is
    /// not told: a resume to it would change nothing in the group, yet the
    /// settle gate would wait its whole limit for a rebalance that never
    /// comes, holding back the next change (seen in the chaos on Tansu).
    mutating func resume(_ targets: [Int]) -> Int {
        let changing = targets.filter { id in
            guard let slot = slots[id] else { return false }
            return slot.want == .drained || slot.state.phase == .draining || slot.state.phase == .drained
        }
        guard !changing.isEmpty else { return 0 }
        holdOthers(except: Set(changing))
        for id in changing {
            guard let slot = slots[id] else { continue }
            if slot.want == .drained { slots[id]?.want = .up }
            if slot.state.phase == .draining {
                move(id, on: .resume, "resume requested")
            }
            if let p = slot.process { change(.tell(spawn: p.spawn, .resume)) }
        }
        return changing.count
    }
}
