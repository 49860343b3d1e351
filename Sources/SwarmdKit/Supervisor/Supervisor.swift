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

    private var swarm: Swarm
    private let configPath: String?
    private let overrides: Overrides
    private let socketPath: String
    private let logger: Logger
    private var loop: EventLoop
    private var signalFd: Int32 = -1
    private var control: ControlServer?
    /// The read-only HTTP listener (`[http] listen`), and what its page charts.
    private var http: HTTPServer?
    private var history = StatusHistory()
    /// The cluster view's link to the status topic (`[cluster]`), or nil.
    private var cluster: ClusterLink?
    /// The lag of partitions no node reports, from the broker (built-in nodes only).
    private var groupLag: GroupLag?
    private var lastTurnAt = monotonicNow()
    private var notifier = SystemdNotifier()
    private var spawner: Spawner
    private let environment: [String: String]
    private var broker: EmbeddedBroker?
    /// One cgroup v2 child per node, where swarmd was delegated a subtree.
    private var cgroups: NodeCgroups?
    private var nodes: [Int: NodeFds] = [:]
    private var nextSpawnId = 1
    private var nextWatchdog: Double?
    private var nextSweep: Double?
    /// Where the reply to the command being handled goes.
    private var replyTo: ((ControlResponse) -> Void)?
    /// The binary swarmd was started from: what `swarmctl upgrade` re-executes by default.
    private let executable: String
    private let version = SwarmVersion.describe()
    /// An upgrade that passed its check, done at the end of the turn (after its reply went out).
    private var pendingUpgrade: String?
    /// What the swarmd this one replaced handed over, until it is adopted.
    private var handover: Handover?
    /// Trees read for a status, kept for one report interval: a status shows
    /// reports of that age anyway, and re-reading /proc for every request
    /// cost 40 µs per node (BENCHMARKS.md, large swarms).
    private var statusMemory: (at: Double, byPid: [Int32: NodeMemory]) = (-.infinity, [:])

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
        cluster?.stop(tombstone: true)
        groupLag?.stop()
        control?.shutdown()
        broker?.stop()
        let status = swarm.anyKilledWhileStopping ? ExitStatus.failure : ExitStatus.ok
        logger.info("swarmd stopped", metadata: ["exit_status": "\(status)"])
        return status
    }

    private func setUp() throws {
        raiseFileLimit()
        // A node that dies (even by SIGKILL) must not leave its handler behind,
        // and swarmd as a container's PID 1 must not collect zombies: orphans of
        // the nodes come to swarmd (`reapStrangers`), not to init.
        if swarm_set_child_subreaper() != 0 { logger.warning("cannot become a child subreaper: \(errnoText())") }
        signalFd = Self.handledSignals.withUnsafeBufferPointer { swarm_signalfd($0.baseAddress, Int32($0.count)) }
        guard signalFd >= 0 else { throw SwarmError(.signalfd, "signalfd: \(errnoText())") }
        try loop.add(signalFd, .signal)
        let config = swarm.config
        let server: ControlServer
        if let h = handover {
            server = ControlServer(adopting: h.listenFd, path: socketPath,
                                   groups: (try? ControlServer.Groups(full: config.supervisor.socketGroup, read: config.supervisor.socketReadGroup))
                                       ?? ControlServer.Groups(),
                                   idleTimeout: config.supervisor.controlTimeout, logger: logger)
            for n in h.nodes {
                let fds = NodeFds(pid: n.pid, pidfd: n.pidfd, reportFd: n.reportFd, controlFd: n.controlFd)
                fds.watched = n.watched
                for fd in [n.pidfd, n.reportFd, n.controlFd] where fd >= 0 { _ = swarm_set_cloexec(fd) }
                nodes[n.spawn] = fds
                // A node that died during the upgrade: its pidfd is readable at once, and it is reaped as usual.
                try loop.add(n.pidfd, .pidfd(spawn: n.spawn))
                if n.reportFd >= 0 { try loop.add(n.reportFd, .report(spawn: n.spawn), events: n.watched ? SWARM_EPOLLIN : 0) }
            }
        } else {
            server = try ControlServer(path: socketPath, mode: config.supervisor.socketMode,
                                       groups: ControlServer.Groups(full: config.supervisor.socketGroup, read: config.supervisor.socketReadGroup),
                                       idleTimeout: config.supervisor.controlTimeout, logger: logger)
        }
        try loop.add(server.listenFd, .listener)
        control = server
        if !config.http.listen.isEmpty {
            let h: HTTPServer
            if let fd = handover?.httpFd {
                h = HTTPServer(adopting: fd, address: config.http.listen, logger: logger)
            } else {
                h = try HTTPServer(listen: config.http.listen, logger: logger)
            }
            try loop.add(h.listenFd, .httpListener)
            http = h
            logger.info("http: serving /metrics, /healthz, /readyz and the swarm's page", metadata: ["listen": "\(config.http.listen)"])
        }
        let (cg, why) = NodeCgroups.make(procSelfCgroup: try? readTextFile("/proc/self/cgroup"))
        cgroups = cg
        if cg == nil && (config.supervisor.memoryHigh > 0 || config.supervisor.memoryMax > 0) {
            logger.warning("memory_high and memory_max are not applied: they need a delegated cgroup v2 subtree, and \(why)")
        } else {
            logger.info("per-node cgroups: \(cg == nil ? "none, memory is read from /proc: " : "")\(why)")
        }
        if config.usesEmbeddedBroker && config.supervisor.nodeCommand.isEmpty {
            let b = try EmbeddedBroker(config: config, logger: logger)
            broker = b
            spawner = Spawner(config: reachable(config), environment: environment)
        }
        if config.supervisor.nodeCommand.isEmpty && !config.kafka.topics.isEmpty {
            groupLag = GroupLag(config: reachable(config), logger: logger)
        }
        if !config.cluster.statusTopic.isEmpty {
            let link = try ClusterLink(config: config, properties: reachable(config).kafka.properties, prefix: spawner.instancePrefix, logger: logger)
            if handover == nil { try link.checkUnique(timeoutMs: 5000) }
            cluster = link
            logger.info("cluster: publishing to and following the status topic", metadata: [
                "topic": "\(config.cluster.statusTopic)", "prefix": "\(spawner.instancePrefix)", "every_s": "\(config.cluster.publishInterval)"])
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

    /// One turn of the loop: wait, turn what happened into events, act on deadlines, re-arm the timer.
    private func turn() {
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
    private func feed(_ event: SwarmEvent) {
        SwarmDriver.feed(event, handle: { swarm.handle($0, now: monotonicNow()) }, carryOut: carryOut)
    }

    /// One effect as system calls; a spawn is answered with its outcome.
    private func carryOut(_ effect: SwarmEffect) -> [SwarmEvent] {
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
    private func reachable(_ config: SwarmConfig) -> SwarmConfig {
        guard let broker else { return config }
        var c = config
        c.kafka.properties["bootstrap.servers"] = broker.bootstrapServers
        return c
    }

    /// A status from the core with what only the shell reads: swarmd's
    /// version and each node's memory. With a memory limit the core has every
    /// tree from the sweep (PSS included); without one, a status reads RSS
    /// quickly, not kept up to date for nobody.
    private func enriched(_ input: SwarmStatus) -> SwarmStatus {
        var status = input
        status.version = version
        status.client = "librdkafka/\(Librdkafka.version)"
        status.config = configPath
        status.cluster = cluster?.view()
        status.unownedLag = groupLag?.unowned(by: status.nodes)
        let missing = status.nodes.filter { $0.processes == nil }.compactMap(\.pid)
        let now = monotonicNow()
        if now - statusMemory.at >= swarm.config.supervisor.reportInterval || missing.contains(where: { statusMemory.byPid[$0] == nil }) {
            statusMemory = (now, missing.isEmpty ? [:] : ProcessTree.quickMemory(of: missing))
        }
        let memory = statusMemory.byPid
        for i in status.nodes.indices where status.nodes[i].processes == nil {
            guard let m = status.nodes[i].pid.flatMap({ memory[$0] }) else { continue }
            status.nodes[i].rssBytes = m.rss
            status.nodes[i].processes = m.processes.map { ProcessMemoryStatus(pid: $0.pid, name: $0.name, rssBytes: $0.rss, pssBytes: nil) }
        }
        return status
    }

    /// The status as of now: pending reports read first, memory added.
    private func freshStatus() -> SwarmStatus {
        sweepReports()
        return enriched(swarm.status(now: monotonicNow()))
    }

    /// The Prometheus exposition, for `/metrics` and `swarmctl metrics`.
    private func metricsText() -> String {
        Metrics.exposition(swarm: swarm, status: freshStatus(), publishing: cluster.map { ($0.published, $0.dropped) })
    }

    /// The HTTP routes. Read-only: nothing here changes the swarm.
    private func route(_ request: HTTPServer.Request) -> HTTPServer.Response {
        switch request.path {
        case "/healthz":
            // Answered by the loop itself, so an answer is the proof that it turns.
            let age = Int(saturating: (monotonicNow() - lastTurnAt) * 1000)
            return .text(200, "ok: swarmd pid \(getpid()) answers; its loop turned \(age) ms ago\n")
        case "/readyz":
            sweepReports()
            let status = swarm.status(now: monotonicNow())
            var body = swarm.consuming ? "ready: all \(status.wanted) nodes consume\n" : "not ready: \(swarm.missing())\n"
            for n in status.nodes {
                body += "slot \(n.slot): \(n.state.rawValue), \(n.health.rawValue)\(n.kafka.map { ", \($0)" } ?? "")\(n.reason.map { " (\($0))" } ?? "")\n"
            }
            return .text(swarm.consuming ? 200 : 503, body)
        case "/metrics":
            return HTTPServer.Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(metricsText().utf8))
        case "/status.json":
            return HTTPServer.Response(status: 200, contentType: "application/json", body: StatusJSON.document(freshStatus()))
        case "/history.json":
            return HTTPServer.Response(status: 200, contentType: "application/json", body: Array(history.json().utf8))
        case "/", "/index.html":
            return HTTPServer.Response(status: 200, contentType: "text/html; charset=utf-8",
                                       body: Array(WebPage.html(freshStatus(), title: swarm.config.kafka.groupId).utf8))
        default:
            return .text(404, "no such page; try /, /metrics, /healthz, /readyz, /status.json\n")
        }
    }

    private func spawn(_ slot: Int) -> SwarmEvent {
        let s: Spawner.Spawned
        do {
            s = try spawner.spawn(slot: slot)
        } catch {
            return .spawnFailed(slot: slot, error: "\(error)")
        }
        let spawnId = nextSpawnId
        nextSpawnId += 1
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
            return .spawnFailed(slot: slot, error: "\(error)")
        }
        nodes[spawnId] = NodeFds(pid: s.pid, pidfd: s.pidfd, reportFd: s.reportFd, controlFd: s.controlFd)
        let settings = swarm.config.supervisor
        if let cgroups, let problem = cgroups.adopt(pid: s.pid, slot: slot, high: settings.memoryHigh, max: settings.memoryMax) {
            logger.warning("\(problem); its memory is read from /proc", metadata: ["slot": "\(slot)"])
        }
        return .spawned(slot: slot, spawn: spawnId, pid: s.pid)
    }

    private func reap(_ spawn: Int) {
        guard let fds = nodes[spawn] else { return }
        var code: Int32 = 0, status: Int32 = 0
        let rc = swarm_pidfd_reap(fds.pidfd, &code, &status)
        guard rc == 1 else {
            if rc < 0 { logger.error("waitid failed: \(errnoText())", metadata: ["spawn": "\(spawn)"]) }
            return
        }
        readReports(spawn)  // its last words count (handled totals)
        loop.remove(fds.pidfd)
        close(fds.pidfd)
        if fds.reportFd >= 0 { loop.remove(fds.reportFd); close(fds.reportFd) }
        if fds.controlFd >= 0 { close(fds.controlFd) }
        nodes[spawn] = nil
        var cause: ExitCause
        switch code {
        case 1: cause = .exited(status)
        case 2, 3: cause = .signaled(signalName(status), coreDumped: code == 3)
        default: cause = .other(code: code, status: status)
        }
        if let cgroups, let slot = swarm.slot(ofSpawn: spawn)?.id, cgroups.wasOOMKilled(slot: slot) { cause = .oomKilled }
        feed(.exited(spawn: spawn, cause: cause))
    }

    /// swarmd's children that are not nodes: what a dead node left behind
    /// (its handler, whatever that started), reparented to swarmd as their
    /// subreaper, and anything a container runtime makes swarmd, as PID 1,
    /// inherit. The dead are reaped; the living are killed, since the node
    /// that owned them is gone and nothing they do can be committed. A node
    /// is never touched here: it is reaped through its pidfd only.
    private func reapStrangers() {
        let me = getpid()
        let nodePids = Set(nodes.values.map(\.pid))
        let children = ProcessTree.children(of: me) ?? ProcessTree.table().filter { $0.value.ppid == me }.map(\.key)
        for pid in children where !nodePids.contains(pid) {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { continue }  // a zombie, reaped
            // A handler leads its own process group: what it started goes with it.
            let group = getpgid(pid) == pid
            logger.warning("killing a process left behind by a node that is gone\(group ? ", with its process group" : "")",
                           metadata: ["pid": "\(pid)", "name": "\(ProcessTree.name(of: pid))"])
            kill(group ? -pid : pid, SIGKILL)
        }
    }

    // MARK: Reports

    /// Watches the report pipes of nodes the core waits on, leaves the rest
    /// to the sweep, and schedules the sweep while any node needs one.
    private func updateReportWatches(now: Double) {
        var anySwept = false
        for slot in swarm.slots.values {
            guard let p = slot.process, let fds = nodes[p.spawn], fds.reportFd >= 0 else { continue }
            let prompt = swarm.awaitsReport(slot)
            if prompt != fds.watched {
                loop.modify(fds.reportFd, .report(spawn: p.spawn), events: prompt ? SWARM_EPOLLIN : 0)
                fds.watched = prompt
            }
            if !prompt { anySwept = true }
        }
        if !anySwept {
            nextSweep = nil
        } else if nextSweep == nil {
            nextSweep = now + swarm.config.supervisor.reportInterval
        }
    }

    /// Reads every node's pending reports and, when a limit needs it, what
    /// each node's process tree uses (one pass over /proc for all nodes).
    private func sweepReports() {
        for spawn in nodes.keys.sorted() { readReports(spawn) }
        nextSweep = nil
        guard swarm.config.supervisor.memoryLimit > 0 else { return }
        let memory = ProcessTree.memory(of: nodes.values.map(\.pid))
        for (spawn, fds) in nodes.sorted(by: { $0.key < $1.key }) {
            guard var m = memory[fds.pid] else { continue }
            if let cgroups, let slot = swarm.slot(ofSpawn: spawn)?.id { m.cgroupBytes = cgroups.current(slot: slot) }
            feed(.memory(spawn: spawn, m))
        }
    }

    /// Reads whatever the node wrote since the last read; the newest report goes to the core.
    private func readReports(_ spawn: Int) {
        guard let fds = nodes[spawn], fds.reportFd >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 8192)
        var lines: [LineBuffer.Item] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds.reportFd, $0.baseAddress, $0.count) }
            if n > 0 {
                lines += buffer.withUnsafeBytes { fds.reportLines.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                if lines.count > 1000 { break }  // a flooding node waits for the next turn
                continue
            }
            if n == 0 {
                // The node closed its report pipe; its pidfd will tell when it exits.
                loop.remove(fds.reportFd)
                close(fds.reportFd)
                fds.reportFd = -1
            } else if errno == EINTR {
                continue
            }
            break
        }
        var latest: NodeReport?
        for item in lines {
            switch item {
            case .overflow:
                feed(.malformedReport(spawn: spawn, why: "line longer than \(NodeReport.maxLineLength) bytes"))
            case .line(let bytes):
                if bytes.isEmpty { continue }
                do { latest = try NodeReport.parse(bytes) } catch { feed(.malformedReport(spawn: spawn, why: (error as? SwarmError)?.message ?? "\(error)")) }
            }
        }
        if let report = latest { feed(.report(spawn: spawn, report)) }
    }

    // MARK: Commands

    /// A control request: checked and mapped to a command, answered by the core.
    private func answer(_ request: ControlRequest, from peer: ControlServer.Peer) -> ControlResponse {
        let origin = CommandOrigin.control(uid: peer.uid, pid: peer.pid, comm: peer.comm)
        if let refusal = ControlPolicy.refusal(of: request.cmd, access: peer.access, uid: peer.uid) {
            logger.warning("control: \(request.cmd.prefix(64)) refused: the peer may only look (socket_read_group)",
                           metadata: ["peer_uid": "\(peer.uid)", "peer_pid": "\(peer.pid)", "peer_comm": "\(peer.comm)"])
            return ControlResponse(ok: false, error: refusal)
        }
        let command: SwarmCommand
        switch ControlMapping.command(for: request) {
        case .failure(let failure):
            return ControlResponse(ok: false, error: failure)
        case .success(.upgrade(let binary)):
            return prepareUpgrade(binary: binary ?? executable, origin: "swarmctl upgrade by uid \(peer.uid)")
        case .success(.metrics):
            return ControlResponse(ok: true, message: metricsText())
        case .success(.reloadFile):
            switch readConfiguration() {
            case .failure(let e): return .failure(.badConfig, e.message)
            case .success(let config): command = .reload(config)
            }
        case .success(.command(let c)):
            command = c
        }
        if command == .status { sweepReports() }
        var response = ControlResponse.failure(.busy, "swarmd did not answer this request")
        replyTo = { response = $0 }
        feed(.command(command, from: origin))
        replyTo = nil
        return response
    }

    /// Re-reads the configuration file for a reload. A valid one becomes the
    /// command; an invalid one changes nothing.
    private func readConfiguration() -> Result<SwarmConfig, SwarmError> {
        var next = swarm.config
        if let path = configPath {
            do {
                let loaded = try ConfigLoader(path: path).read()
                next = Self.apply(overrides, to: loaded.config)
                // The same checks as at start: a property librdkafka refuses must not reach the nodes.
                try SwarmdValidation.validate(next, setKeys: loaded.setKeys, environment: environment)
            } catch {
                let e = (error as? SwarmError) ?? SwarmError(.config, "\(error)")
                logger.error("reload refused, keeping the running configuration: \(e.message)")
                return .failure(e)
            }
        }
        if let refusal = ControlPolicy.reloadRefusal(running: swarm.config, next: next) {
            logger.error("reload refused: \(refusal.message)")
            return .failure(refusal)
        }
        if let deferred = ControlPolicy.reloadDeferred(running: swarm.config, next: next) { logger.warning("\(deferred)") }
        return .success(next)
    }

    // MARK: Upgrades

    /// Checks an upgrade and schedules it for the end of this turn (after the
    /// requester's reply went out), or refuses it while everything runs on.
    private func prepareUpgrade(binary: String, origin: String) -> ControlResponse {
        let refuse = { (failure: ControlFailure) -> ControlResponse in
            self.logger.error("upgrade refused: \(failure.message); swarmd keeps running", metadata: ["asked_by": "\(origin)"])
            return ControlResponse(ok: false, error: failure)
        }
        if let refusal = ControlPolicy.upgradeRefusal(stopping: swarm.mode.isStopping, upgradePending: pendingUpgrade != nil,
                                                      embeddedBroker: broker != nil) {
            return refuse(refusal)
        }
        if let problem = Handover.check(binary, configPath: configPath) { return refuse(ControlFailure(.badArgument, problem)) }
        pendingUpgrade = binary
        logger.notice("upgrade checked: re-executing in place", metadata: ["binary": "\(binary)", "asked_by": "\(origin)", "from": "\(version)"])
        return ControlResponse(ok: true, message: "upgrading swarmd (pid \(getpid()), \(version)) to \(binary)")
    }

    /// Re-executes swarmd in place: same pid, same children, every fd the
    /// nodes are watched through kept open across exec. Returns only if the
    /// exec failed, with everything as it was.
    private func upgrade(to binary: String) {
        pendingUpgrade = nil
        notifier.reloading()
        guard let control else { return }
        let listen = control.handOver()
        var kept = [listen]
        let httpFd = http?.handOver()
        if let httpFd { kept.append(httpFd) }
        var handed: [Handover.Node] = []
        for (spawn, fds) in nodes.sorted(by: { $0.key < $1.key }) {
            handed.append(Handover.Node(spawn: spawn, pid: fds.pid, pidfd: fds.pidfd, reportFd: fds.reportFd, controlFd: fds.controlFd, watched: fds.watched))
            for fd in [fds.pidfd, fds.reportFd, fds.controlFd] where fd >= 0 {
                _ = swarm_set_inheritable(fd)
                kept.append(fd)
            }
        }
        var state = swarm
        state.upgrades += 1
        var h = Handover(swarm: state, nodes: handed, nextSpawnId: nextSpawnId, listenFd: listen, socketPath: socketPath,
                         configPath: configPath, overridesNodes: overrides.nodes, overridesCommand: overrides.nodeCommand,
                         executable: executable, previousVersion: version)
        h.httpFd = httpFd
        var why: String
        do {
            let fd = try h.write()
            let argv = [binary, "run", "--handover", String(fd)]
            _ = withCStringArray(argv) { execv(binary, $0) }
            why = "cannot execute \(binary): \(errnoText())"
            close(fd)
        } catch {
            why = "\(error)"
        }
        for fd in kept { _ = swarm_set_cloexec(fd) }
        logger.error("upgrade failed: \(why); swarmd keeps running")
        notifier.ready()
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

    /// Signals are commands too, through the same core as the socket.
    private func handleSignal(_ sig: Int32, from sender: Int32) {
        let meta: Logger.Metadata = ["signal": "\(signalName(sig))", "from_pid": "\(sender)"]
        let origin = CommandOrigin.signal(signalName(sig))
        switch sig {
        case SIGCHLD:
            // Nodes are reaped through their pidfds; this is for the others. A node's
            // own exit sends CHLD too, so what it left behind is found here.
            reapStrangers()
            return
        case SIGTERM, SIGINT:
            if !swarm.mode.isStopping { logger.notice("graceful stop requested", metadata: meta) }
            feed(.command(.stop(now: false), from: origin))
        case SIGQUIT:
            logger.notice("immediate stop requested", metadata: meta)
            feed(.command(.stop(now: true), from: origin))
        case SIGTTIN:
            logger.notice("one more node requested", metadata: meta)
            feed(.command(.scale(.relative(1)), from: origin))
        case SIGTTOU:
            logger.notice("one node fewer requested", metadata: meta)
            feed(.command(.scale(.relative(-1)), from: origin))
        case SIGUSR1:
            logStatusReport()
        case SIGUSR2:
            logger.notice("upgrade requested", metadata: meta)
            _ = prepareUpgrade(binary: executable, origin: "USR2")
        case SIGHUP:
            logger.notice("reload requested", metadata: meta)
            if case .success(let config) = readConfiguration() { feed(.command(.reload(config), from: origin)) }
        default:
            logger.warning("signal ignored: swarmd does nothing on it", metadata: meta)
        }
    }

    /// SIGUSR1: the whole status in the log, one line per node.
    private func logStatusReport() {
        sweepReports()
        let s = swarm.status(now: monotonicNow())
        let memory = ProcessTree.memory(of: s.nodes.compactMap(\.pid))  // USR1 is rare: the full pass, PSS included
        logger.notice("status: \(swarm.statusLine())", metadata: ["state": "\(s.state.rawValue)", "wanted": "\(s.wanted)", "handled": "\(s.handled)", "malformed_reports": "\(s.malformedReports)"])
        for n in s.nodes {
            logger.notice("status: node", metadata: [
                "slot": "\(n.slot)", "pid": "\(n.pid.map(String.init) ?? "-")", "state": "\(n.state.rawValue)",
                "uptime_s": "\(n.uptimeS)", "restarts": "\(n.restarts)", "last_exit": "\(n.lastExit ?? "-")",
                "rss": "\(n.pid.flatMap { memory[$0]?.rss }.map(String.init) ?? "-")",
                "pss": "\(n.pid.flatMap { memory[$0]?.pss }.map(String.init) ?? "-")", "handled": "\(n.handled)", "failed": "\(n.failed)",
                "partitions": "\(n.partitions)", "lag": "\(n.lag.map(String.init) ?? "-")",
            ])
        }
    }
}
