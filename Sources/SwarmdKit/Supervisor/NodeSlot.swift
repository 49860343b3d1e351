import Shared

/// One running node process: its pid and pidfd, the pipes it talks through,
/// and what it last said.
final class NodeProcess {
    let spawnId: Int
    let pid: Int32
    let pidfd: Int32
    /// Read end of the report pipe (the node's fd 3).
    var reportFd: Int32
    /// Write end of the control pipe (the node's fd 4).
    var controlFd: Int32
    let startedAt: Double
    var lastReportAt: Double
    var lastReport: NodeReport?
    var healthySince: Double?
    var reportLines = LineBuffer(limit: NodeReport.maxLineLength)
    /// True while its report pipe wakes the loop on every report (see `Supervisor+Reports.swift`).
    var reportsWatched = true
    var rss: Int64?
    var rate = 0.0
    var lastRateSample: (time: Double, handled: Int64)?
    /// Why the supervisor asked it to stop, if it did.
    var stopReason: StopReason?
    /// When to send KILL if it has not exited.
    var killAt: Double?
    var killed = false

    init(spawnId: Int, pid: Int32, pidfd: Int32, reportFd: Int32, controlFd: Int32, now: Double) {
        self.spawnId = spawnId
        self.pid = pid
        self.pidfd = pidfd
        self.reportFd = reportFd
        self.controlFd = controlFd
        self.startedAt = now
        self.lastReportAt = now
    }
}

/// A node slot: a stable id (0…N-1) that outlives the processes filling it,
/// with its state, restart history and backoff.
final class NodeSlot {
    let id: Int
    private(set) var state = NodeState.backoff
    var process: NodeProcess?
    /// Restarts of this slot since swarmd started.
    var restarts = 0
    /// Failures in a row without a healthy stretch of `restart_reset_after`.
    var quickFailures = 0
    var lastExit: String?
    /// When to spawn again while in `backoff`.
    var respawnAt: Double?
    /// The operator drained it; a replacement process is drained too.
    var drainRequested = false
    /// Totals of earlier processes of this slot, so counters never go backwards.
    var handledBefore: Int64 = 0
    var failedBefore: Int64 = 0

    init(id: Int) { self.id = id }

    /// Moves to a new state; the caller logs the transition with its reason.
    func move(to next: NodeState) {
        state = next
    }

    var handled: Int64 { handledBefore + (process?.lastReport?.handled ?? 0) }
    var failed: Int64 { failedBefore + (process?.lastReport?.failed ?? 0) }
}
