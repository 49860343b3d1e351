#if canImport(Glibc)
import Glibc
#endif
import Shared
import Synchronization

/// What the node's main thread shares with its reporter thread.
struct NodeCounters {
    var handled: Int64 = 0
    var failed: Int64 = 0
    var retried: Int64 = 0
    var deadLettered: Int64 = 0
    var rebalances: Int64 = 0
    /// Holds answered (see `NodeCommand.hold`).
    var holds: Int64 = 0
    /// Batch times (see `NodeReport.batchBuckets`).
    var batchBuckets = [Int64](repeating: 0, count: NodeReport.batchBucketsMs.count + 1)
    var batchSumMs = 0.0
    /// Partitions stopped at a failing message.
    var stuck: Set<TopicPartition> = []
    var inflight = 0
    var batchStartedAt: Double?
    var lastPollAt = monotonicNow()
    var partitions = 0
    /// Lag of each assigned partition; empty while unknown.
    var partitionLag: [TopicPartition: Int64] = [:]
    var state = NodeReport.State.starting
    /// Since when the node has been joining (never assigned yet) or
    /// rebalancing (revoked, not assigned again); nil while assigned.
    var unassignedSince: Double? = monotonicNow()
    /// True once the group gave this node an assignment (even an empty one).
    var joined = false
    /// Since when librdkafka has said every broker is down; nil when reachable.
    var brokersDownSince: Double?
    /// What the brokers refused (credentials, TLS), as librdkafka said it.
    var refusal: String?
    /// A subscribed topic the brokers do not have, as librdkafka said it.
    var missingTopic: String?
    /// When the last non-empty batch arrived.
    var lastMessageAt: Double?
    /// The Kafka client and group protocol (see `NodeReport.client`).
    var client = ""
    var groupProtocol = ""
}

/// The limits a node's Kafka condition is judged by (`[supervisor]`).
struct KafkaLimits {
    var disconnectedAfter = 10.0
    var rebalanceLimit = 120.0
    /// Messages within this many seconds make a node `consuming` rather than `idle`.
    var consumingWindow = 2.0
}

/// The node's second thread: it writes a report every interval whatever the
/// main thread is doing (so a long batch does not look like a hang), turns a
/// batch stuck in the handler into an unhealthy report, reads the
/// supervisor's commands, and notices when the supervisor is gone (EOF on
/// the control pipe, or EPIPE on the report pipe).
final class NodeReporter: @unchecked Sendable {
    let counters = Mutex(NodeCounters())
    let commands = Mutex<[NodeCommand]>([])
    let supervisorGone = Atomic<Bool>(false)
    let stopping = Atomic<Bool>(false)
    let reportFd: Int32
    let controlFd: Int32
    let interval: Double
    let batchTimeout: Double
    let limits: KafkaLimits
    private var thread: pthread_t?
    /// Command lines read so far (the reporter thread's, or the caller's once it stopped).
    private var lines = LineBuffer(limit: 1024)

    init(reportFd: Int32, controlFd: Int32, interval: Double, batchTimeout: Double, limits: KafkaLimits = KafkaLimits()) {
        self.reportFd = reportFd
        self.controlFd = controlFd
        self.interval = interval
        self.batchTimeout = batchTimeout
        self.limits = limits
    }

    func start() {
        thread = startThread(name: "swarm-reporter") { [self] in run() }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        if let t = thread { pthread_join(t, nil) }
        thread = nil
    }

    func update(_ body: (inout NodeCounters) -> Void) {
        counters.withLock { body(&$0) }
    }

    func takeCommands() -> [NodeCommand] {
        commands.withLock { c in defer { c.removeAll() }; return c }
    }

