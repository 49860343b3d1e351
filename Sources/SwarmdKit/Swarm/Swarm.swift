import Logging
import Shared

/// swarmd's decisions, as one pure state machine: the swarm's state and one
/// entry point, `handle(_:now:)`, that turns an event into effects. No fds,
/// no system calls, no clock reads: the shell (`Supervisor`) turns fds into
/// events and effects into system calls, and tests drive this with events
/// and a fake clock (`SwarmTests`).
struct Swarm: Codable {
    /// What the swarm as a whole is doing.
    enum Mode: Equatable, Codable {
        case running
        /// Rolling the nodes onto a new configuration.
        case reloading
        /// Graceful stop, phase 1: built-in nodes pause and commit while the group is stable.
        case pausing
        /// Graceful stop, phase 2: TERM sent; KILL at the shutdown deadline.
        case stopping
        /// Immediate stop: QUIT sent; KILL after `quit_timeout`.
        case quitting

        /// As status names it: both phases of a graceful stop are `stopping`.
        var status: SwarmStatusState {
            switch self {
            case .running: return .running
            case .reloading: return .reloading
            case .pausing, .stopping: return .stopping
            case .quitting: return .quitting
            }
        }

        var isStopping: Bool { self == .pausing || self == .stopping || self == .quitting }
    }

    private(set) var config: SwarmConfig
    /// swarmd's own pid, for the status.
    let pid: Int32
    private(set) var mode = Mode.running
    private(set) var slots: [Int: Slot] = [:]
    private(set) var wanted: Int
    let startedAt: Double
    private(set) var readySent = false
    /// Slots to restart one at a time (rolling restart, reload, memory).
    private(set) var roll = RollingRestart()
    /// True once READY went out because `ready_timeout` passed, not because every node consumed.
    private(set) var readyByTimeout: Bool?
    private var stopDeadline: Double?
    private var pauseDeadline: Double?
    private(set) var anyKilledWhileStopping = false
    private(set) var malformedReports = 0
    private(set) var totalRestarts = 0
    /// The slot of each live process, by spawn id.
    private var bySpawn: [Int: Int] = [:]
    private var effects: [SwarmEffect] = []
    private var now = 0.0
    /// In-place upgrades of swarmd so far (the state outlives each: `Supervisor.upgrade`).
    var upgrades = 0
    /// Lag-aware autoscaling (`[autoscale]`); optional so that a handover from an older swarmd reads.
    private(set) var autoscaler: Autoscaler?
    /// The group changes waiting for the held nodes' commits, if any.
    private(set) var barrier: CommitBarrier?
    /// Open while the last group change settles; later changes queue in it.
    private(set) var gate: SettleGate?
    /// A change went out during this event: the gate opens once the event is
    /// handled, so the steps of one command (a scale by 2) go out together.
    private var changedThisEvent = false

