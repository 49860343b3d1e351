#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared

/// swarmd's supervisor: one thread, one epoll loop. It owns the signalfd, one
/// pidfd and one report pipe per node, the timerfd and the control socket,
/// and nothing else ever waits, reaps or signals.
///
/// The node lifecycle lives in `Supervisor+Nodes.swift`, the operator
/// commands in `Supervisor+Commands.swift`.
public final class Supervisor {
    /// What the swarm as a whole is doing.
    enum Mode: Equatable {
        case running
        /// Re-read the configuration; rolling the nodes onto it.
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

    /// Settings given on the command line; they win over the file, also after a reload.
    public struct Overrides: Sendable {
        public var nodes: Int?
        public var nodeCommand: [String]?
        public init(nodes: Int? = nil, nodeCommand: [String]? = nil) {
            self.nodes = nodes
            self.nodeCommand = nodeCommand
        }
    }

    static let handledSignals: [Int32] = [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGCHLD]

    var config: SwarmConfig
    let configPath: String?
    let overrides: Overrides
    let socketPath: String
    var logger: Logger

    var loop: EventLoop
    var signalFd: Int32 = -1
    var control: ControlServer?
    var notifier = SystemdNotifier()
    var spawner: Spawner
    let environment: [String: String]
    var broker: EmbeddedBroker?

    var mode = Mode.running
    var slots: [Int: NodeSlot] = [:]
    var bySpawn: [Int: NodeSlot] = [:]
    var nextSpawnId = 1
    var wanted: Int
    let startedAt = monotonicNow()
    var readySent = false
    /// Slots still to restart one at a time (rolling restart, reload, memory), with why.
    var rollQueue: [(slot: Int, reason: StopReason)] = []
    /// The slot being rolled now: the next waits until its replacement is healthy.
    var rollCurrent: Int?
    var stopDeadline: Double?
    var pauseDeadline: Double?
    var nextWatchdog: Double?
    /// When to read the reports of nodes in a steady state (see `Supervisor+Reports.swift`).
    var nextSweep: Double?
    var anyKilledWhileStopping = false
    var malformedReports = 0
    var totalRestarts = 0

    /// Blocks the signals swarmd takes through its signalfd. Call first thing
    /// in main, before any thread exists, so that every thread inherits the mask.
    public static func blockSignals() {
        _ = handledSignals.withUnsafeBufferPointer { swarm_block_signals($0.baseAddress, Int32($0.count)) }
        swarm_ignore_sigpipe()
    }

    public init(config: SwarmConfig, configPath: String?, overrides: Overrides, socketPath: String, logger: Logger) throws {
        self.config = config
        self.configPath = configPath
        self.overrides = overrides
        self.socketPath = socketPath
        self.logger = logger
        self.environment = currentEnvironment()
        self.wanted = config.supervisor.nodes
        self.spawner = Spawner(config: config, environment: environment)
        self.loop = try EventLoop()
    }

    /// Applies the command-line overrides to a configuration read from a file.
    public static func apply(_ overrides: Overrides, to config: SwarmConfig) -> SwarmConfig {
        var c = config
        if let n = overrides.nodes { c.supervisor.nodes = n }
        if let cmd = overrides.nodeCommand { c.supervisor.nodeCommand = cmd }
        return c
    }

    /// Runs the swarm until it has stopped; returns swarmd's exit status.
    public func run() -> Int32 {
        do {
            try setUp()
        } catch let error as SwarmError {
            logger.critical("cannot start: \(error.message)")
            return error.code == "config" ? ExitStatus.config : ExitStatus.unavailable
        } catch {
            logger.critical("cannot start: \(error)")
            return ExitStatus.software
        }
        logger.info("swarmd started", metadata: ["pid": "\(getpid())", "nodes": "\(wanted)", "socket": "\(socketPath)"])
        scale(to: wanted, reason: "start")
        if let interval = notifier.watchdogInterval {
            nextWatchdog = monotonicNow() + interval
            logger.info("systemd watchdog enabled", metadata: ["ping_every_s": "\(interval)"])
        }
        while !finished {
            turn()
        }
        control?.shutdown()
        broker?.stop()
        let status = anyKilledWhileStopping ? ExitStatus.failure : ExitStatus.ok
        logger.info("swarmd stopped", metadata: ["exit_status": "\(status)"])
        return status
    }

    private func setUp() throws {
        raiseFileLimit()
        signalFd = Self.handledSignals.withUnsafeBufferPointer { swarm_signalfd($0.baseAddress, Int32($0.count)) }
        guard signalFd >= 0 else { throw SwarmError("signalfd", "signalfd: \(errnoText())") }
        try loop.add(signalFd, .signal)

        let server = try ControlServer(path: socketPath, mode: config.supervisor.socketMode,
                                       group: config.supervisor.socketGroup,
                                       idleTimeout: config.supervisor.controlTimeout, logger: logger)
        try loop.add(server.listenFd, .listener)
        control = server

        if config.usesEmbeddedBroker && config.supervisor.nodeCommand.isEmpty {
            let b = try EmbeddedBroker(config: config, logger: logger)
            broker = b
            config.kafka.properties["bootstrap.servers"] = b.bootstrapServers
            spawner = Spawner(config: config, environment: environment)
        }
    }

