#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared

/// The node lifecycle: every transition of a slot happens here and is logged
/// with its reason.
extension Supervisor {
    func transition(_ slot: NodeSlot, to next: NodeState, _ reason: String) {
        let previous = slot.state
        slot.move(to: next)
        var m = meta(slot)
        m["from"] = "\(previous.name)"
        m["to"] = "\(next.name)"
        m["reason"] = "\(reason)"
        logger.info("node \(previous.name) -> \(next.name)", metadata: m)
    }

    // MARK: Spawning

    func spawn(_ slot: NodeSlot) {
        slot.respawnAt = nil
        let now = monotonicNow()
        do {
            let s = try spawner.spawn(slot: slot.id)
            let spawnId = nextSpawnId
            nextSpawnId += 1
            let process = NodeProcess(spawnId: spawnId, pid: s.pid, pidfd: s.pidfd, reportFd: s.reportFd,
                                      controlFd: s.controlFd, now: now)
            do {
                try loop.add(s.pidfd, .pidfd(spawn: spawnId))
                try loop.add(s.reportFd, .report(spawn: spawnId))
            } catch {
                // A node the loop cannot watch must not run: kill and reap it now.
                loop.remove(s.pidfd)
                _ = swarm_pidfd_send_signal(s.pidfd, SIGKILL)
                var code: Int32 = 0, status: Int32 = 0
                var pfd = pollfd(fd: s.pidfd, events: Int16(POLLIN), revents: 0)
                _ = poll(&pfd, 1, 1000)
                _ = swarm_pidfd_reap(s.pidfd, &code, &status)
                for fd in [s.pidfd, s.reportFd, s.controlFd] { close(fd) }
                throw error
            }
            slot.process = process
            bySpawn[spawnId] = slot
            transition(slot, to: .starting, "spawned pid \(s.pid)")
            if slot.drainRequested { send("drain", to: slot) }
        } catch {
            slot.quickFailures += 1
            slot.lastExit = "\(error)"
            let delay = max(0.5, Backoff(cap: config.supervisor.restartBackoffMax).delay(afterFailures: slot.quickFailures))
            slot.respawnAt = now + delay
            logger.error("cannot spawn node: \(error); retrying in \(delay) s", metadata: meta(slot))
        }
    }

    /// Asks a node to stop with `signal`, and KILLs it after `grace` seconds.
    func stop(_ slot: NodeSlot, reason: StopReason, signal: Int32, grace: Double) {
        guard let p = slot.process else { return }
        if slot.state == .stopping, signal != SIGQUIT { return }
        p.stopReason = reason
        let deadline = monotonicNow() + grace
        p.killAt = min(p.killAt ?? deadline, deadline)
        if slot.state != .stopping { transition(slot, to: .stopping, reason.text) }
        if swarm_pidfd_send_signal(p.pidfd, signal) != 0 && errno != ESRCH {
            logger.error("cannot signal node: \(errnoText())", metadata: meta(slot))
        }
    }

    /// Writes one command line to a node's control pipe (fd 4). Never blocks:
    /// a node that does not read its commands cannot stall the supervisor.
    func send(_ command: String, to slot: NodeSlot) {
        guard let p = slot.process, p.controlFd >= 0 else { return }
        if !writeAll(p.controlFd, command + "\n") && errno != EPIPE {
            logger.warning("cannot send '\(command)' to node: \(errnoText())", metadata: meta(slot))
        }
    }

    // MARK: Exits

    func processExited(spawnId: Int) {
        guard let slot = bySpawn[spawnId], let p = slot.process else { return }
        var code: Int32 = 0, status: Int32 = 0
        let rc = swarm_pidfd_reap(p.pidfd, &code, &status)
        guard rc == 1 else {
            if rc < 0 { logger.error("waitid failed: \(errnoText())", metadata: meta(slot)) }
            return
        }
        let now = monotonicNow()
        var cause: String
        switch code {
        case 1: cause = "exited with status \(status)"
        case 2: cause = "killed by signal \(signalName(status))"
        case 3: cause = "killed by signal \(signalName(status)) (core dumped)"
        default: cause = "ended (code \(code), status \(status))"
        }
        if let reason = p.stopReason { cause += " after stop: \(reason.text)" }
        var m = meta(slot)
        m["uptime_s"] = "\(Int(now - p.startedAt))"
        logger.log(level: p.stopReason == nil ? .error : .info, "node exited: \(cause)", metadata: m)

        loop.remove(p.pidfd)
        close(p.pidfd)
        if p.reportFd >= 0 { loop.remove(p.reportFd); close(p.reportFd) }
        if p.controlFd >= 0 { close(p.controlFd) }
        bySpawn[spawnId] = nil
        slot.handledBefore += p.lastReport?.handled ?? 0
        slot.failedBefore += p.lastReport?.failed ?? 0
        slot.process = nil
        slot.lastExit = cause

        if mode.isStopping || slot.id >= wanted {
            slots[slot.id] = nil
            logger.info("node slot removed", metadata: ["slot": "\(slot.id)", "reason": "\(mode.isStopping ? "swarm stopping" : "scaled down")"])
            return
        }

        let failed = p.stopReason.map(\.isFailure) ?? true
        var delay = 0.0
        if failed {
            if let h = p.healthySince, now - h >= config.supervisor.restartResetAfter { slot.quickFailures = 0 }
            slot.quickFailures += 1
            delay = Backoff(cap: config.supervisor.restartBackoffMax).delay(afterFailures: slot.quickFailures)
        }
        slot.restarts += 1
        totalRestarts += 1
        if delay > 0 {
            slot.respawnAt = now + delay
            let looping = slot.quickFailures >= config.supervisor.crashLoopAfter
            transition(slot, to: .backoff, "\(cause); restart in \(delay) s\(looping ? " (crash-looping: \(slot.quickFailures) quick failures)" : "")")
        } else {
            transition(slot, to: .backoff, "\(cause); restarting now")
            spawn(slot)
        }
    }