    /// What an upgrade hands to the new swarmd: everything but the effects
    /// being built. The keys are handover format 2's (`Handover`): the
    /// rolling restart's fields keep the names they had as `Swarm`'s own, so
    /// an upgrade between builds of that format touches no node.
    private enum CodingKeys: String, CodingKey {
        case config, pid, mode, slots, wanted, startedAt, readySent, rollQueue, rollCurrent, stopDeadline, pauseDeadline
        case anyKilledWhileStopping, malformedReports, totalRestarts, bySpawn, now, upgrades, rollStartedAt, readyByTimeout, autoscaler
        case barrier, gate
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        config = try c.decode(SwarmConfig.self, forKey: .config)
        pid = try c.decode(Int32.self, forKey: .pid)
        mode = try c.decode(Mode.self, forKey: .mode)
        slots = try c.decode([Int: Slot].self, forKey: .slots)
        wanted = try c.decode(Int.self, forKey: .wanted)
        startedAt = try c.decode(Double.self, forKey: .startedAt)
        readySent = try c.decode(Bool.self, forKey: .readySent)
        roll = RollingRestart(queue: try c.decode([RollingRestart.Step].self, forKey: .rollQueue),
                              current: try c.decodeIfPresent(Int.self, forKey: .rollCurrent),
                              startedAt: try c.decodeIfPresent(Double.self, forKey: .rollStartedAt))
        stopDeadline = try c.decodeIfPresent(Double.self, forKey: .stopDeadline)
        pauseDeadline = try c.decodeIfPresent(Double.self, forKey: .pauseDeadline)
        anyKilledWhileStopping = try c.decode(Bool.self, forKey: .anyKilledWhileStopping)
        malformedReports = try c.decode(Int.self, forKey: .malformedReports)
        totalRestarts = try c.decode(Int.self, forKey: .totalRestarts)
        bySpawn = try c.decode([Int: Int].self, forKey: .bySpawn)
        now = try c.decode(Double.self, forKey: .now)
        upgrades = try c.decode(Int.self, forKey: .upgrades)
        readyByTimeout = try c.decodeIfPresent(Bool.self, forKey: .readyByTimeout)
        autoscaler = try c.decodeIfPresent(Autoscaler.self, forKey: .autoscaler)
        barrier = try c.decodeIfPresent(CommitBarrier.self, forKey: .barrier)
        gate = try c.decodeIfPresent(SettleGate.self, forKey: .gate)
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(config, forKey: .config)
        try c.encode(pid, forKey: .pid)
        try c.encode(mode, forKey: .mode)
        try c.encode(slots, forKey: .slots)
        try c.encode(wanted, forKey: .wanted)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(readySent, forKey: .readySent)
        try c.encode(roll.queue, forKey: .rollQueue)
        try c.encodeIfPresent(roll.current, forKey: .rollCurrent)
        try c.encodeIfPresent(roll.startedAt, forKey: .rollStartedAt)
        try c.encodeIfPresent(stopDeadline, forKey: .stopDeadline)
        try c.encodeIfPresent(pauseDeadline, forKey: .pauseDeadline)
        try c.encode(anyKilledWhileStopping, forKey: .anyKilledWhileStopping)
        try c.encode(malformedReports, forKey: .malformedReports)
        try c.encode(totalRestarts, forKey: .totalRestarts)
        try c.encode(bySpawn, forKey: .bySpawn)
        try c.encode(now, forKey: .now)
        try c.encode(upgrades, forKey: .upgrades)
        try c.encodeIfPresent(readyByTimeout, forKey: .readyByTimeout)
        try c.encodeIfPresent(autoscaler, forKey: .autoscaler)
        try c.encodeIfPresent(barrier, forKey: .barrier)
        try c.encodeIfPresent(gate, forKey: .gate)
    }

    init(config: SwarmConfig, pid: Int32 = 0, now: Double) {
        self.config = config
        self.pid = pid
        self.wanted = config.supervisor.nodes
        self.startedAt = now
    }

    var settings: SupervisorSettings { config.supervisor }

    /// True once the swarm was told to stop and every node is gone.
    var finished: Bool { mode.isStopping && slots.values.allSatisfy { $0.process == nil } }

    func slot(ofSpawn spawn: Int) -> Slot? { bySpawn[spawn].flatMap { slots[$0] } }

    // MARK: The one entry point

    mutating func handle(_ event: SwarmEvent, now: Double) -> [SwarmEffect] {
        effects = []
        self.now = now
        switch event {
        case .start: scale(to: wanted, reason: "start")
        case .spawned(let id, let spawn, let pid): spawned(id, spawn: spawn, pid: pid)
        case .spawnFailed(let id, let error): spawnFailed(id, error)
        case .exited(let spawn, let cause): exited(spawn, cause)
        case .report(let spawn, let report): accept(report, spawn: spawn)
        case .memory(let spawn, let memory): measured(memory, spawn: spawn)
        case .malformedReport(let spawn, let why): malformed(spawn, why)
        case .command(let command, let origin): run(command, from: origin)
        case .tick: checkDeadlines()
        }
        // The multi-step flows advance after every event, in this order.
        advanceGate()
        advanceBarrier()
        advanceRoll()
        advanceStop()
        checkReady()
        autoscale()
        if changedThisEvent {
            changedThisEvent = false
            openGate()
        }
        return effects
    }

    // MARK: Effects

    private mutating func log(_ level: Logger.Level, _ message: String, _ meta: [String: String] = [:]) {
        effects.append(.log(level, message, meta))
    }

