import Shared

/// One running node process, as the supervisor knows it.
struct NodeProcess: Equatable, Codable {
    /// swarmd's own id for this process: events name the spawn, never the
    /// slot, so an event from a replaced process cannot be taken for its successor's.
    let spawn: Int
    let pid: Int32
    let startedAt: Double
    var lastReportAt: Double
    var lastReport: NodeReport?
    var healthySince: Double?
    /// Messages per second, smoothed over reports.
    var rate = 0.0
    var rateSampleAt: Double?
    var rateSampleHandled: Int64 = 0
    /// The share of wall time its handler spends on batches (0…1), smoothed
    /// like `rate`: how much of a node the work takes, for scaling down.
    var busy = 0.0
    var busySampleMs: Int64 = 0
    /// What its process tree uses, when the shell read it (only with a memory limit).
    var memory: NodeMemory?
    /// Holds sent to it: it has committed for all of them once its report's
    /// `holds` reaches this (see `CommitBarrier`).
    var holdsSent: Int64 = 0

    init(spawn: Int, pid: Int32, now: Double) {
        self.spawn = spawn
        self.pid = pid
        self.startedAt = now
        self.lastReportAt = now
    }

    /// Reads what any build of handover format 2 wrote: a process that was
    /// never held was written without `holdsSent`.
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        spawn = try c.decode(Int.self, forKey: .spawn)
        pid = try c.decode(Int32.self, forKey: .pid)
        startedAt = try c.decode(Double.self, forKey: .startedAt)
        lastReportAt = try c.decode(Double.self, forKey: .lastReportAt)
        lastReport = try c.decodeIfPresent(NodeReport.self, forKey: .lastReport)
        healthySince = try c.decodeIfPresent(Double.self, forKey: .healthySince)
        rate = try c.decode(Double.self, forKey: .rate)
        rateSampleAt = try c.decodeIfPresent(Double.self, forKey: .rateSampleAt)
        rateSampleHandled = try c.decode(Int64.self, forKey: .rateSampleHandled)
        busy = try c.decode(Double.self, forKey: .busy)
        busySampleMs = try c.decode(Int64.self, forKey: .busySampleMs)
        memory = try c.decodeIfPresent(NodeMemory.self, forKey: .memory)
        holdsSent = try c.decodeIfPresent(Int64.self, forKey: .holdsSent) ?? 0
    }
}

/// Why the supervisor stops a node: shown in logs and in `last_exit`.
enum StopReason: Equatable, Codable {
    case hung
    case unhealthy(Int)
    /// Which process grew, and how much the tree uses.
    case overMemory(String)
    case restart
    case scaleDown
    case shutdown
    case quit

    var text: String {
        switch self {
        case .hung: return "hung (no report)"
        case .unhealthy(let r): return "unhealthy: \(UnhealthyReason.describe(r))"
        case .overMemory(let detail): return "over memory limit: \(detail)"
        case .restart: return "restart requested"
        case .scaleDown: return "scaled down"
        case .shutdown: return "swarm stopping"
        case .quit: return "swarm stopping now"
        }
    }

    /// Failures count toward backoff; operator-requested stops do not.
    /// The `reason` label of `swarm_node_restarts_total`.
    var metricName: String {
        switch self {
        case .hung: return "hung"
        case .unhealthy: return "unhealthy"
        case .overMemory: return "memory"
        case .restart: return "requested"
        case .scaleDown, .shutdown, .quit: return "stopped"
        }
    }

    var isFailure: Bool {
        switch self {
        case .hung, .unhealthy, .overMemory: return true
        default: return false
        }
    }
}

/// The signals the supervisor sends nodes (the shell maps them to numbers).
enum NodeSignal: Equatable, Codable {
    case term, quit, kill
}

/// A stop the supervisor ordered: why, and when KILL follows.
struct StopOrder: Equatable, Codable {
    var reason: StopReason
    var killAt: Double
    var killed = false
}

