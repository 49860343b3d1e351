import Shared

/// A node's life as the core sees it: spawned, reporting, measured, stopped,
/// exited and restarted with backoff. Each move goes through `NodeState`'s
/// table (`move`).
extension Swarm {
    // MARK: Spawning and exits

    /// `decided`: a spawn swarmd decided (a scale up), which waits for the
    /// group to settle; a replacement (crash, rolling step) does not.
    mutating func requestSpawn(_ id: Int, decided: Bool = true) {
        move(id, on: .spawnAsked, "spawn asked")
        if decided { change(.spawn(slot: id)) } else if changes.routeReplacement(.spawn(slot: id)) == .now { emit(.spawn(slot: id)) }
    }

    /// A process no slot waits for (the slot was asked to spawn twice, or
    /// is gone) is nobody's node: it is killed at once, before it consumes
    /// unseen under a slot's name. It has handled nothing yet.
    mutating func spawned(_ id: Int, spawn: Int, pid: Int32) {
        guard let slot = slots[id], slot.state.phase == .backoff else {
            log(.strangerKilled(slot: id, pid: pid, spawn: spawn))
            effects.append(.signal(spawn: spawn, .kill))
            return
        }
        bySpawn[spawn] = id
        move(id, on: .spawned(NodeProcess(spawn: spawn, pid: pid, now: now)), "spawned pid \(pid)")
        if slot.want == .drained { effects.append(.tell(spawn: spawn, .drain)) }
    }

    mutating func spawnFailed(_ id: Int, _ error: String) {
        guard var slot = slots[id] else { return }
        slot.quickFailures += 1
        slot.lastExit = error
        let delay = max(0.5, Backoff(cap: settings.restartBackoffMax).delay(afterFailures: slot.quickFailures))
        slots[id] = slot
        move(id, on: .spawnFailed(retryAt: now + delay), error)
        log(.spawnFailed(node(slot), error: error, retryIn: delay))
    }

    mutating func exited(_ spawn: Int, _ exit: ExitCause) {
        guard let id = bySpawn.removeValue(forKey: spawn), var slot = slots[id], let p = slot.process, p.spawn == spawn else { return }
        changes.release(spawn)
        let order = slot.state.stopOrder
        var cause = exit.text
        if let order { cause += " after stop: \(order.reason.text)" }
        log(.exited(node(slot), cause: cause, ordered: order != nil, uptime: Int(saturating: now - p.startedAt)))
        slot.handledBefore = slot.handledBefore.addingSaturating(p.lastReport?.handled ?? 0)
        slot.failedBefore = slot.failedBefore.addingSaturating(p.lastReport?.failed ?? 0)
        var before = slot.countersBefore
        func add(_ key: String, _ v: Int64) { before[key] = (before[key] ?? 0).addingSaturating(v) }
        for counter in NodeReport.Counter.allCases { add(counter.rawValue, p.lastReport?[counter] ?? 0) }
        for (i, count) in (p.lastReport?.batchBuckets ?? []).enumerated() { add("batch_b\(i)", count) }
        add("batch_sum_ms", p.lastReport?.batchSumMs ?? 0)
        slot.countersBefore = before
        slot.lastExit = cause
        slots[id] = slot
        if mode.isStopping || slot.want == .gone {
            slots[id] = nil
            log(.slotRemoved(slot: id, swarmStopping: mode.isStopping))
            return
        }
        var delay = 0.0
        if order?.reason.isFailure ?? true {
            if let h = p.healthySince, now - h >= settings.restartResetAfter { slot.quickFailures = 0 }
            slot.quickFailures += 1
            delay = Backoff(cap: settings.restartBackoffMax).delay(afterFailures: slot.quickFailures)
        }
        slot.restarts += 1
        slot.restartReasons[order?.reason.metricName ?? "crashed", default: 0] += 1
        totalRestarts += 1
        slots[id] = slot
        if slot.quickFailures >= settings.crashLoopAfter && !slot.crashLooping {
            slots[id]?.crashLooping = true
            log(.crashLooping(node(slot), failures: slot.quickFailures, healthyAfter: settings.restartResetAfter, last: cause))
        }
        if delay > 0 {
            let looping = slot.quickFailures >= settings.crashLoopAfter
            move(id, on: .exited(respawnAt: now + delay),
                 "\(cause); restart in \(delay) s\(looping ? " (crash-looping: \(slot.quickFailures) quick failures)" : "")")
        } else {
            move(id, on: .exited(respawnAt: now), "\(cause); restarting now")
            // A rolled node's replacement joins the group: the others commit first.
            if order?.reason == .restart { holdOthers(except: [id], now: true) }
            // Part of the change that stopped it (a rolled node's replacement), or no
            // change at all (a crash): either way it does not wait for the group to settle.
            requestSpawn(id, decided: false)
        }
    }