    /// After `stop()`: the commands written before a signal that the
    /// reporter thread had no time to read (the supervisor writes `leave`
    /// and then sends TERM; the TERM can win the race to this process).
    func takePendingCommands() -> [NodeCommand] {
        var pfd = pollfd(fd: controlFd, events: Int16(POLLIN), revents: 0)
        var buffer = [UInt8](repeating: 0, count: 1024)
        while poll(&pfd, 1, 0) > 0 && pfd.revents & Int16(POLLIN) != 0 {
            let n = buffer.withUnsafeMutableBytes { read(controlFd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            parse(Array(buffer[0..<n]))
        }
        return takeCommands()
    }

    private func parse(_ bytes: [UInt8]) {
        for case .line(let l) in lines.feed(bytes) {
            if let cmd = NodeCommand(rawValue: String(decoding: l, as: UTF8.self)) {
                commands.withLock { $0.append(cmd) }
            }
        }
    }

    /// Where the node stands with Kafka, from what the main thread recorded.
    /// A refusal comes first: it is why the brokers look down.
    static func condition(_ c: NodeCounters, now: Double, limits: KafkaLimits) -> KafkaCondition {
        if c.refusal != nil { return .authFailed }
        if let down = c.brokersDownSince, now - down >= limits.disconnectedAfter { return .disconnected }
        if c.missingTopic != nil && (c.unassignedSince != nil || c.partitions == 0) { return .unknownTopic }
        if let since = c.unassignedSince {
            if now - since >= limits.rebalanceLimit { return .rebalancingTooLong }
            return c.joined ? .rebalancing : .joining
        }
        if c.partitions == 0 { return .waiting }
        if let last = c.lastMessageAt, now - last < limits.consumingWindow { return .consuming }
        if c.partitionLag.values.contains(where: { $0 > 0 }) { return .consuming }
        return .idle
    }

    /// Writes a report now (on state changes, so the supervisor hears at once).
    func reportNow() {
        let line = report()
        if !writeAll(reportFd, line.encoded()) && (errno == EPIPE || errno == EBADF) {
            supervisorGone.store(true, ordering: .relaxed)
        }
    }

    func report() -> NodeReport {
        let c = counters.withLock { $0 }
        let now = monotonicNow()
        var r = NodeReport()
        r.state = c.state
        // A drained node left the subscription on purpose: it has no Kafka condition to judge.
        if c.state == .running || c.state == .starting { r.kafka = Self.condition(c, now: now, limits: limits) }
        // librdkafka's words for the operator (never a credential: it does not print them).
        if r.kafka == .authFailed { r.detail = c.refusal ?? "" } else if r.kafka == .unknownTopic { r.detail = c.missingTopic ?? "" }
        r.handled = c.handled
        r.failed = c.failed
        r.retried = c.retried
        r.deadLettered = c.deadLettered
        r.rebalances = c.rebalances
        r.holds = c.holds
        r.client = c.client
        r.groupProtocol = c.groupProtocol
        r.stuck = c.stuck
        if c.batchBuckets.contains(where: { $0 > 0 }) {
            r.batchBuckets = c.batchBuckets
            r.batchSumMs = Int64(saturating: c.batchSumMs.rounded())
        }
        r.inflight = Int64(c.inflight)
        r.inflightAgeMs = c.batchStartedAt.map { Int64(saturating: (now - $0) * 1000) } ?? 0
        r.partitions = Int64(c.partitions)
        r.pollAgeMs = Int64(saturating: (now - c.lastPollAt) * 1000)
        r.partitionLag = c.partitionLag
        // Unknown (-1) when any partition's lag is unknown: a sum of the known
        // ones would understate it, and the whole partition would overstate it.
        r.lag = c.partitionLag.isEmpty || c.partitionLag.values.contains { $0 < 0 } ? -1 : c.partitionLag.values.reduce(0) { $0.addingSaturating($1) }
        if let started = c.batchStartedAt, now - started > batchTimeout {
            r.health = .unhealthy
            r.reason = UnhealthyReason.handlerStuck.rawValue
            r.detail = "one batch in the handler for \(Int(saturating: now - started)) s"
        } else if c.batchStartedAt == nil, now - c.lastPollAt > batchTimeout + 30 {
            r.health = .unhealthy
            r.reason = UnhealthyReason.pollStalled.rawValue
            r.detail = "no poll for \(Int(saturating: now - c.lastPollAt)) s"
        }
        return r
    }

    private func run() {
        var next = monotonicNow()
        var buffer = [UInt8](repeating: 0, count: 1024)
        while !stopping.load(ordering: .relaxed) {
            let now = monotonicNow()
            if now >= next {
                reportNow()
                next = now + interval
            }
            // Wake at least every 100 ms so stop() is prompt.
            let waitMs = Int32(saturating: max(1, min(100, (next - monotonicNow()) * 1000)))
            var pfd = pollfd(fd: controlFd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, waitMs)
            guard ready > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(controlFd, $0.baseAddress, $0.count) }
            if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) {
                supervisorGone.store(true, ordering: .relaxed)
                return
            }
            if n > 0 { parse(Array(buffer[0..<n])) }
        }
    }
}
