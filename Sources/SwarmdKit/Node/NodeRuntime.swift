#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared
import SwarmKafka

/// swarmd's built-in node (`swarmd node`, started by the supervisor as
/// `swarmd-node`): a Kafka consumer that hands batches to a handler and
/// stores offsets only after the handler answered (at-least-once).
///
/// - TERM/INT: finish the batch, commit, close (a static member keeps its
///   place for a replacement with the same id), exit 0.
/// - `leave` on fd 4, then TERM: as TERM, but leave the group explicitly first
///   (scale-down, swarm stop: nobody comes back for these partitions).
/// - QUIT: abandon the batch (nothing unhandled is stored), leave, exit 0.
/// - `pause` on fd 4: stop fetching, commit, report `drained`, stay in the group.
/// - `drain` on fd 4: commit, leave the subscription so others take the partitions.
/// - `resume` on fd 4: fetch again.
/// - EOF on fd 4 (supervisor gone): as TERM.
/// - HUP, USR1, USR2, TTIN, TTOU: ignored (they are the supervisor's).
public final class NodeRuntime {
    let config: SwarmConfig
    let slot: Int
    let nodeId: String
    var logger: Logger
    let reporter: NodeReporter
    var consumer: KafkaConsumer?
    var handler: MessageHandler
    var deadLetters: KafkaProducer?
    /// Active, paused, drained or held: the node's own state machine, pure (`NodeMode`).
    var mode = NodeMode()
    /// Set when the node leaves because a message could not be settled.
    private var unsettledExit = false
    /// Told `leave`: this node goes away for good, so it leaves the group explicitly when it stops.
    var leaving = false
    /// Partitions stopped at a failed message (`ordering = "partition"`).
    var ordered: OrderedRetries
    /// The handler when batches are pipelined to it (`[handler] pipeline` > 1, exec).
    let pipelinedHandler: PipelinedHandler?
    /// Batches handed to `pipelinedHandler` and not yet settled, oldest first.
    var inFlight: [(batch: [KafkaMessage], started: Double)] = []
    /// The once-a-second checks of the brokers and topics (a frozen broker,
    /// a topic gone and back), decided apart from the I/O.
    var watch = BrokerWatch(now: monotonicNow())
    /// Set when settling a batch inside a rebalance callback found a message
    /// that could not be settled: the main loop leaves at its next turn.
    private var mustLeave = false

    /// How long after an assignment the node commits after every batch (see `finish`).
    static let unsettledWindow = 15.0
    /// When the group last gave this node an assignment (monotonic seconds).
    var lastAssignmentAt: Double?

    /// Carries out what `NodeMode` decided, in order, against the consumer.
    private func perform(_ actions: [NodeMode.Action]) {
        guard let consumer else { return }
        for action in actions {
            switch action {
            case .commit(let why): commit(why)
            case .pause: consumer.pause()
            case .resume(let keepRetriesPaused):
                consumer.resume()
                if keepRetriesPaused { for p in ordered.pausedPartitions { consumer.pause(p) } }
            case .unsubscribe: consumer.unsubscribe()
            case .subscribe: try? consumer.subscribe(config.kafka.topics)
            case .report(let state):
                reporter.update { $0.state = state }
                reporter.reportNow()
            case .countHold:
                reporter.update { $0.holds += 1 }
                reporter.reportNow()
            case .log(let text): logger.info("\(text)")
            }
        }
    }

    public init(config: SwarmConfig, environment: [String: String], logger: Logger) throws {
        self.config = config
        guard let slotText = environment[NodeEnvironment.slot], let slot = Int(slotText) else {
            throw SwarmError(.usage, "swarmd node is started by swarmd itself (\(NodeEnvironment.slot) is not set)")
        }
        self.slot = slot
        self.nodeId = environment[NodeEnvironment.nodeId] ?? "\(hostName())-\(slot)"
        var logger = logger
        logger[metadataKey: "slot"] = "\(slot)"
        logger[metadataKey: "pid"] = "\(getpid())"
        self.logger = logger
        Self.routeKafkaLogs(to: logger)
        let interval = environment[NodeEnvironment.reportInterval].flatMap(Double.init) ?? config.supervisor.reportInterval
        reporter = NodeReporter(reportFd: NodeEnvironment.reportFd, controlFd: NodeEnvironment.controlFd,
                                interval: interval, batchTimeout: config.handler.batchTimeout,
                                limits: KafkaLimits(disconnectedAfter: config.supervisor.disconnectedAfter,
                                                    rebalanceLimit: config.supervisor.rebalanceLimit,
                                                    consumingWindow: max(2, 2 * interval)))
        handler = makeHandler(config.handler, slot: slot, logger: logger, killTimeout: config.supervisor.killTimeout)
        pipelinedHandler = config.handler.pipeline > 1 ? handler as? PipelinedHandler : nil
        ordered = OrderedRetries(retries: config.handler.retries, backoff: config.handler.retryBackoff)
    }

