import Shared

/// What swarmctl and signals ask: status, scale, drain, resume, restart,
/// reload, autoscale and stop, each answered once (`reply`).
extension Swarm {
    // MARK: Commands

    mutating func reply(_ response: ControlResponse, to origin: CommandOrigin) {
        if origin.isControl {
            effects.append(.reply(response))
        } else if let e = response.error {
            log(.commandIgnored(signal: origin.signalName, why: e.message))
        }
    }

    mutating func run(_ command: SwarmCommand, from origin: CommandOrigin) {
        if case .control(let uid, let pid, let comm) = origin, command != .status {
            log(.control(command: command.name, uid: uid, pid: pid, comm: comm))
        }
        if mode.isStopping && command != .status {
            if case .stop = command, !origin.isControl {
                log(.secondStopSignal)
                beginQuit()
                return
            }
            reply(.failure(.shuttingDown, "swarmd is stopping; it takes no more commands"), to: origin)
            return
        }
        switch command {
        case .status:
            reply(ControlResponse(ok: true, status: status(now: now)), to: origin)
        case .scale(let target):
            let n = target.size(from: wanted)
            guard n >= 1 && n <= SupervisorSettings.maxNodes else {
                reply(.failure(.badArgument, "the swarm size must be between 1 and \(SupervisorSettings.maxNodes), not \(n) (to stop the swarm, use swarmctl stop)"), to: origin)
                return
            }
            scale(to: n, reason: origin.isControl ? "swarmctl scale" : origin.signalName)
            var note = ""
            if config.autoscale.enabled && !autoscaler.suspended {
                // The operator's hand wins until they give it back.
                autoscaler.suspended = true
                note = "; autoscaling suspended (swarmctl autoscale on resumes it)"
                log(.autoscaleSuspended(nodes: n))
            }
            reply(ControlResponse(ok: true, message: "scaling to \(n) nodes" + note), to: origin)
        case .drain(let ids), .resume(let ids), .restart(let ids):
            let targets = ids ?? slots.keys.sorted()
            if let bad = targets.first(where: { slots[$0] == nil }) {
                reply(.failure(.badArgument, "there is no node in slot \(bad) (slots 0…\(wanted - 1))"), to: origin)
                return
            }
            let message: String
            switch command {
            case .drain:
                let n = drain(targets)
                message = n > 0 ? "draining \(n) node(s)" : "nothing to drain: every node asked is drained already"
            case .resume:
                let n = resume(targets)
                message = n > 0 ? "resuming \(n) node(s)" : "nothing to resume: no node asked is drained"
            default:
                for id in targets { roll.enqueue(id, reason: .restart) }
                message = "restarting \(targets.count) node(s), one at a time"
            }
            reply(ControlResponse(ok: true, message: message), to: origin)
        case .reload(let next):
            reload(next, from: origin)
        case .autoscale(let on):
            guard config.autoscale.enabled else {
                reply(.failure(.badArgument, "autoscaling is not configured: set [autoscale] enabled = true (swarmd.toml(5)) and reload"), to: origin)
                return
            }
            autoscaler.suspended = !on
            if on { autoscaler.sizeChanged(now: now - config.autoscale.cooldownUp) }  // may act at its next look
            log(.autoscaleSwitched(on: on))
            reply(ControlResponse(ok: true, message: on ? "autoscaling on" : "autoscaling off: the swarm stays at \(wanted) nodes"), to: origin)
        case .stop(let immediately):
            if immediately { beginQuit() } else { beginStop() }
            reply(ControlResponse(ok: true, message: immediately ? "stopping now" : "stopping gracefully"), to: origin)
        }
    }

    /// Applies a new configuration, changing only what changed: an unchanged
    /// file replaces nothing; settings only swarmd reads apply in place; a
    /// change the nodes see rolls them one at a time. The size follows the
    /// file only when the file's `nodes` changed, so a runtime `swarmctl
    /// scale` survives a reload that is about something else.
    mutating func reload(_ next: SwarmConfig, from origin: CommandOrigin) {
        guard next != config else {
            log(.reloadUnchanged)
            reply(ControlResponse(ok: true, message: "configuration unchanged: nothing to do"), to: origin)
            return
        }
        let rollNodes = next.nodeView != config.nodeView
        let resize = next.supervisor.nodes != config.supervisor.nodes
        effects.append(.useConfig(next))
        config = next
        if resize { scale(to: next.supervisor.nodes, reason: "reload") }
        guard rollNodes else {
            log(.reloadedInPlace(nodes: wanted))
            reply(ControlResponse(ok: true, message: "reloaded: swarmd's own settings applied; no node replaced" + (resize ? "; scaling to \(wanted) nodes" : "")), to: origin)
            return
        }
        effects.append(.notify(.reloading))
        mode = .reloading
        for id in slots.keys.sorted() where slots[id]?.want != .gone { roll.enqueue(id, reason: .restart) }
        log(.reloadRolling(nodes: wanted))
        reply(ControlResponse(ok: true, message: "reloading: replacing \(roll.queue.count) node(s) one at a time"), to: origin)
    }

    /// Asks the autoscaler what the size should be, from the reports the
    /// swarm already has, and scales to it.
    mutating func autoscale() {
        guard config.autoscale.enabled else { return }
        let steady = mode == .running && roll.isIdle && slots.count == wanted && consuming
        autoscaler.note(steady: steady, now: now)
        // Every report is an event: the observation is built only when the autoscaler will look.
        guard autoscaler.due(now: now, settings: config.autoscale) else { return }
        var lag: [TopicPartition: Int64] = [:]
        var stuck: Set<TopicPartition> = []
        var rate = 0.0, busy = 0.0
        for slot in slots.values {
            guard let p = slot.process else { continue }
            rate += p.rate
            busy += p.busy
            if let r = p.lastReport {
                lag.merge(r.partitionLag) { a, _ in a }
                stuck.formUnion(r.stuck)
            }
        }
        let observation = Autoscaler.Observation(wanted: wanted, steady: steady, lag: lag, stuck: stuck, rate: rate, busy: busy)
        guard let decision = autoscaler.evaluate(observation, settings: config.autoscale, now: now) else { return }
        log(.autoscaled(from: wanted, to: decision.size, reason: decision.reason))
        scale(to: decision.size, reason: "autoscale")
    }

    /// Brings the swarm to `n` nodes: new slots are spawned, the highest slots stop.
    mutating func scale(to n: Int, reason: String) {
        let previous = wanted
        // The leaving nodes hold too: two nodes leaving start two rebalances, and
        // the second one's stop commit would land in the first (BENCHMARKS.md, "Churn").
        if n != previous { holdOthers(except: []) }
        wanted = n
        if previous != n || slots.isEmpty {
            log(.sizeChanged(from: previous, to: n, reason: reason))
        }
        for id in 0..<n {
            if slots[id] == nil {
                slots[id] = Slot(id: id)
                // The first nodes join an empty group: nothing to settle before the next change.
                requestSpawn(id, decided: reason != "start")
            } else if slots[id]?.want == .gone {
                slots[id]?.want = .up  // scaled back up before it left: it stays
            }
        }
        for id in slots.keys.sorted() where id >= n {
            slots[id]?.want = .gone
            if slots[id]?.process == nil {
                slots[id] = nil
                log(.slotRemoved(slot: id, swarmStopping: false))
            } else {
                stop(id, reason: .scaleDown, signal: .term, grace: settings.killTimeout, membership: true)
            }
        }
        roll.dropSlots(from: n)
    }
}