    // MARK: Size

    /// Brings the swarm to `n` nodes: new slots are spawned, the highest slots drain and stop.
    func scale(to n: Int, reason: String) {
        let previous = wanted
        wanted = n
        if previous != n || slots.isEmpty {
            logger.notice("swarm size \(previous) -> \(n)", metadata: ["reason": "\(reason)"])
        }
        for id in 0..<n where slots[id] == nil {
            let slot = NodeSlot(id: id)
            slots[id] = slot
            spawn(slot)
        }
        for slot in slots.values where slot.id >= n {
            if slot.process == nil {
                slots[slot.id] = nil
                logger.info("node slot removed", metadata: ["slot": "\(slot.id)", "reason": "scaled down"])
            } else {
                stop(slot, reason: .scaleDown, signal: SIGTERM, grace: config.supervisor.killTimeout)
            }
        }
        rollQueue.removeAll { $0.slot >= n }
    }

    // MARK: Rolling restarts

    /// Restarts queued slots one at a time: the next goes only once the
    /// previous one's replacement reports healthy, so capacity never drops by more than one node.
    func advanceRoll() {
        guard !mode.isStopping else { rollQueue.removeAll(); rollCurrent = nil; return }
        if let current = rollCurrent {
            if let slot = slots[current], slot.process == nil || slot.state == .starting || slot.state == .stopping {
                return
            }
            rollCurrent = nil
        }
        while rollCurrent == nil, !rollQueue.isEmpty {
            let (id, reason) = rollQueue.removeFirst()
            guard let slot = slots[id], slot.process != nil, slot.state != .stopping else { continue }
            rollCurrent = id
            stop(slot, reason: reason, signal: SIGTERM, grace: config.supervisor.killTimeout)
        }
        if rollCurrent == nil, rollQueue.isEmpty, mode == .reloading {
            mode = .running
            logger.notice("reload complete: every node runs the new configuration")
            notifier.ready()
        }
    }

    // MARK: Stopping the swarm

    func beginStop() {
        guard !mode.isStopping else { return }
        notifier.stopping()
        let now = monotonicNow()
        stopDeadline = now + config.supervisor.shutdownTimeout
        for slot in slots.values where slot.process == nil { slots[slot.id] = nil }
        if config.supervisor.nodeCommand.isEmpty {
            // Built-in nodes first pause and commit while the group is stable
            // (the broker refuses commits during the rebalance a leaving node starts).
            mode = .pausing
            pauseDeadline = now + min(config.supervisor.shutdownTimeout / 2, 10)
            for slot in slots.values where slot.state != .stopping { send("pause", to: slot) }
            logger.info("stopping: pausing every node so all commit before any leaves the group")
        } else {
            terminateAll()
        }
    }

    private func terminateAll() {
        mode = .stopping
        pauseDeadline = nil
        let grace = max(0.1, (stopDeadline ?? monotonicNow()) - monotonicNow())
        for slot in slots.values.sorted(by: { $0.id < $1.id }) {
            stop(slot, reason: .shutdown, signal: SIGTERM, grace: grace)
        }
    }

    func beginQuit() {
        if !mode.isStopping { notifier.stopping() }
        mode = .quitting
        pauseDeadline = nil
        for slot in slots.values where slot.process == nil { slots[slot.id] = nil }
        for slot in slots.values.sorted(by: { $0.id < $1.id }) {
            slot.process?.stopReason = nil
            stop(slot, reason: .quit, signal: SIGQUIT, grace: config.supervisor.quitTimeout)
        }
    }

    func advanceStop(now: Double) {
        guard mode == .pausing else { return }
        let live = slots.values.filter { $0.process != nil }
        let allPaused = live.allSatisfy { $0.state == .stopping || $0.process?.lastReport?.state == .drained }
        if allPaused || (pauseDeadline.map { now >= $0 } ?? true) {
            if !allPaused { logger.warning("not every node paused in time; stopping them anyway") }
            terminateAll()
        }
    }

    // MARK: systemd

    func checkReady() {
        guard !readySent, mode == .running else { return }
        let initial = slots.values.filter { $0.id < wanted }
        guard initial.count == wanted,
              initial.allSatisfy({ $0.state == .running || $0.state == .drained }) else { return }
        readySent = true
        logger.notice("swarm ready: all \(wanted) nodes report healthy")
        notifier.ready()
    }

    func updateStatusLine() {
        guard notifier.isActive else { return }  // not worth building a string for nobody, every turn
        notifier.status(statusLine())
    }

    func statusLine() -> String {
        let running = slots.values.filter { $0.state == .running || $0.state == .drained }.count
        let rate = slots.values.reduce(0.0) { $0 + ($1.process?.rate ?? 0) }
        let word = mode == .running ? "" : "\(mode.name): "
        return "\(word)\(running)/\(wanted) nodes running, \(Int(rate.rounded())) msg/s, \(totalRestarts) restarts"
    }
}
