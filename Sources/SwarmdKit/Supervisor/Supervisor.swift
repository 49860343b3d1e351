#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared
import SwarmKafka

/// swarmd's I/O shell around the pure core (`Swarm`): one thread, one epoll
/// loop. It turns fds into events (a signalfd, one pidfd and one report pipe
/// per node, a timerfd, the control socket) and the core's effects into
/// system calls (posix_spawn, pidfd signals, pipe writes, sd_notify, socket
/// replies). Nothing else ever waits, reaps or signals; nothing here decides.
///
/// Reports: every node reports every `report_interval`, but reading each
/// report the moment it arrives would wake swarmd once per node per interval.
/// The pipe of a node in a steady state stays in epoll without `EPOLLIN`, so
/// it wakes the loop only when it hangs up, and one sweep per interval reads
/// every such pipe at once: an idle swarm costs one wake-up per interval,
/// however many nodes it has. A node the core waits on (`awaitsReport`) is
/// read the moment it writes; anything that shows or judges reports (status,
/// USR1, the hang deadline) sweeps first.
///
/// This file holds the loop and the order of one turn; the rest of the
/// shell is in files of its own: `Supervisor+SetUp`, `Supervisor+Nodes`
/// (spawn, reap, reports),
/// `Supervisor+Control` (the status service: control requests, status,
/// `/metrics`, HTTP), `Supervisor+Signals` and `Supervisor+Upgrade`. What it
/// decides without I/O lives in the core (`Swarm`) or in `ControlPolicy`.
public final class Supervisor {
    /// Settings given on the command line; they win over the file, also after a reload.
    public struct Overrides: Sendable {
        public var nodes: Int?
        public var nodeCommand: [String]?
        public init(nodes: Int? = nil, nodeCommand: [String]? = nil) {
            self.nodes = nodes
            self.nodeCommand = nodeCommand
        }
    }

    /// The fds of one live node process.
    final class NodeFds {
        let pid: Int32
        let pidfd: Int32
        var reportFd: Int32
        let controlFd: Int32
        var reportLines = LineBuffer(limit: NodeReport.maxLineLength)
        /// True while its report pipe wakes the loop on every report.
        var watched = true
        init(pid: Int32, pidfd: Int32, reportFd: Int32, controlFd: Int32) {
            self.pid = pid
            self.pidfd = pidfd
            self.reportFd = reportFd
            self.controlFd = controlFd
        }
    }

    /// PWR is taken only to be logged and ignored (its default would end swarmd).
    static let handledSignals: [Int32] = [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGCHLD, SIGPWR]

    var swarm: Swarm
    let configPath: String?
    let overrides: Overrides
    let socketPath: String
    let logger: Logger
    var loop: EventLoop
    var signalFd: Int32 = -1
    var control: ControlServer?
    /// The read-only HTTP listener (`[http] listen`), and what its page charts.
    var http: HTTPServer?
    var history = StatusHistory()
    /// The cluster view's link to the status topic (`[cluster]`), or nil.
    var cluster: ClusterLink?
    /// The lag of partitions no node reports, from the broker (built-in nodes only).
    var groupLag: GroupLag?
    var lastTurnAt = monotonicNow()
    var notifier = SystemdNotifier()
    var spawner: Spawner
    let environment: [String: String]
    var broker: EmbeddedBroker?
    /// One cgroup v2 child per node, where swarmd was delegated a subtree.
    var cgroups: NodeCgroups?
    var nodes: [Int: NodeFds] = [:]
    var nextSpawnId = 1
    private var nextWatchdog: Double?
    var nextSweep: Double?
    /// Where the reply to the command being handled goes.
    var replyTo: ((ControlResponse) -> Void)?
    /// The binary swarmd was started from: what `swarmctl upgrade` re-executes by default.
    let executable: String
    let version = SwarmVersion.describe()
    /// An upgrade that passed its check, done at the end of the turn (after its reply went out).
    var pendingUpgrade: String?
    /// What the swarmd this one replaced handed over, until it is adopted.
    var handover: Handover?
    /// Trees read for a status, kept for one report interval: a status shows
    /// reports of that age anyway, and re-reading /proc for every request
    /// costs per node (BENCHMARKS.md, "Figures behind the code").
    var statusMemory: (at: Double, byPid: [Int32: NodeMemory]) = (-.infinity, [:])

