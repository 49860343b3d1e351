#if canImport(Glibc)
import Glibc
#endif
import Shared
import Synchronization

/// What the node's main thread shares with its reporter thread.
struct NodeCounters {
    var handled: Int64 = 0
    var failed: Int64 = 0
    var inflight = 0
    var batchStartedAt: Double?
    var lastPollAt = monotonicNow()
    var partitions = 0
    /// Lag of each assigned partition; empty while unknown.
    var partitionLag: [TopicPartition: Int64] = [:]
    var state = NodeReport.State.starting
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
    private var thread: pthread_t?

    init(reportFd: Int32, controlFd: Int32, interval: Double, batchTimeout: Double) {
        self.reportFd = reportFd
        self.controlFd = controlFd
        self.interval = interval
        self.batchTimeout = batchTimeout
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
        r.handled = c.handled
        r.failed = c.failed
        r.inflight = Int64(c.inflight)
        r.inflightAgeMs = c.batchStartedAt.map { Int64((now - $0) * 1000) } ?? 0
        r.partitions = Int64(c.partitions)
        r.pollAgeMs = Int64((now - c.lastPollAt) * 1000)
        r.partitionLag = c.partitionLag
        r.lag = c.partitionLag.isEmpty ? -1 : c.partitionLag.values.reduce(0, +)
        if let started = c.batchStartedAt, now - started > batchTimeout {
            r.health = .unhealthy
            r.reason = UnhealthyReason.handlerStuck.rawValue
            r.detail = "one batch in the handler for \(Int(now - started)) s"
        } else if c.batchStartedAt == nil, now - c.lastPollAt > batchTimeout + 30 {
            r.health = .unhealthy
            r.reason = UnhealthyReason.pollStalled.rawValue
            r.detail = "no poll for \(Int(now - c.lastPollAt)) s"
        }
        return r
    }

    private func run() {
        var next = monotonicNow()
        var lines = LineBuffer(limit: 1024)
        var buffer = [UInt8](repeating: 0, count: 1024)
        while !stopping.load(ordering: .relaxed) {
            let now = monotonicNow()
            if now >= next {
                reportNow()
                next = now + interval
            }
            // Wake at least every 100 ms so stop() is prompt.
            let waitMs = Int32(max(1, min(100, (next - monotonicNow()) * 1000)))
            var pfd = pollfd(fd: controlFd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, waitMs)
            guard ready > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(controlFd, $0.baseAddress, $0.count) }
            if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) {
                supervisorGone.store(true, ordering: .relaxed)
                return
            }
            if n > 0 {
                for case .line(let l) in lines.feed(Array(buffer[0..<n])) {
                    if let cmd = NodeCommand(rawValue: String(decoding: l, as: UTF8.self)) {
                        commands.withLock { $0.append(cmd) }
                    }
                }
            }
        }
    }
}