    /// Reads the configuration the supervisor handed over on fd 5 and closes
    /// the fd, so that nothing this node starts can read it.
    public static func configuration() throws -> SwarmConfig {
        let fd = NodeEnvironment.configFd
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(bytes.count)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                throw SwarmError(.usage, "swarmd node is started by swarmd itself (no configuration on fd \(fd): \(errnoText()))")
            }
            if n == 0 { break }
            bytes += buffer[0..<n]
        }
        close(fd)
        return try JSONValueDecoder().decode(SwarmConfig.self, from: bytes)
    }

    static let signals: [Int32] = [SIGTERM, SIGINT, SIGQUIT]

    /// librdkafka's own lines through swarm's logger: its syslog severity
    /// mapped to swift-log's levels, its facility as `kafka_facility`.
    public static func routeKafkaLogs(to logger: Logger) {
        KafkaLog.sink = { severity, facility, text in
            let level: Logger.Level
            switch severity {
            case ...2: level = .critical
            case 3: level = .error
            case 4: level = .warning
            case 5: level = .notice
            case 6: level = .info
            default: level = .debug
            }
            logger.log(level: level, "librdkafka: \(text)", metadata: ["kafka_facility": "\(facility)"])
        }
    }

    public func run() -> Int32 {
        // `ps -e` and `top` show the process name, which would be "exe" (from /proc/self/exe).
        _ = swarm_set_thread_name("swarmd-node")
        _ = Self.signals.withUnsafeBufferPointer { swarm_install_flag_handlers($0.baseAddress, Int32($0.count)) }
        swarm_ignore_sigpipe()
        // Signals meant for the supervisor can reach a node too (`systemctl kill`
        // sends to the whole unit by default): they must not stop or kill it.
        for sig in [SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU] { signal(sig, SIG_IGN) }
        // Belt and braces beside the control pipe: TERM when swarmd's main thread dies.
        _ = swarm_set_parent_death_signal(SIGTERM)
        reporter.start()
        defer { reporter.stop() }
        do {
            try connect()
        } catch {
            logger.critical("node cannot start: \(config.redact("\(error)"))")
            return ExitStatus.config
        }
        let quit = consume()
        finish(quit: quit)
        return unsettledExit ? ExitStatus.failure : ExitStatus.ok
    }

    func connect() throws {
        var props = config.kafka.properties
        props["group.id"] = config.kafka.groupId
        props["group.instance.id"] = nodeId
        props["client.id"] = props["client.id"] ?? "swarm-\(nodeId)"
        props["auto.commit.interval.ms"] = String(config.handler.commitInterval.milliseconds)
        if props["log_level"] == nil { props["log_level"] = "3" }
        let consumer = try KafkaConsumer(properties: props)
        consumer.onRevoke = { [unowned self] in
            self.mode.revoked()
            // What is in flight is settled before the commit that hands the partitions over.
            if !self.settleInFlight() { self.mustLeave = true }
            self.commit("partitions revoked")
            self.reporter.update { if $0.unassignedSince == nil { $0.unassignedSince = monotonicNow() } }
        }
        consumer.onAssigned = { [unowned self] in
            self.lastAssignmentAt = monotonicNow()
            self.reporter.update { $0.joined = true; $0.unassignedSince = nil; $0.brokersDownSince = nil; $0.rebalances += 1 }
            // Cooperative rebalances revoke only what moves: any assignment ends a hold there.
            self.perform(self.mode.assigned(cooperative: self.consumer?.isCooperative == true))
        }
        consumer.onAssignmentChange = { [unowned self] count in
            self.logger.info("assignment changed", metadata: ["partitions": "\(count)"])
            self.reporter.update { $0.partitions = count }
            self.ordered.keep(only: Set(self.consumer?.assignment ?? []))
        }
        try consumer.subscribe(config.kafka.topics)
        self.consumer = consumer
        let client = "librdkafka/\(Librdkafka.version)", groupProtocol = config.kafka.groupProtocol
        reporter.update { $0.client = client; $0.groupProtocol = groupProtocol }
        if config.handler.onFailure == .deadLetter {
            var p = config.kafka.properties
            p["log_level"] = p["log_level"] ?? "3"
            // Its own client id, per node: broker logs, quotas and metrics tell the producers apart.
            p["client.id"] = "\(props["client.id"]!)-dead-letters"
            deadLetters = try KafkaProducer(properties: p)
        }
        reporter.update { $0.state = .running }
        logger.info("node consuming", metadata: ["group": "\(config.kafka.groupId)", "instance": "\(nodeId)",
                                                 "topics": "\(config.kafka.topics.joined(separator: ","))",
                                                 "handler": "\(config.handler.kind.rawValue)"])
    }

    func commit(_ why: String) {
        guard let consumer else { return }
        // A synchronous commit waits for a coordinator: with no broker, or for
        // partitions already lost, it would only wedge the poll loop
        // (BENCHMARKS.md, "Figures behind the code"). What was handled since
        // the last commit is delivered again: at-least-once.
        if consumer.brokersDown || consumer.assignmentLost {
            logger.warning("not committing (\(why)): \(consumer.brokersDown ? "no broker reachable" : "the assignment was lost"); what was handled since the last commit may be delivered again")
            return
        }
        if let error = consumer.commit() {
            logger.warning("commit failed (\(why)): \(error)")
        }
    }

    /// QUIT seen (without consuming the flag, which the main loop reads).
    func quitPending() -> Bool {
        (swarm_peek_signal_flags() & (1 << UInt64(SIGQUIT))) != 0
    }

    /// The main loop; returns true for an immediate stop (QUIT).
    func consume() -> Bool {
        guard let consumer else { return false }
        var lastLag = monotonicNow()
        while true {
            let flags = swarm_take_signal_flags()
            if flags & (1 << UInt64(SIGQUIT)) != 0 { logger.info("QUIT: leaving now"); return true }
            if flags & (1 << UInt64(SIGTERM) | 1 << UInt64(SIGINT)) != 0 { logger.info("TERM: finishing and leaving"); return false }
            if reporter.supervisorGone.load(ordering: .relaxed) { logger.warning("supervisor gone: finishing and leaving"); return false }
            let commands = reporter.takeCommands()
            // A command (pause, drain, hold, leave) waits for what is in flight: its commit covers it.
            if !commands.isEmpty && !settleInFlight() { mustLeave = true }
            if mustLeave { return leaveUnsettled() }
            for command in commands { apply(command) }
            perform(mode.tick(now: monotonicNow()))

            if let sign = consumer.takeRebalanceSign(), mode.phase == .active, !consumer.isCooperative, !config.kafka.usesConsumerProtocol {
                // What it handles until it hears of the rebalance would be refused too (NodeMode).
                if !settleInFlight() { return leaveUnsettled() }
                perform(mode.brokerRefusedCommit(sign, now: monotonicNow(), assigned: consumer.assignedCount))
            }
            if config.handler.ordering == .partition && mode.phase == .active {
                for p in ordered.due(now: monotonicNow()) { consumer.resume(p) }
            }
            // With batches in flight the poll does not wait: the handler's answers are due.
            var (batch, errors) = consumer.pollBatch(max: config.handler.batchSize, timeoutMs: inFlight.isEmpty ? 100 : 0)
            for e in errors { logger.warning("consumer: \(e)") }
            let down = consumer.brokersDown || watch.silentSince != nil
            let (refusal, missingTopic) = (consumer.refusal, consumer.missingTopic)
            reporter.update { c in
                if !batch.isEmpty { c.lastMessageAt = monotonicNow() }
                c.refusal = refusal
                c.missingTopic = missingTopic
                if down { if c.brokersDownSince == nil { c.brokersDownSince = self.watch.silentSince ?? monotonicNow() } } else { c.brokersDownSince = nil }
            }
            if config.handler.ordering == .partition && !ordered.stops.isEmpty { batch = admitted(batch) }
            let now = monotonicNow()
            reporter.update { $0.lastPollAt = now }
            if now - lastLag >= 1 {
                // What librdkafka does not say by itself (`BrokerWatch`): a broker
                // back, a frozen broker, and a topic gone and back.
                var revoked = false
                reporter.update { revoked = $0.unassignedSince != nil }
                let look = BrokerWatch.Look(active: mode.phase == .active, assigned: consumer.assignedCount,
                                            brokersDown: consumer.brokersDown, revoked: revoked)
                var actions: [BrokerWatch.Action] = []
                if let probe = watch.probeDue(look),
                   let said = watch.probed(probe, answered: consumer.probeBrokers(timeoutMs: probe.timeoutMs), now: now) {
                    actions.append(said)
                }
                if watch.topicCheckDue(look, now: now) {
                    let before = consumer.missingTopic
                    _ = consumer.missingTopics(config.kafka.topics.filter { !$0.hasPrefix("^") }, timeoutMs: 500)
                    actions += watch.topicsChecked(missingBefore: before, missingAfter: consumer.missingTopic, now: now)
                }
                for action in actions {
                    switch action {
                    case .warn(let line): logger.warning("\(line)")
                    case .notice(let line): logger.notice("\(line)")
                    case .resubscribe: try? consumer.subscribe(config.kafka.topics)
                    case .leave(let line):
                        logger.error("\(line)")
                        unsettledExit = true
                        return false
                    }
                }
                if consumer.assignedCount > 0 { watch.assigned() }
                // Paused partitions are not fetched, so their cached watermarks go stale: ask the broker.
                let paused = Set(mode.phase == .paused ? consumer.assignment : ordered.pausedPartitions)
                let lags = consumer.lags(refreshing: paused)
                let stuck = Set(ordered.stops.keys)
                reporter.update { c in
                    c.stuck = stuck
                    c.partitionLag = lags
                }
                lastLag = now
            }
            if mustLeave { return leaveUnsettled() }
            if (!batch.isEmpty || !inFlight.isEmpty) && !dispatch(batch) {
                if quitPending() { return true }
                return leaveUnsettled()
            }
            if mode.phase == .drained && consumer.assignedCount == 0 {
                reporter.update { if $0.state != .drained { $0.state = .drained } }
            }
        }
    }

    /// A message could not be settled: nothing after it may be stored, so the
    /// node leaves and the group delivers it again from the last commit.
    private func leaveUnsettled() -> Bool {
        logger.error("a message could not be settled; leaving so that the group delivers it again")
        inFlight = []
        unsettledExit = true
        return false
    }

    func apply(_ command: NodeCommand) {
        guard let consumer else { return }
        if command == .leave { leaving = true }
        perform(mode.apply(command, now: monotonicNow(), assigned: consumer.assignedCount))
    }

    func finish(quit: Bool) {
        // A stop must end even with nobody to end it: swarmd KILLs a node at
        // kill_timeout while it lives, but an orphaned node (swarmd gone, and
        // its brokers with it) can wait forever in librdkafka's close for a
        // coordinator that is gone. Found: a node orphaned that way still in
        // futex waits 50 minutes later. SIGALRM's default action ends it.
        alarm(UInt32(saturating: config.supervisor.killTimeout.rounded(.up) + 5))
        // What is in flight is answered and stored before the last commit and
        // the last report. QUIT abandons it (delivered again): forgotten here,
        // so that the revocation inside close() neither waits for the handler
        // nor starts it again to retry.
        if quit { inFlight = [] } else if !unsettledExit && !settleInFlight() { unsettledExit = true }
        reporter.update { $0.state = .stopping }
        reporter.reportNow()
        // A `leave` written just before the TERM may still be in the pipe.
        reporter.stop()
        if reporter.takePendingCommands().contains(.leave) { leaving = true }
        handler.shutdown(now: quit)
        guard let consumer else { return }
        if !quit { commit("stop") }
        if leaving && !quit {
            // Committed above; the revocation commits again (nothing new) and the group moves on at once.
            consumer.leaveGroup(timeoutMs: 5000)
            logger.info("left the group: its partitions go to the other members now")
        }
        consumer.close()
        deadLetters?.flush(timeoutMs: 5000)
        logger.info(quit ? "node left at once" : "node stopped: everything handled is committed")
    }
}