    /// Asks a node to stop with `signal`, and KILLs it after `grace` seconds.
    /// A stop that is swarmd's own change of the group (`membership`: scale
    /// down, a rolling step) goes out behind the commit barrier, if one is
    /// open; its grace starts when it does.
    mutating func stop(_ id: Int, reason: StopReason, signal: NodeSignal, grace: Double, membership: Bool = false) {
        guard let slot = slots[id], let p = slot.process else { return }
        let previous = slot.state.stopOrder
        if previous != nil && signal != .quit { return }
        changes.release(p.spawn)
        let delayed = membership ? max(0, changes.latestStart(now: now) - now) : 0
        let deadline = now + delayed + grace
        let order = StopOrder(reason: reason, killAt: min(previous?.killAt ?? deadline, deadline), killed: previous?.killed ?? false)
        move(id, on: .stop(order), reason.text)
        var steps: [GroupChange] = []
        if signal == .term && (reason == .scaleDown || reason == .shutdown) && settings.nodeCommand.isEmpty {
            // Nobody comes back for this slot's static membership: leave the group
            // explicitly, so its partitions move now, not after session.timeout.ms.
            steps.append(.tell(spawn: p.spawn, .leave))
        }
        steps.append(.signal(spawn: p.spawn, signal))
        for step in steps {
            if membership { change(step) } else { emit(step) }
        }
    }

    // MARK: Reports

    mutating func malformed(_ spawn: Int, _ why: String) {
        malformedReports += 1
        // A node that writes garbage in a loop must not flood the log.
        guard malformedReports <= 20 || malformedReports % 1000 == 0 else { return }
        log(.malformedReport(slot(ofSpawn: spawn).map(node), why: why, count: malformedReports))
    }

    mutating func accept(_ report: NodeReport, spawn: Int) {
        guard let id = bySpawn[spawn], let slot = slots[id], slot.process?.spawn == spawn else { return }
        let now = self.now
        let updated = slot.state.updatingProcess { p in
            if let at = p.rateSampleAt, now > at {
                let instant = Double(max(0, report.handled - p.rateSampleHandled)) / (now - at)
                p.rate = p.rate == 0 ? instant : 0.5 * p.rate + 0.5 * instant
                let busy = min(1, Double(max(0, report.batchSumMs - p.busySampleMs)) / 1000 / (now - at))
                p.busy = 0.5 * p.busy + 0.5 * busy
            }
            p.busySampleMs = report.batchSumMs
            p.rateSampleAt = now
            p.rateSampleHandled = report.handled
            p.lastReport = report
            p.lastReportAt = now
        }
        slots[id]?.state = updated
        if report.holds >= (slot.process?.holdsSent ?? 0) { changes.release(spawn) }
        let phase = slot.state.phase
        guard phase != .stopping else { return }
        if report.health == .unhealthy {
            log(.unhealthy(node(slot), reason: report.reason, detail: report.detail))
            stop(id, reason: .unhealthy(report.reason), signal: .term, grace: settings.killTimeout)
            return
        }
        let state = updated.updatingProcess { p in if p.healthySince == nil { p.healthySince = now } }
        slots[id]?.state = state
        if slot.crashLooping, let since = state.process?.healthySince, now - since >= settings.restartResetAfter {
            slots[id]?.crashLooping = false
            slots[id]?.quickFailures = 0
            log(.recovered(node(slot), healthyFor: now - since))
        }
        switch (phase, report.state) {
        case (.starting, .drained), (.running, .drained), (.draining, .drained):
            move(id, on: .reportedDrained, phase == .starting ? "first report: drained" : "reports drained")
        case (.starting, _):
            move(id, on: .reportedRunning, "first healthy report")
        case (.drained, .running) where slot.want != .drained:
            move(id, on: .reportedRunning, "resumed")
        default:
            break
        }
    }

    /// A node's whole tree over `memory_limit` (its PSS, see `ProcessTree`)
    /// is restarted gracefully, one node at a time.
    mutating func measured(_ memory: NodeMemory, spawn: Int) {
        guard let id = bySpawn[spawn], let slot = slots[id], slot.process?.spawn == spawn else { return }
        slots[id]?.state = slot.state.updatingProcess { $0.memory = memory }
        let limit = settings.memoryLimit
        guard limit > 0, memory.charged > limit, slot.state.phase != .stopping,
              !roll.includes(id) else { return }
        let detail = "\(memory.largest); the limit is \(NodeMemory.text(limit))"
        log(.overMemory(node(slot), detail: detail))
        roll.enqueue(id, reason: .overMemory(detail))
    }

    /// True while the supervisor waits on this node's next report to move on
    /// (the shell reads such a node's pipe at once; the others in one sweep
    /// per report interval, see `Supervisor`).
    func awaitsReport(_ slot: Slot) -> Bool {
        switch slot.state.phase {
        case .starting, .draining: return true
        case .drained: return slot.want != .drained  // resumed: waiting for it to say it runs
        case .running:
            // Told to pause: waiting for it to say drained. Told to hold: a group change
            // waits for its answer, which the sweep would read only a report interval later.
            return mode.isPausing || (slot.process.map { changes.awaits($0.spawn) } ?? false)
        case .stopping, .backoff: return false
        }
    }
}