    /// Blocks the signals swarmd takes through its signalfd. Call first thing
    /// in main, before any thread exists, so that every thread inherits the mask.
    public static func blockSignals() {
        _ = handledSignals.withUnsafeBufferPointer { swarm_block_signals($0.baseAddress, Int32($0.count)) }
        swarm_ignore_sigpipe()
    }

    public init(config: SwarmConfig, configPath: String?, overrides: Overrides, socketPath: String, logger: Logger) throws {
        self.configPath = configPath.map(InstallPaths.absolute)
        self.overrides = overrides
        self.socketPath = socketPath
        self.logger = logger
        self.environment = currentEnvironment()
        self.loop = try EventLoop()
        self.spawner = Spawner(config: config, environment: environment)
        self.swarm = Swarm(config: config, pid: getpid(), now: monotonicNow())
        self.executable = Self.ownExecutable()
    }

    /// The swarmd that an upgrade started: it adopts what the previous one handed over.
    public init(handoverFd: Int32, logger: Logger) throws {
        let h = try Handover.read(fd: handoverFd)
        self.configPath = h.configPath
        self.overrides = Overrides(nodes: h.overridesNodes, nodeCommand: h.overridesCommand)
        self.socketPath = h.socketPath
        self.logger = logger
        self.environment = currentEnvironment()
        self.loop = try EventLoop()
        StderrLogHandler.format = h.swarm.config.supervisor.logFormat
        self.spawner = Spawner(config: h.swarm.config, environment: environment)
        self.swarm = h.swarm
        self.nextSpawnId = h.nextSpawnId
        self.executable = h.executable
        self.handover = h
    }