    private func meta(_ slot: Slot) -> [String: String] {
        var m = ["slot": "\(slot.id)"]
        if let p = slot.process { m["pid"] = "\(p.pid)" }
        return m
    }

    /// Moves a slot through the transition table; an illegal move is a
    /// programming error: refused and logged, never applied.
    @discardableResult
    private mutating func move(_ id: Int, on event: NodeState.Event, _ reason: String) -> Bool {
        guard var slot = slots[id] else { return false }
        let from = slot.state.phase
        guard let next = slot.state.next(on: event) else {
            log(.critical, "refused illegal node transition from \(from.rawValue) on \(event.name)", meta(slot))
            return false
        }
        slot.state = next
        slots[id] = slot
        var m = meta(slot)
        m["from"] = from.rawValue
        m["to"] = next.phase.rawValue
        m["reason"] = reason
        m["event"] = event.name
        if from != next.phase { log(.info, "node \(from.rawValue) -> \(next.phase.rawValue)", m) }
        return true
    }

    // MARK: Spawning and exits

    /// `decided`: a spawn swarmd decided (a scale up), which waits for the
    /// group to settle; a replacement (crash, rolling step) does not.
    private mutating func requestSpawn(_ id: Int, decided: Bool = true) {
        move(id, on: .spawnAsked, "spawn asked")
        if decided { change(.spawn(slot: id)) } else if barrier != nil { barrier!.hold(.spawn(slot: id)) } else { emit(.spawn(slot: id)) }
    }

    /// A process no slot waits for (the slot was asked to spawn twice, or
    /// is gone) is nobody's node: it is killed at once, before it consumes
    /// unseen under a slot's name. It has handled nothing yet.
    private mutating func spawned(_ id: Int, spawn: Int, pid: Int32) {
        guard let slot = slots[id], slot.state.phase == .backoff else {
            log(.error, "a node started that no slot waits for: killed", ["slot": "\(id)", "pid": "\(pid)", "spawn": "\(spawn)"])
            effects.append(.signal(spawn: spawn, .kill))
            return
        }
        bySpawn[spawn] = id
        move(id, on: .spawned(NodeProcess(spawn: spawn, pid: pid, now: now)), "spawned pid \(pid)")
        if slot.want == .drained { effects.append(.tell(spawn: spawn, .drain)) }
    }

    private mutating func spawnFailed(_ id: Int, _ error: String) {
        guard var slot = slots[id] else { return }
        slot.quickFailures += 1
        slot.lastExit = error
        let delay = max(0.5, Backoff(cap: settings.restartBackoffMax).delay(afterFailures: slot.quickFailures))
        slots[id] = slot
        move(id, on: .spawnFailed(retryAt: now + delay), error)
        log(.error, "cannot spawn node: \(error); retrying in \(delay) s", meta(slot))
    }

