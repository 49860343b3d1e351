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

        var name: String {
            switch self {
            case .running: return "running"
            case .reloading: return "reloading"
            case .pausing, .stopping: return "stopping"
            case .quitting: return "quitting"
            }
        }

        var isStopping: Bool { self == .pausing || self == .stopping || self == .quitting }
    }

    /// One slot to restart in a rolling restart, and why.
    struct RollStep: Equatable, Codable {
        var slot: Int
        var reason: StopReason
    }

    private(set) var config: SwarmConfig
    /// swarmd's own pid, for the status.
    let pid: Int32
    private(set) var mode = Mode.running
    private(set) var slots: [Int: Slot] = [:]
    private(set) var wanted: Int
    let startedAt: Double
    private(set) var readySent = false
    /// Slots still to restart one at a time (rolling restart, reload, memory).
    private(set) var rollQueue: [RollStep] = []
    /// The slot being rolled now: the next waits until its replacement is healthy.
    private(set) var rollCurrent: Int?
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

    /// What an upgrade hands to the new swarmd: everything but the effects being built.
    private enum CodingKeys: String, CodingKey {
        case config, pid, mode, slots, wanted, startedAt, readySent, rollQueue, rollCurrent, stopDeadline, pauseDeadline
        case anyKilledWhileStopping, malformedReports, totalRestarts, bySpawn, now, upgrades
    }

    init(config: SwarmConfig, pid: Int32 = 0, now: Double) {
        self.config = config
        self.pid = pid
        self.wanted = config.supervisor.nodes
        self.startedAt = now
    }

    private var settings: SupervisorSettings { config.supervisor }

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
        advanceRoll()
        advanceStop()
        checkReady()
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
    private mutating func move(_ id: Int, on event: NodeState.Event, to state: NodeState, _ reason: String) -> Bool {
        guard var slot = slots[id] else { return false }
        let from = slot.state.phase
        guard let next = NodeState.next(from, on: event), next == state.phase else {
            log(.critical, "refused illegal node transition \(from.rawValue) -> \(state.phase.rawValue) on \(event)", meta(slot))
            return false
        }
        slot.state = state
        slots[id] = slot
        var m = meta(slot)
        m["from"] = from.rawValue
        m["to"] = next.rawValue
        m["reason"] = reason
        if from != next { log(.info, "node \(from.rawValue) -> \(next.rawValue)", m) }
        return true
    }

    // MARK: Spawning and exits

    private mutating func requestSpawn(_ id: Int) {
        slots[id]?.state = .backoff(respawnAt: nil)
        effects.append(.spawn(slot: id))
    }

    private mutating func spawned(_ id: Int, spawn: Int, pid: Int32) {
        guard let slot = slots[id] else { return }
        bySpawn[spawn] = id
        move(id, on: .spawned, to: .starting(NodeProcess(spawn: spawn, pid: pid, now: now)), "spawned pid \(pid)")
        if slot.want == .drained { effects.append(.tell(spawn: spawn, .drain)) }
    }

    private mutating func spawnFailed(_ id: Int, _ error: String) {
        guard var slot = slots[id] else { return }
        slot.quickFailures += 1
        slot.lastExit = error
        let delay = max(0.5, Backoff(cap: settings.restartBackoffMax).delay(afterFailures: slot.quickFailures))
        slot.state = .backoff(respawnAt: now + delay)
        slots[id] = slot
        log(.error, "cannot spawn node: \(error); retrying in \(delay) s", meta(slot))
    }

    private mutating func exited(_ spawn: Int, _ exit: ExitCause) {
        guard let id = bySpawn.removeValue(forKey: spawn), var slot = slots[id], let p = slot.process, p.spawn == spawn else { return }
        let order = slot.state.stopOrder
        var cause = exit.text
        if let order { cause += " after stop: \(order.reason.text)" }
        var m = meta(slot)
        m["uptime_s"] = "\(Int(now - p.startedAt))"
        log(order == nil ? .error : .info, "node exited: \(cause)", m)
        slot.handledBefore += p.lastReport?.handled ?? 0
        slot.failedBefore += p.lastReport?.failed ?? 0
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
        totalRestarts += 1
        slots[id] = slot
        if delay > 0 {
            let looping = slot.quickFailures >= settings.crashLoopAfter
            move(id, on: .exited, to: .backoff(respawnAt: now + delay),
                 "\(cause); restart in \(delay) s\(looping ? " (crash-looping: \(slot.quickFailures) quick failures)" : "")")
        } else {
            move(id, on: .exited, to: .backoff(respawnAt: now), "\(cause); restarting now")
            requestSpawn(id)
        }
    }

    /// Asks a node to stop with `signal`, and KILLs it after `grace` seconds.
    private mutating func stop(_ id: Int, reason: StopReason, signal: NodeSignal, grace: Double) {
        guard let slot = slots[id], let p = slot.process else { return }
        let previous = slot.state.stopOrder
        if previous != nil && signal != .quit { return }
        let deadline = now + grace
        let order = StopOrder(reason: reason, killAt: min(previous?.killAt ?? deadline, deadline), killed: previous?.killed ?? false)
        move(id, on: .stop, to: .stopping(p, order), reason.text)
        effects.append(.signal(spawn: p.spawn, signal))
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
            }
            p.rateSampleAt = now
            p.rateSampleHandled = report.handled
            p.lastReport = report
            p.lastReportAt = now
        }
        slots[id]?.state = updated
        let phase = slot.state.phase
        guard phase != .stopping else { return }
        if report.health == .unhealthy {
            log(.error, "node reports itself unhealthy: \(UnhealthyReason.describe(report.reason))\(report.detail.isEmpty ? "" : " (\(report.detail))")", meta(slot))
            stop(id, reason: .unhealthy(report.reason), signal: .term, grace: settings.killTimeout)
            return
        }
        let state = slots[id]!.state.updatingProcess { p in if p.healthySince == nil { p.healthySince = now } }
        slots[id]?.state = state
        switch (phase, report.state) {
        case (.starting, .drained), (.running, .drained), (.draining, .drained):
            move(id, on: .reportedDrained, to: state.with(phase: .drained)!, phase == .starting ? "first report: drained" : "reports drained")
        case (.starting, _):
            move(id, on: .reportedRunning, to: state.with(phase: .running)!, "first healthy report")
        case (.drained, .running) where slot.want != .drained:
            move(id, on: .reportedRunning, to: state.with(phase: .running)!, "resumed")
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
              !rollQueue.contains(where: { $0.slot == id }), rollCurrent != id else { return }
        let detail = "\(memory.largest); the limit is \(NodeMemory.text(limit))"
        log(.warning, "node over memory limit: \(detail); restarting it gracefully", meta(slot))
        rollQueue.append(RollStep(slot: id, reason: .overMemory(detail)))
    }

    /// True while the supervisor waits on this node's next report to move on
    /// (the shell reads such a node's pipe at once; the others in one sweep
    /// per report interval, see `Supervisor`).
    func awaitsReport(_ slot: Slot) -> Bool {
        switch slot.state.phase {
        case .starting, .draining: return true
        case .drained: return slot.want != .drained  // resumed: waiting for it to say it runs
        case .running: return mode == .pausing  // told to pause: waiting for it to say drained
        case .stopping, .backoff: return false
        }
    }

    // MARK: Deadlines

    /// The spawn ids of nodes whose report deadline passed: the shell reads
    /// their pipes before the tick, so that none is called hung on a stale report.
    func hangSuspects(now: Double) -> [Int] {
        slots.values.compactMap { s in
            guard let p = s.process, s.state.phase != .stopping, now - p.lastReportAt >= settings.reportTimeout else { return nil }
            return p.spawn
        }.sorted()
    }

    /// The earliest time the core has something to do, if any.
    func nextDeadline() -> Double? {
        var next: Double?
        func consider(_ t: Double?) {
            guard let t else { return }
            if next == nil || t < next! { next = t }
        }
        for slot in slots.values {
            switch slot.state {
            case .backoff(let at): consider(at)
            case .stopping(_, let order): if !order.killed { consider(order.killAt) }
            default: consider(slot.process.map { $0.lastReportAt + settings.reportTimeout })
            }
        }
        consider(pauseDeadline)
        return next
    }

    private mutating func checkDeadlines() {
        for id in slots.keys.sorted() {
            guard let slot = slots[id] else { continue }
            switch slot.state {
            case .stopping(let p, var order):
                guard !order.killed, now >= order.killAt else { continue }
                log(.warning, "node did not stop in time: KILL", meta(slot))
                order.killed = true
                slots[id]?.state = .stopping(p, order)
                if mode.isStopping { anyKilledWhileStopping = true }
                effects.append(.signal(spawn: p.spawn, .kill))
            case .backoff(let at?):
                if now >= at && !mode.isStopping { requestSpawn(id) }
            case .backoff(nil):
                continue
            default:
                guard let p = slot.process, now - p.lastReportAt >= settings.reportTimeout else { continue }
                log(.error, "node hung: no report for \(settings.reportTimeout) s", meta(slot))
                stop(id, reason: .hung, signal: .term, grace: settings.killTimeout)
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
        if case .control(let uid, let pid) = origin, command != .status {
            log(.notice, "control: \(command.name)", ["peer_uid": "\(uid)", "peer_pid": "\(pid)"])
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
            reply(ControlResponse(ok: true, message: "scaling to \(n) nodes"), to: origin)
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
                for id in targets where !rollQueue.contains(where: { $0.slot == id }) { rollQueue.append(RollStep(slot: id, reason: .restart)) }
                message = "restarting \(targets.count) node(s), one at a time"
            }
            reply(ControlResponse(ok: true, message: message), to: origin)
        case .reload(let next):
            effects.append(.notify(.reloading))
            effects.append(.useConfig(next))
            mode = .reloading
            config = next
            scale(to: next.supervisor.nodes, reason: "reload")
            for id in slots.keys.sorted() where !rollQueue.contains(where: { $0.slot == id }) {
                rollQueue.append(RollStep(slot: id, reason: .restart))
            }
            log(.notice, "configuration reloaded; replacing nodes one at a time", ["nodes": "\(wanted)"])
            reply(ControlResponse(ok: true, message: "reloading: replacing \(slots.count) node(s) one at a time"), to: origin)
        case .stop(let immediately):
            if immediately { beginQuit() } else { beginStop() }
            reply(ControlResponse(ok: true, message: immediately ? "stopping now" : "stopping gracefully"), to: origin)
        }
    }

    /// Brings the swarm to `n` nodes: new slots are spawned, the highest slots stop.
    private mutating func scale(to n: Int, reason: String) {
        let previous = wanted
        wanted = n
        if previous != n || slots.isEmpty {
            log(.notice, "swarm size \(previous) -> \(n)", ["reason": reason])
        }
        for id in 0..<n {
            if slots[id] == nil {
                slots[id] = Slot(id: id)
                requestSpawn(id)
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
                stop(id, reason: .scaleDown, signal: .term, grace: settings.killTimeout)
            }
        }
        rollQueue.removeAll { $0.slot >= n }
    }

    private mutating func drain(_ targets: [Int]) {
        for id in targets {
            guard let slot = slots[id] else { continue }
            slots[id]?.want = .drained
            if slot.state.phase == .running || slot.state.phase == .starting {
                move(id, on: .drain, to: slot.state.with(phase: .draining)!, "drain requested")
            }
            if let p = slot.process { effects.append(.tell(spawn: p.spawn, .drain)) }
        }
    }

    private mutating func resume(_ targets: [Int]) {
        for id in targets {
            guard let slot = slots[id] else { continue }
            if slot.want == .drained { slots[id]?.want = .up }
            if slot.state.phase == .draining {
                move(id, on: .resume, to: slot.state.with(phase: .running)!, "resume requested")
            }
            if let p = slot.process { effects.append(.tell(spawn: p.spawn, .resume)) }
        }
    }

    // MARK: Rolling restarts

    /// Restarts queued slots one at a time: the next goes only once the
    /// previous one's replacement reports healthy, so capacity never drops by more than one node.
    private mutating func advanceRoll() {
        guard !mode.isStopping else { rollQueue.removeAll(); rollCurrent = nil; return }
        if let current = rollCurrent {
            if let slot = slots[current], [.backoff, .starting, .stopping].contains(slot.state.phase) { return }
            rollCurrent = nil
        }
        while rollCurrent == nil, !rollQueue.isEmpty {
            let step = rollQueue.removeFirst()
            guard let slot = slots[step.slot], slot.process != nil, slot.state.phase != .stopping else { continue }
            rollCurrent = step.slot
            stop(step.slot, reason: step.reason, signal: .term, grace: settings.killTimeout)
        }
        if rollCurrent == nil, rollQueue.isEmpty, mode == .reloading {
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
        if allPaused || now >= (pauseDeadline ?? now) {
            if !allPaused { log(.warning, "not every node paused in time; stopping them anyway") }
            terminateAll()
        }
    }

    // MARK: Readiness and status

    private mutating func checkReady() {
        guard !readySent, mode == .running else { return }
        let initial = slots.values.filter { $0.id < wanted }
        guard initial.count == wanted, initial.allSatisfy({ $0.state.phase == .running || $0.state.phase == .drained }) else { return }
        readySent = true
        log(.notice, "swarm ready: all \(wanted) nodes report healthy")
        effects.append(.notify(.ready))
    }

    /// The status as `swarmctl status --json` shows it (memory is the shell's to read).
    func status(now: Double) -> SwarmStatus {
        var nodes = slots.keys.sorted().map { id -> NodeStatus in
            let slot = slots[id]!
            let p = slot.process
            var state = slot.state.phase.rawValue
            if slot.state.phase == .backoff && slot.quickFailures >= settings.crashLoopAfter { state = "crash-looping" }
            return NodeStatus(
                slot: slot.id, pid: p?.pid, state: state,
                uptimeS: p.map { (now - $0.startedAt).rounded(toPlaces: 1) } ?? 0,
                restarts: slot.restarts, lastExit: slot.lastExit, rssBytes: p?.memory?.rss,
                handled: slot.handled, failed: slot.failed, rate: (p?.rate ?? 0).rounded(toPlaces: 1),
                partitions: p?.lastReport?.partitions ?? 0,
                lag: p?.lastReport.flatMap { $0.lag >= 0 ? $0.lag : nil },
                partitionLag: p?.lastReport.flatMap { $0.partitionLag.isEmpty ? nil : PartitionLag.list($0.partitionLag) },
                reportAgeMs: p?.lastReport == nil ? nil : Int64((now - p!.lastReportAt) * 1000),
                health: p?.lastReport?.health.rawValue ?? (p == nil ? "down" : "unknown"))
        }
        for i in nodes.indices {
            guard let m = slots[nodes[i].slot]?.process?.memory, m.hasPSS else { continue }
            nodes[i].pssBytes = m.pss
            nodes[i].processes = m.processes.map { ProcessMemoryStatus(pid: $0.pid, name: $0.name, rssBytes: $0.rss, pssBytes: $0.pss) }
        }
        return SwarmStatus(
            pid: pid, state: mode.name, wanted: wanted,
            running: nodes.filter { $0.state == "running" || $0.state == "drained" || $0.state == "draining" }.count,
            healthy: nodes.filter { $0.health == "ok" }.count,
            uptimeS: (now - startedAt).rounded(toPlaces: 1), restarts: totalRestarts,
            handled: nodes.reduce(0) { $0 + $1.handled }, failed: nodes.reduce(0) { $0 + $1.failed },
            rate: nodes.reduce(0.0) { $0 + $1.rate }.rounded(toPlaces: 1),
            malformedReports: malformedReports, version: nil, upgrades: upgrades, nodes: nodes)
    }

    /// systemd's one-line STATUS.
    func statusLine() -> String {
        let running = slots.values.filter { $0.state.phase == .running || $0.state.phase == .drained }.count
        let rate = slots.values.reduce(0.0) { $0 + ($1.process?.rate ?? 0) }
        let word = mode == .running ? "" : "\(mode.name): "
        return "\(word)\(running)/\(wanted) nodes running, \(Int(rate.rounded())) msg/s, \(totalRestarts) restarts"
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