    /// The path of the running binary, read before a package upgrade replaces the file.
    private static func ownExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }

    /// librdkafka's version, for `swarmd --version`.
    public static var librdkafkaVersion: String { Librdkafka.version }

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
            return error.code.exitStatus
        } catch {
            logger.critical("cannot start: \(error)")
            return ExitStatus.software
        }
        if let h = handover {
            handover = nil
            logger.notice("swarmd upgraded in place: every node adopted", metadata: [
                "pid": "\(getpid())", "nodes": "\(nodes.count)", "from": "\(h.previousVersion)", "to": "\(version)"])
            if swarm.readySent { notifier.ready() }
        } else {
            logger.info("swarmd started", metadata: ["pid": "\(getpid())", "nodes": "\(swarm.wanted)", "socket": "\(socketPath)", "version": "\(version)"])
            if let auto = swarm.config.supervisor.nodesAuto {
                logger.notice("nodes = \"auto\": \(swarm.wanted)", metadata: ["derived_from": "\(auto)"])
            }
            feed(.start)
        }
        if let interval = notifier.watchdogInterval {
            nextWatchdog = monotonicNow() + interval
            logger.info("systemd watchdog enabled", metadata: ["ping_every_s": "\(interval)"])
        }
        while !swarm.finished { turn() }
        // The last node's CHLD may come after the core finished: what it left
        // behind must not outlive swarmd either.
        if nodes.isEmpty { reapStrangers() }
        cluster?.stop(tombstone: true)
        groupLag?.stop()
        control?.shutdown()
        broker?.stop()
        let status = swarm.anyKilledWhileStopping ? ExitStatus.failure : ExitStatus.ok
        logger.info("swarmd stopped", metadata: ["exit_status": "\(status)"])
        return status
    }

    /// One turn of the loop, always in this order:
    /// 1. wait; each ready fd becomes events for the core (signals, a
    ///    node's exit, reports, control requests) or an HTTP answer;
    /// 2. the watchdog ping if due; idle control and HTTP connections expire;
    /// 3. the status history, the report sweep if due, the cluster record;
    /// 4. the pipes of nodes whose report deadline passed are read, so that
    ///    none is called hung on a report still in its pipe; then one `.tick`
    ///    fires the core's due deadlines;
    /// 5. STATUS= for systemd; report pipes re-watched (`awaitsReport`);
    /// 6. a pending upgrade execs here, after a whole turn;
    /// 7. the one timer is armed for the earliest deadline: the core's
    ///    `nextDeadline()` and the shell's own (watchdog, sweep, connections).
    func turn() {
        for (token, events) in loop.wait() {
            switch token {
            case .signal: readSignals()
            case .timer: loop.drainTimer()
            case .listener: control?.acceptAll(loop: loop)
            case .pidfd(let spawn): reap(spawn)
            case .report(let spawn): readReports(spawn)
            case .connection(let id):
                control?.service(id: id, events: events, loop: loop) { [unowned self] request, peer in
                    self.answer(request, from: peer)
                }
            case .httpListener: http?.acceptAll(loop: loop)
            case .httpConnection(let id):
                http?.service(id: id, events: events, loop: loop) { [unowned self] request in self.route(request) }
            }
        }
        let now = monotonicNow()
        lastTurnAt = now
        if let w = nextWatchdog, now >= w, let interval = notifier.watchdogInterval {
            notifier.watchdog()
            nextWatchdog = now + interval
        }
        control?.expire(now: now, loop: loop)
        http?.expire(now: now, loop: loop)
        if http != nil && now - history.lastAt >= StatusHistory.interval { history.record(swarm.status(now: now), now: now) }
        if let s = nextSweep, now >= s { sweepReports() }
        cluster?.tick(now: now) { freshStatus() }
        for spawn in swarm.hangSuspects(now: now) { readReports(spawn) }
        feed(.tick)
        if notifier.isActive { notifier.status(swarm.statusLine()) }  // not worth a string for nobody, every turn
        updateReportWatches(now: monotonicNow())
        if let binary = pendingUpgrade { upgrade(to: binary) }
        loop.arm(at: [swarm.nextDeadline(), nextWatchdog, nextSweep, control?.nextDeadline, http?.nextDeadline, cluster?.nextDeadline].compactMap { $0 }.min())
    }

    // MARK: Events in, effects out

    /// Hands one event to the core and carries out what it decides, in
    /// `SwarmDriver`'s order.
    func feed(_ event: SwarmEvent) {
        SwarmDriver.feed(event, handle: { swarm.handle($0, now: monotonicNow()) }, carryOut: carryOut)
    }

    /// One effect as system calls; a spawn is answered with its outcome.
    func carryOut(_ effect: SwarmEffect) -> [SwarmEvent] {
        switch effect {
        case .spawn(let slot):
            return [spawn(slot)]
        case .signal(let spawn, let signal):
            guard let fds = nodes[spawn] else { return [] }
            let number = signal == .term ? SIGTERM : signal == .quit ? SIGQUIT : SIGKILL
            // A node is its whole tree: a KILLed node's handler dies with it (found before the
            // node goes, while it is still the handler's parent).
            let below = signal == .kill ? ProcessTree.descendants(of: fds.pid, in: ProcessTree.table()) : []
            if swarm_pidfd_send_signal(fds.pidfd, number) != 0 && errno != ESRCH {
                logger.error("cannot signal node: \(errnoText())", metadata: ["spawn": "\(spawn)"])
            }
            for pid in below { kill(pid, SIGKILL) }
        case .tell(let spawn, let command):
            // Never blocks: a node that does not read its commands cannot stall the supervisor.
            guard let fds = nodes[spawn], fds.controlFd >= 0 else { return [] }
            if !writeAll(fds.controlFd, command.line) && errno != EPIPE {
                logger.warning("cannot send '\(command.rawValue)' to node: \(errnoText())", metadata: ["spawn": "\(spawn)"])
            }
        case .notify(let message):
            switch message {
            case .ready: notifier.ready()
            case .reloading: notifier.reloading()
            case .stopping: notifier.stopping()
            }
        case .reply(var response):
            if let status = response.status { response.status = enriched(status) }
            replyTo?(response)
        case .log(let event):
            logger.log(level: event.level, "\(event.message)", metadata: event.metadata.mapValues { .string($0) })
        case .useConfig(let config):
            let c = reachable(config)
            // A reload that changes the group, topics or brokers: lag is read for the new ones.
            if let lag = groupLag, lag.kafka != c.kafka {
                lag.stop()
                groupLag = GroupLag(config: c, logger: logger)
            }
            spawner = Spawner(config: c, environment: environment)
        }
        return []
    }

    /// `config` as swarmd's own Kafka clients and its nodes use it: with the
    /// embedded broker's address, when swarmd runs one.
    func reachable(_ config: SwarmConfig) -> SwarmConfig {
        guard let broker else { return config }
        var c = config
        c.kafka.properties["bootstrap.servers"] = broker.bootstrapServers
        return c
    }
}