/// Where one node slot is in its life. States that have a process carry it;
/// a backoff knows when it respawns.
///
///     backoff ──spawned──▶ starting ──healthy report──▶ running ◀──resume── drained
///        ▲                    │                           │   └──drain──▶ draining ──▶ drained
///        │                    └──── hung / unhealthy / over memory / restart / scale down ──▶ stopping
///        └─────────────────── exited (crash, or stopped to be replaced) ◀─────────────────────┘
///
/// Every legal move is in `next(on:)`, beside this diagram; the core
/// refuses (and logs) any other. A slot that is not wanted any more (scaled
/// down, swarm stopping) is removed at its exit instead of going to backoff.
enum NodeState: Equatable, Codable {
    /// No process. `respawnAt` nil: a spawn was asked of the shell just now.
    case backoff(respawnAt: Double?)
    /// Spawned; waiting for the first healthy report.
    case starting(NodeProcess)
    /// Reporting healthy.
    case running(NodeProcess)
    /// Told to drain; waiting for it to report `state=drained`.
    case draining(NodeProcess)
    /// Idle: not fetching, everything handled committed.
    case drained(NodeProcess)
    /// Told to stop (TERM or QUIT); KILL follows at `order.killAt`.
    case stopping(NodeProcess, StopOrder)

    enum Phase: String, Equatable {
        case backoff, starting, running, draining, drained, stopping
    }

    /// What can happen to a slot, with what its next state needs.
    enum Event: Equatable {
        /// The shell started its process.
        case spawned(NodeProcess)
        case reportedRunning, reportedDrained, drain, resume
        /// Told to stop, with the order that stands now (told again while
        /// stopping: TERM, then QUIT, keeps the earlier KILL deadline).
        case stop(StopOrder)
        /// The KILL at the stop order's deadline went out.
        case killed
        /// Its process ended; a new one is due at `respawnAt`.
        case exited(respawnAt: Double)
        /// A spawn was asked of the shell (the backoff ended, or a new slot).
        case spawnAsked
        /// The shell could not start the process: tried again at `retryAt`.
        case spawnFailed(retryAt: Double)

        /// As logs name it (`event=`).
        var name: String {
            switch self {
            case .spawned: return "spawned"
            case .reportedRunning: return "reportedRunning"
            case .reportedDrained: return "reportedDrained"
            case .drain: return "drain"
            case .resume: return "resume"
            case .stop: return "stop"
            case .killed: return "killed"
            case .exited: return "exited"
            case .spawnAsked: return "spawnAsked"
            case .spawnFailed: return "spawnFailed"
            }
        }
    }

    /// The transition table, beside the diagram: the state a slot moves to
    /// on an event, or nil when the event is not a move from this state.
    /// The next state is decided here, from this state and the event's
    /// data; nothing else sets a slot's state (`updatingProcess` changes
    /// only what its process carries, never the phase).
    func next(on event: Event) -> NodeState? {
        switch (self, event) {
        case (.backoff, .spawned(let p)): return .starting(p)
        case (.backoff, .spawnAsked): return .backoff(respawnAt: nil)
        case (.backoff, .spawnFailed(let at)): return .backoff(respawnAt: at)
        case (.starting(let p), .reportedRunning), (.drained(let p), .reportedRunning), (.draining(let p), .resume): return .running(p)
        case (.starting(let p), .drain), (.running(let p), .drain): return .draining(p)
        case (.starting(let p), .reportedDrained), (.running(let p), .reportedDrained), (.draining(let p), .reportedDrained): return .drained(p)
        case (.starting(let p), .stop(let o)), (.running(let p), .stop(let o)), (.draining(let p), .stop(let o)), (.drained(let p), .stop(let o)),
             (.stopping(let p, _), .stop(let o)):
            return .stopping(p, o)
        case (.stopping(let p, var o), .killed):
            o.killed = true
            return .stopping(p, o)
        case (.starting, .exited(let at)), (.running, .exited(let at)), (.draining, .exited(let at)), (.drained, .exited(let at)),
             (.stopping, .exited(let at)):
            return .backoff(respawnAt: at)
        default: return nil
        }
    }

    var phase: Phase {
        switch self {
        case .backoff: return .backoff
        case .starting: return .starting
        case .running: return .running
        case .draining: return .draining
        case .drained: return .drained
        case .stopping: return .stopping
        }
    }

    var process: NodeProcess? {
        switch self {
        case .backoff: return nil
        case .starting(let p), .running(let p), .draining(let p), .drained(let p), .stopping(let p, _): return p
        }
    }

    var stopOrder: StopOrder? {
        if case .stopping(_, let order) = self { return order }
        return nil
    }

    /// The same phase with the process changed by `body`.
    func updatingProcess(_ body: (inout NodeProcess) -> Void) -> NodeState {
        switch self {
        case .backoff: return self
        case .starting(var p): body(&p); return .starting(p)
        case .running(var p): body(&p); return .running(p)
        case .draining(var p): body(&p); return .draining(p)
        case .drained(var p): body(&p); return .drained(p)
        case .stopping(var p, let o): body(&p); return .stopping(p, o)
        }
    }
}