    /// Each node costs swarmd three fds (pidfd, report pipe, control pipe), so
    /// the usual soft limit of 1024 would stop a swarm at about 300 nodes:
    /// raise it to the hard limit, as servers such as nginx do.
    private func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let wanted = min(limit.rlim_max, 1 << 20)
        let previous = limit.rlim_cur
        limit.rlim_cur = wanted
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.debug("open file limit raised", metadata: ["from": "\(previous)", "to": "\(wanted)"])
        }
    }

    /// True once the swarm was told to stop and every node is gone.
    var finished: Bool {
        mode.isStopping && slots.values.allSatisfy { $0.process == nil }
    }

    /// One turn of the loop: wait, dispatch, then act on deadlines and re-arm the timer.
    func turn() {
        for (token, events) in loop.wait() {
            switch token {
            case .signal: readSignals()
            case .timer: loop.drainTimer()
            case .listener: control?.acceptAll(loop: loop)
            case .pidfd(let spawn): processExited(spawnId: spawn)
            case .report(let spawn): readReports(spawnId: spawn)
            case .connection(let id):
                control?.service(id: id, events: events, loop: loop) { [unowned self] request, peer in
                    self.handle(request, from: peer)
                }
            }
        }
        let now = monotonicNow()
        checkDeadlines(now: now)
        advanceRoll()
        advanceStop(now: now)
        checkReady()
        updateStatusLine()
        updateReportWatches(now: now)
        loop.arm(at: nextDeadline())
    }

    // MARK: Signals

    private func readSignals() {
        while true {
            var sender: Int32 = 0
            let sig = swarm_signalfd_read(signalFd, &sender)
            guard sig > 0 else { return }
            handleSignal(Int32(sig), from: sender)
        }
    }

    func handleSignal(_ sig: Int32, from sender: Int32) {
        let meta: Logger.Metadata = ["signal": "\(signalName(sig))", "from_pid": "\(sender)"]
        switch sig {
        case SIGCHLD:
            return  // pidfds tell us which node exited; CHLD only wakes the loop.
        case SIGTERM, SIGINT:
            if mode.isStopping {
                logger.notice("second stop signal: stopping now", metadata: meta)
                beginQuit()
            } else {
                logger.notice("graceful stop requested", metadata: meta)
                beginStop()
            }
        case SIGQUIT:
            logger.notice("immediate stop requested", metadata: meta)
            beginQuit()
        case SIGTTIN:
            logger.notice("one more node requested", metadata: meta)
            _ = scaleRequest(to: wanted + 1, reason: "TTIN")
        case SIGTTOU:
            logger.notice("one node fewer requested", metadata: meta)
            if wanted <= 1 {
                logger.warning("TTOU ignored: the swarm keeps at least one node (use swarmctl stop to stop it)")
            } else {
                _ = scaleRequest(to: wanted - 1, reason: "TTOU")
            }
        case SIGUSR1:
            logStatusReport()
        case SIGHUP:
            logger.notice("reload requested", metadata: meta)
            _ = reload()
        default:
            logger.warning("signal ignored: swarmd does nothing on it", metadata: meta)
        }
    }

    // MARK: Deadlines

    func nextDeadline() -> Double? {
        var next: Double?
        func consider(_ t: Double?) {
            guard let t else { return }
            if next == nil || t < next! { next = t }
        }
        for slot in slots.values {
            if let p = slot.process {
                consider(p.killAt)
                if slot.state != .stopping { consider(p.lastReportAt + config.supervisor.reportTimeout) }
            } else {
                consider(slot.respawnAt)
            }
        }
        consider(stopDeadline)
        consider(pauseDeadline)
        consider(nextWatchdog)
        consider(nextSweep)
        consider(control?.nextDeadline)
        return next
    }

    func checkDeadlines(now: Double) {
        if let w = nextWatchdog, now >= w, let interval = notifier.watchdogInterval {
            notifier.watchdog()
            nextWatchdog = now + interval
        }
        control?.expire(now: now, loop: loop)
        if let s = nextSweep, now >= s { sweepReports() }
        for slot in slots.values.sorted(by: { $0.id < $1.id }) {
            if let p = slot.process {
                if let k = p.killAt, now >= k, !p.killed {
                    logger.warning("node did not stop in time: KILL", metadata: meta(slot))
                    p.killed = true
                    p.killAt = nil
                    if mode.isStopping { anyKilledWhileStopping = true }
                    _ = swarm_pidfd_send_signal(p.pidfd, SIGKILL)
                } else if slot.state != .stopping, now - p.lastReportAt >= config.supervisor.reportTimeout,
                          !readsFreshReport(slot, process: p, now: now) {
                    logger.error("node hung: no report for \(config.supervisor.reportTimeout) s", metadata: meta(slot))
                    stop(slot, reason: .hung, signal: SIGTERM, grace: config.supervisor.killTimeout)
                }
            } else if let at = slot.respawnAt, now >= at, !mode.isStopping {
                spawn(slot)
            }
        }
    }

    func meta(_ slot: NodeSlot) -> Logger.Metadata {
        var m: Logger.Metadata = ["slot": "\(slot.id)"]
        if let p = slot.process { m["pid"] = "\(p.pid)" }
        return m
    }
}