    private mutating func exited(_ spawn: Int, _ exit: ExitCause) {
        guard let id = bySpawn.removeValue(forKey: spawn), var slot = slots[id], let p = slot.process, p.spawn == spawn else { return }
        barrier?.waiting.remove(spawn)
        let order = slot.state.stopOrder
        var cause = exit.text
        if let order { cause += " after stop: \(order.reason.text)" }
        var m = meta(slot)
        m["uptime_s"] = "\(Int(saturating: now - p.startedAt))"
        log(order == nil ? .error : .info, "node exited: \(cause)", m)
        slot.handledBefore = slot.handledBefore.addingSaturating(p.lastReport?.handled ?? 0)
        slot.failedBefore = slot.failedBefore.addingSaturating(p.lastReport?.failed ?? 0)
        var before = slot.countersBefore ?? [:]
        func add(_ key: String, _ v: Int64) { before[key] = (before[key] ?? 0).addingSaturating(v) }
        for counter in NodeReport.Counter.allCases { add(counter.rawValue, p.lastReport?[counter] ?? 0) }
        for (i, count) in (p.lastReport?.batchBuckets ?? []).enumerated() { add("batch_b\(i)", count) }
        add("batch_sum_ms", p.lastReport?.batchSumMs ?? 0)
        slot.countersBefore = before
        slot.lastExit = cause
        slots[id] = slot
        if mode.isStopping || slot.want == .gone {
            slots[id] = nil
            log(.info, "node slot removed", ["slot": "\(id)", "reason": mode.isStopping ? "swarm stopping" : "scaled down"])
            return
        }
        var delay = 0.0
        if order?.reason.isFailure ?? true {
            if let h = p.healthySince, now - h >= settings.restartResetAfter { slot.quickFailures = 0 }
            slot.quickFailures += 1
            delay = Backoff(cap: settings.restartBackoffMax).delay(afterFailures: slot.quickFailures)
        }
        slot.restarts += 1
        slot.restartReasons = slot.restartReasons ?? [:]
        slot.restartReasons![order?.reason.metricName ?? "crashed", default: 0] += 1
        totalRestarts += 1
        slots[id] = slot
        if slot.quickFailures >= settings.crashLoopAfter && slot.crashLooping != true {
            slots[id]?.crashLooping = true
            var m = meta(slot)
            m["event"] = "crash-loop"
            m["failures"] = "\(slot.quickFailures)"
            log(.error, "slot \(id) is crash-looping: \(slot.quickFailures) failures without \(Autoscaler.seconds(settings.restartResetAfter)) of health; last: \(cause)", m)
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
    private mutating func stop(_ id: Int, reason: StopReason, signal: NodeSignal, grace: Double, membership: Bool = false) {
        guard let slot = slots[id], let p = slot.process else { return }
        let previous = slot.state.stopOrder
        if previous != nil && signal != .quit { return }
        barrier?.waiting.remove(p.spawn)
        let delayed = membership ? max(0, (gate.map { $0.deadline + CommitBarrier.limit } ?? barrier?.deadline ?? now) - now) : 0
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

    private mutating func malformed(_ spawn: Int, _ why: String) {
        malformedReports += 1
        // A node that writes garbage in a loop must not flood the log.
        guard malformedReports <= 20 || malformedReports % 1000 == 0 else { return }
        var m = slot(ofSpawn: spawn).map(meta) ?? [:]
        m["count"] = "\(malformedReports)"
        log(.warning, "malformed report ignored: \(why)", m)
    }

    private mutating func accept(_ report: NodeReport, spawn: Int) {
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
        if report.holds >= (slot.process?.holdsSent ?? 0) { barrier?.waiting.remove(spawn) }
        let phase = slot.state.phase
        guard phase != .stopping else { return }
        if report.health == .unhealthy {
            log(.error, "node reports itself unhealthy: \(UnhealthyReason.describe(report.reason))\(report.detail.isEmpty ? "" : " (\(report.detail))")", meta(slot))
            stop(id, reason: .unhealthy(report.reason), signal: .term, grace: settings.killTimeout)
            return
        }
        let state = updated.updatingProcess { p in if p.healthySince == nil { p.healthySince = now } }
        slots[id]?.state = state
        if slot.crashLooping == true, let since = state.process?.healthySince, now - since >= settings.restartResetAfter {
            slots[id]?.crashLooping = nil
            slots[id]?.quickFailures = 0
            var m = meta(slot)
            m["event"] = "crash-loop-recovered"
            log(.notice, "slot \(id) recovered: healthy for \(Autoscaler.seconds(now - since)) after crash-looping", m)
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
    private mutating func measured(_ memory: NodeMemory, spawn: Int) {
        guard let id = bySpawn[spawn], let slot = slots[id], slot.process?.spawn == spawn else { return }
        slots[id]?.state = slot.state.updatingProcess { $0.memory = memory }
        let limit = settings.memoryLimit
        guard limit > 0, memory.charged > limit, slot.state.phase != .stopping,
              !roll.includes(id) else { return }
        let detail = "\(memory.largest); the limit is \(NodeMemory.text(limit))"
        log(.warning, "node over memory limit: \(detail); restarting it gracefully", meta(slot))
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
            return mode == .pausing || (slot.process.map { barrier?.waiting.contains($0.spawn) ?? false } ?? false)
        case .stopping, .backoff: return false
        }
    }

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
        if let at = pauseDeadline { table.append((.pause, at)) }
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
    private func isDue(_ deadline: Deadline) -> Bool {
        swarmWideDeadlines().contains { $0.0 == deadline && now >= $0.1 }
    }

    /// A tick: the per-slot deadlines that are due fire, in slot order. (The
    /// swarm-wide ones fire in the steps that own them, after every event.)
    private mutating func checkDeadlines() {
        for (deadline, at) in deadlines() where now >= at {
            switch deadline {
            case .kill(let id):
                guard let slot = slots[id], case .stopping(let p, _) = slot.state else { continue }
                log(.warning, "node did not stop in time: KILL", meta(slot))
                move(id, on: .killed, "KILL at the stop deadline")
                if mode.isStopping { anyKilledWhileStopping = true }
                effects.append(.signal(spawn: p.spawn, .kill))
            case .respawn(let id):
                requestSpawn(id, decided: false)
            case .report(let id):
                guard let slot = slots[id] else { continue }
                log(.error, "node hung: no report for \(settings.reportTimeout) s", meta(slot))
                stop(id, reason: .hung, signal: .term, grace: settings.killTimeout)
            case .pause, .barrier, .settleQuiet, .settleLimit, .ready, .rollReplacement:
                continue
            }
        }
    }

    // MARK: Commands

    private mutating func reply(_ response: ControlResponse, to origin: CommandOrigin) {
        if origin.isControl {
            effects.append(.reply(response))
        } else if let e = response.error {
            log(.warning, "\(origin.signalName) ignored: \(e.message)")
        }
    }

    private mutating func run(_ command: SwarmCommand, from origin: CommandOrigin) {
        if case .control(let uid, let pid, let comm) = origin, command != .status {
            var m = ["peer_uid": "\(uid)", "peer_pid": "\(pid)"]
            if !comm.isEmpty { m["peer_comm"] = comm }
            log(.notice, "control: \(command.name)", m)
        }
        if mode.isStopping && command != .status {
            if case .stop = command, !origin.isControl {
                log(.notice, "second stop signal: stopping now")
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
            if config.autoscale.enabled && autoscaler?.suspended == false {
                // The operator's hand wins until they give it back.
                autoscaler?.suspended = true
                note = "; autoscaling suspended (swarmctl autoscale on resumes it)"
                log(.notice, "autoscaling suspended by a manual scale", ["nodes": "\(n)"])
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
                drain(targets)
                message = "draining \(targets.count) node(s)"
            case .resume:
                resume(targets)
                message = "resuming \(targets.count) node(s)"
            default:
                for id in targets { roll.enqueue(id, reason: .restart) }
                message = "restarting \(targets.count) node(s), one at a time"
            }
            reply(ControlResponse(ok: true, message: message), to: origin)
        case .reload(let next):
            reload(next, from: origin)
        case .autoscale(let on):
            guard config.autoscale.enabled, autoscaler != nil else {
                reply(.failure(.badArgument, "autoscaling is not configured: set [autoscale] enabled = true (swarmd.toml(5)) and reload"), to: origin)
                return
            }
            autoscaler?.suspended = !on
            if on { autoscaler?.sizeChanged(now: now - config.autoscale.cooldownUp) }  // may act at its next look
            log(.notice, on ? "autoscaling resumed" : "autoscaling turned off by the operator")
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
    private mutating func reload(_ next: SwarmConfig, from origin: CommandOrigin) {
        guard next != config else {
            log(.notice, "configuration reloaded: unchanged, nothing to do")
            reply(ControlResponse(ok: true, message: "configuration unchanged: nothing to do"), to: origin)
            return
        }
        let rollNodes = next.nodeView != config.nodeView
        let resize = next.supervisor.nodes != config.supervisor.nodes
        effects.append(.useConfig(next))
        config = next
        if resize { scale(to: next.supervisor.nodes, reason: "reload") }
        guard rollNodes else {
            log(.notice, "configuration reloaded: only swarmd's own settings changed; no node replaced", ["nodes": "\(wanted)"])
            reply(ControlResponse(ok: true, message: "reloaded: swarmd's own settings applied; no node replaced" + (resize ? "; scaling to \(wanted) nodes" : "")), to: origin)
            return
        }
        effects.append(.notify(.reloading))
        mode = .reloading
        for id in slots.keys.sorted() where slots[id]?.want != .gone { roll.enqueue(id, reason: .restart) }
        log(.notice, "configuration reloaded; replacing nodes one at a time", ["nodes": "\(wanted)"])
        reply(ControlResponse(ok: true, message: "reloading: replacing \(roll.queue.count) node(s) one at a time"), to: origin)
    }

    /// Asks the autoscaler what the size should be, from the reports the
    /// swarm already has, and scales to it.
    private mutating func autoscale() {
        guard config.autoscale.enabled else { return }
        if autoscaler == nil { autoscaler = Autoscaler() }
        let steady = mode == .running && roll.isIdle && slots.count == wanted && consuming
        autoscaler!.note(steady: steady, now: now)
        // Every report is an event: the observation is built only when the autoscaler will look.
        guard autoscaler!.due(now: now, settings: config.autoscale) else { return }
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
        guard let decision = autoscaler!.evaluate(observation, settings: config.autoscale, now: now) else { return }
        log(.notice, "autoscale \(wanted) -> \(decision.size): \(decision.reason)")
        scale(to: decision.size, reason: "autoscale")
    }

    /// Brings the swarm to `n` nodes: new slots are spawned, the highest slots stop.
    private mutating func scale(to n: Int, reason: String) {
        let previous = wanted
        // The leaving nodes hold too: two nodes leaving start two rebalances, and
        // the second one's stop commit would land in the first (BENCHMARKS.md, "Churn").
        if n != previous { holdOthers(except: []) }
        wanted = n
        if previous != n || slots.isEmpty {
            log(.notice, "swarm size \(previous) -> \(n)", ["reason": reason])
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
                log(.info, "node slot removed", ["slot": "\(id)", "reason": "scaled down"])
            } else {
                stop(id, reason: .scaleDown, signal: .term, grace: settings.killTimeout, membership: true)
            }
        }
        roll.dropSlots(from: n)
    }

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
    private mutating func holdOthers(except changing: Set<Int>, now immediately: Bool = false) {
        guard settings.nodeCommand.isEmpty, !mode.isStopping, !config.kafka.usesConsumerProtocol else { return }
        if gate != nil && !immediately {
            // The previous change still settles: the holds go out with this one, later.
            gate!.changing.formUnion(changing)
            gate!.holdsAsked = true
            return
        }
        for id in slots.keys.sorted() where !changing.contains(id) {
            guard let slot = slots[id], slot.state.phase == .running, let p = slot.process else { continue }
            effects.append(.tell(spawn: p.spawn, .hold))
            // Cooperative: no wait; its hold commit blocks until a rebalance in
            // progress ends (CommitBarrier says why).
            guard !config.kafka.cooperative else { continue }
            slots[id]?.state = slot.state.updatingProcess { $0.holdsSent = ($0.holdsSent ?? 0) + 1 }
            if barrier == nil { barrier = CommitBarrier(now: now) }
            barrier!.waiting.insert(p.spawn)
        }
    }

    /// Ends the others' holds once a rolled node's replacement consumes. On
    /// the mock, and on a real broker whenever the group rebalances, their
    /// own assignment has ended them already; on a real broker a replacement
    /// that rejoins under the same static member id within
    /// `session.timeout.ms` gets its partitions back without any rebalance,
    /// so no assignment would reach the held nodes, and each would sit idle
    /// for its 10 s hold limit, every rolling step.
    private mutating func releaseHolds(except rolled: Int) {
        guard settings.nodeCommand.isEmpty else { return }
        for id in slots.keys.sorted() where id != rolled {
            guard let slot = slots[id], slot.state.phase == .running, let p = slot.process else { continue }
            emit(.tell(spawn: p.spawn, .release))
        }
    }

    /// A change of the group: queued while the previous one settles
    /// (`SettleGate`), behind the barrier while one is open, now otherwise.
    private mutating func change(_ step: GroupChange) {
        if gate != nil {
            if gate!.isEmpty { log(.info, "group change waits for the previous one to settle", ["limit_s": "\(SettleGate.limit)"]) }
            gate!.queue(step)
        } else if barrier != nil {
            barrier!.hold(step)
        } else {
            emit(step)
            changedThisEvent = true
        }
    }

    /// Starts the settling after a change went out (built-in nodes only:
    /// they say where they stand with Kafka).
    private mutating func openGate() {
        guard settings.nodeCommand.isEmpty, !mode.isStopping else { return }
        gate = SettleGate(now: now)
        guard !config.kafka.cooperative && !config.kafka.usesConsumerProtocol else { return }
        for slot in slots.values {
            guard let p = slot.process, slot.state.phase == .running, slot.want == .up, let r = p.lastReport else { continue }
            gate!.assignmentsBefore[p.spawn] = r.rebalances
        }
    }

    /// Lets the queued changes out once the group settled (or at the limit):
    /// the holds first, then the changes, behind one barrier.
    private mutating func advanceGate() {
        guard let g = gate else { return }
        // Nodes that run: a slot whose spawn waits in the queue has nothing to say yet.
        let reports = slots.values.filter { $0.id < wanted && $0.want == .up && $0.process != nil && $0.state.phase != .stopping }
            .map { slot -> (at: Double, settled: Bool, reassigned: Bool) in
                let p = slot.process!
                let reassigned = g.assignmentsBefore[p.spawn].map { (p.lastReport?.rebalances ?? 0) > $0 } ?? true
                return (at: p.lastReportAt, settled: isSettled(slot), reassigned: reassigned)
            }
        let settled = g.settled(now: now, reports: reports)
        guard settled || isDue(.settleLimit) || mode.isStopping else { return }
        gate = nil
        guard !g.isEmpty, !mode.isStopping else { return }
        if !settled {
            log(.warning, "group changes go out before the group settled: it still rebalances after \(Autoscaler.seconds(SettleGate.limit)) (\(missing()))")
        } else {
            log(.info, "group settled: \(g.queued.count) queued change(s) go out together", ["waited_ms": "\(Int(saturating: ((now - g.since) * 1000).rounded()))"])
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

    private mutating func emit(_ step: GroupChange) {
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
    private mutating func advanceBarrier() {
        guard let b = barrier, b.waiting.isEmpty || isDue(.barrier) || mode.isStopping else { return }
        barrier = nil
        if !b.waiting.isEmpty && !mode.isStopping {
            let late = b.waiting.compactMap { bySpawn[$0] }.sorted().map(String.init).joined(separator: ",")
            log(.warning, "changing the group without every commit: slot(s) \(late) did not confirm theirs within \(Autoscaler.seconds(CommitBarrier.limit)); what they handle meanwhile may be delivered again")
        } else if !b.changes.isEmpty {
            log(.info, "commit barrier passed: the group changes now", ["waited_ms": "\(Int(saturating: ((now - b.openedAt) * 1000).rounded()))"])
        }
        var emitted = false
        for step in b.changes where stillApplies(step) {
            emit(step)
            emitted = true
        }
        if emitted { changedThisEvent = true }
    }

    private mutating func drain(_ targets: [Int]) {
        holdOthers(except: Set(targets))
        for id in targets {
            guard let slot = slots[id] else { continue }
            slots[id]?.want = .drained
            if slot.state.phase == .running || slot.state.phase == .starting {
                move(id, on: .drain, "drain requested")
            }
            if let p = slot.process { change(.tell(spawn: p.spawn, .drain)) }
        }
    }

    private mutating func resume(_ targets: [Int]) {
        holdOthers(except: Set(targets))
        for id in targets {
            guard let slot = slots[id] else { continue }
            if slot.want == .drained { slots[id]?.want = .up }
            if slot.state.phase == .draining {
                move(id, on: .resume, "resume requested")
            }
            if let p = slot.process { change(.tell(spawn: p.spawn, .resume)) }
        }
    }

    // MARK: Rolling restarts

    /// Restarts queued slots one at a time: the next goes only once the
    /// previous one's replacement reports healthy, so capacity never drops by more than one node.
    private mutating func advanceRoll() {
        guard !mode.isStopping else { roll.cancel(); return }
        if let current = roll.current {
            if let slot = slots[current], !isSettled(slot) {
                guard isDue(.rollReplacement) else { return }
                // A replacement that cannot join (a broker outage) must not hold the roll forever.
                log(.warning, "rolling on: the replacement did not consume within ready_timeout (\(settings.readyTimeout) s)",
                    meta(slot))
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
            log(.notice, "reload complete: every node runs the new configuration")
            effects.append(.notify(.ready))
        }
    }

    // MARK: Stopping the swarm

    private mutating func beginStop() {
        guard !mode.isStopping else { return }
        effects.append(.notify(.stopping))
        stopDeadline = now + settings.shutdownTimeout
        for slot in slots.values where slot.process == nil { slots[slot.id] = nil }
        if settings.nodeCommand.isEmpty {
            // Built-in nodes first pause and commit while the group is stable
            // (the broker refuses commits during the rebalance a leaving node starts).
            mode = .pausing
            pauseDeadline = now + min(settings.shutdownTimeout / 2, 10)
            for id in slots.keys.sorted() {
                if let slot = slots[id], slot.state.phase != .stopping, let p = slot.process {
                    effects.append(.tell(spawn: p.spawn, .pause))
                }
            }
            log(.info, "stopping: pausing every node so all commit before any leaves the group")
        } else {
            terminateAll()
        }
    }

    private mutating func terminateAll() {
        mode = .stopping
        pauseDeadline = nil
        let grace = max(0.1, (stopDeadline ?? now) - now)
        for id in slots.keys.sorted() { stop(id, reason: .shutdown, signal: .term, grace: grace) }
    }

    private mutating func beginQuit() {
        if !mode.isStopping { effects.append(.notify(.stopping)) }
        mode = .quitting
        pauseDeadline = nil
        for slot in slots.values where slot.process == nil { slots[slot.id] = nil }
        for id in slots.keys.sorted() { stop(id, reason: .quit, signal: .quit, grace: settings.quitTimeout) }
    }

    private mutating func advanceStop() {
        guard mode == .pausing else { return }
        let live = slots.values.filter { $0.process != nil }
        let allPaused = live.allSatisfy { $0.state.phase == .stopping || $0.process?.lastReport?.state == .drained }
        if allPaused || pauseDeadline == nil || isDue(.pause) {
            if !allPaused { log(.warning, "not every node paused in time; stopping them anyway") }
            terminateAll()
        }
    }

    // MARK: Readiness and status

    /// True when a slot's node consumes: it runs (or is drained on purpose)
    /// and its group assignment is settled. A node that says nothing of
    /// Kafka (a custom `node_command`) is settled once it reports running.
    func isSettled(_ slot: Slot) -> Bool {
        switch slot.state.phase {
        case .drained: return true
        case .running: return slot.process?.lastReport?.kafka.map(\.isSettled) ?? true
        default: return false
        }
    }

    /// READY=1 once every wanted node consumes — joined, assigned (nodes
    /// beyond the partition count `waiting`) — or once `ready_timeout`
    /// passed, with STATUS saying what is missing: a broker outage at boot
    /// must not make systemd kill a swarm that will consume once it is back.
    private mutating func checkReady() {
        guard !readySent, mode == .running else { return }
        if consuming {
            readySent = true
            log(.notice, "swarm ready: all \(wanted) nodes consume (joined the group and assigned)")
            effects.append(.notify(.ready))
        } else if isDue(.ready) {
            readySent = true
            readyByTimeout = true
            log(.warning, "swarm ready by ready_timeout (\(settings.readyTimeout) s), not consuming: \(missing())")
            effects.append(.notify(.ready))
        }
    }

    /// True while every wanted node consumes (what READY means, now): `/readyz`.
    var consuming: Bool {
        let wantedSlots = slots.values.filter { $0.id < wanted }
        return wantedSlots.count == wanted && wantedSlots.allSatisfy(isSettled)
    }

    /// What keeps the swarm from consuming, in a few words ("2 joining, 1 disconnected").
    func missing() -> String {
        var counts: [String: Int] = [:]
        for slot in slots.values where slot.id < wanted && !isSettled(slot) {
            let word = slot.process?.lastReport?.kafka?.rawValue ?? slot.state.phase.rawValue
            counts[word, default: 0] += 1
        }
        return counts.isEmpty ? "nothing" : counts.keys.sorted().map { "\(counts[$0]!) \($0)" }.joined(separator: ", ")
    }

}

extension CommandOrigin {
    var signalName: String {
        if case .signal(let name) = self { return name }
        return "swarmctl"
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}