/// A node slot: a stable id (0…N-1) that outlives the processes filling it.
/// What the slot *is* (`state`) is kept apart from what is *wanted* of it
/// (`want`), as runit's runsv keeps `state` and `want`.
struct Slot: Equatable, Codable {
    enum Want: Equatable, Codable {
        /// Running and consuming.
        case up
        /// Drained by the operator: a replacement process is drained too.
        case drained
        /// Scaled away: removed when its process exits.
        case gone
    }

    let id: Int
    var state: NodeState
    var want = Want.up
    /// Restarts of this slot since swarmd started.
    var restarts = 0
    /// Failures in a row without a healthy stretch of `restart_reset_after`.
    var quickFailures = 0
    /// Said crash-looping in the log (once), until a healthy stretch says it recovered.
    var crashLooping = false
    var lastExit: String?
    /// Totals of earlier processes of this slot, so counters never go backwards.
    var handledBefore: Int64 = 0
    var failedBefore: Int64 = 0
    /// The same for the counters metrics show (retried, dead-lettered, rebalances).
    var countersBefore: [String: Int64] = [:]
    /// Restarts by why (`crashed`, `hung`, `unhealthy`, `memory`, `requested`), for metrics.
    var restartReasons: [String: Int] = [:]

    init(id: Int) {
        self.id = id
        self.state = .backoff(respawnAt: nil)
    }

    /// Reads what any build of handover format 2 wrote: `crashLooping`,
    /// `countersBefore` and `restartReasons` were written only when set.
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int.self, forKey: .id)
        state = try c.decode(NodeState.self, forKey: .state)
        want = try c.decode(Want.self, forKey: .want)
        restarts = try c.decode(Int.self, forKey: .restarts)
        quickFailures = try c.decode(Int.self, forKey: .quickFailures)
        crashLooping = try c.decodeIfPresent(Bool.self, forKey: .crashLooping) ?? false
        lastExit = try c.decodeIfPresent(String.self, forKey: .lastExit)
        handledBefore = try c.decode(Int64.self, forKey: .handledBefore)
        failedBefore = try c.decode(Int64.self, forKey: .failedBefore)
        countersBefore = try c.decodeIfPresent([String: Int64].self, forKey: .countersBefore) ?? [:]
        restartReasons = try c.decodeIfPresent([String: Int].self, forKey: .restartReasons) ?? [:]
    }

    var process: NodeProcess? { state.process }
    var handled: Int64 { handledBefore.addingSaturating(process?.lastReport?.handled ?? 0) }
    var failed: Int64 { failedBefore.addingSaturating(process?.lastReport?.failed ?? 0) }

    /// The handler's batch times over every process this slot had: counts per bucket and the sum.
    var batchTimes: (buckets: [Int64], sumMs: Int64) {
        let current = process?.lastReport
        let buckets = (0...NodeReport.batchBucketsMs.count).map { i in
            (countersBefore["batch_b\(i)"] ?? 0).addingSaturating(current?.batchBuckets.indices.contains(i) == true ? current!.batchBuckets[i] : 0)
        }
        return (buckets, (countersBefore["batch_sum_ms"] ?? 0).addingSaturating(current?.batchSumMs ?? 0))
    }

    /// A counter over every process this slot had.
    func total(_ counter: NodeReport.Counter) -> Int64 {
        (countersBefore[counter.rawValue] ?? 0).addingSaturating(process?.lastReport?[counter] ?? 0)
    }
}

/// How a node process ended, as waitid(2) said.
enum ExitCause: Equatable {
    case exited(Int32)
    case signaled(String, coreDumped: Bool)
    case other(code: Int32, status: Int32)
    /// Its cgroup's `memory.events` counted an OOM kill (cgroup v2 nodes only).
    case oomKilled

    var text: String {
        switch self {
        case .exited(let s): return "exited with status \(s)"
        case .signaled(let name, let core): return "killed by signal \(name)\(core ? " (core dumped)" : "")"
        case .other(let c, let s): return "ended (code \(c), status \(s))"
        case .oomKilled: return "oom-killed (its cgroup reached memory_max)"
        }
    }
}

extension NodeStatusState {
    /// The phase as status names it (`crash-looping` is decided from the slot's failures, not here).
    init(_ phase: NodeState.Phase) {
        switch phase {
        case .backoff: self = .backoff
        case .starting: self = .starting
        case .running: self = .running
        case .draining: self = .draining
        case .drained: self = .drained
        case .stopping: self = .stopping
        }
    }
}
