#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared
import SwarmKafka

/// Runs the user's own handler program, one per node, and talks to it over
/// its stdin and stdout with the framing of swarm-handler(7):
///
///     batch <count>\n
///     message <topic> <partition> <offset> <timestamp-ms> <key-len|-1> <value-len|-1> <header-count>\n
///     header <name-len> <value-len>\n<name><value>\n        (header-count times)
///     <key><value>\n
///
/// and reads one answer line per message: `ok`, `ok <n>` (the next n
/// messages), `fail <reason>`, or `defer`/`defer <n>` (not handled, deliver
/// again). A length of -1 is a null key or a null value (a tombstone). Its stderr is logged with the node's slot.
/// If it dies, the messages it had not answered count as failed (and are
/// retried by the failure policy, with a fresh process).
public final class ExecHandler: PipelinedHandler {
    let command: [String]
    let slot: Int
    let logger: Logger
    private var pid: pid_t = 0
    /// The program's pidfd: it is reaped through it, never by pid.
    private var pidfd: Int32 = -1
    private var stdinFd: Int32 = -1
    private var stdoutFd: Int32 = -1
    private var answers = LineBuffer(limit: 64 * 1024)
    private var stderrThread: pthread_t?

    /// A batch written to the program and not yet collected.
    private struct InFlight {
        let id: Int
        let count: Int
        /// Where its frame ends in the bytes written to the program since it started.
        let frameEnd: Int
        var outcomes: [HandleOutcome] = []
        var complete: Bool { outcomes.count == count }
    }
    /// Oldest first; at most `[handler] pipeline` (plus a retry) long.
    private var inFlight: [InFlight] = []
    private var nextBatch = 0
    /// Framed bytes not yet taken by the program's input pipe, from `outboxStart`.
    private var outbox: [UInt8] = []
    private var outboxStart = 0
    /// Bytes queued for, and written to, the current program.
    private var queued = 0
    private var written = 0

    /// The framing written to the program: 1 (text) or 2 (binary; see `frameV2`).
    let protocolVersion: Int

    /// How its stderr is logged (level, lines per second) and how long a stop may take.
    let stderrLevel: Logger.Level
    let stderrRate: Int
    let killTimeout: Double

    public init(command: [String], protocol: Int = 1, slot: Int, logger: Logger,
                stderrLevel: Logger.Level = .info, stderrRate: Int = 20, killTimeout: Double = 10) {
        self.command = command
        self.protocolVersion = `protocol`
        self.slot = slot
        self.logger = logger
        self.stderrLevel = stderrLevel
        self.stderrRate = stderrRate
        self.killTimeout = killTimeout
    }

    deinit { shutdown(now: false) }

    private func start() throws {
        guard let first = command.first, let program = resolveProgram(first, path: getenv("PATH").map { String(cString: $0) }) else {
            throw SwarmError(.handler, "handler program \"\(command.first ?? "")\" not found")
        }
        var input: [Int32] = [-1, -1], output: [Int32] = [-1, -1], errors: [Int32] = [-1, -1]
        guard swarm_pipe(&input, 0, 0) == 0, swarm_pipe(&output, 0, 0) == 0, swarm_pipe(&errors, 0, 0) == 0 else {
            let text = errnoText()
            for fd in input + output + errors where fd >= 0 { close(fd) }  // the pipes made before the one that failed
            throw SwarmError(.handler, "pipe: \(text)")
        }
        let maps = [swarm_fd_map(source: input[0], target: 0), swarm_fd_map(source: output[1], target: 1),
                    swarm_fd_map(source: errors[1], target: 2)]
        // The node's environment less swarm's plumbing (swarm-handler(7)); the
        // node's configuration never was in it (fd 5, closed), so no Kafka
        // property, secret or not, reaches the handler.
        var environment = currentEnvironment().filter { !NodeEnvironment.internalNames.contains($0.key) }
        environment[NodeEnvironment.handlerProtocol] = String(protocolVersion)
        let env = environment.map { "\($0.key)=\($0.value)" }
        let child = withCStringArray(command) { argv in
            withCStringArray(env) { envp in swarm_spawn(program, argv, envp, maps, 3) }
        }
        close(input[0]); close(output[1]); close(errors[1])
        guard child > 0 else {
            close(input[1]); close(output[0]); close(errors[0])
            throw SwarmError(.handler, "cannot start \(program): \(errnoText(-child))")
        }
        // The child is ours and unreaped: its pid cannot be reused before this.
        pidfd = swarm_pidfd_open(child)
        guard pidfd >= 0 else {
            let text = errnoText()
            kill(child, SIGKILL)
            var status: Int32 = 0
            waitpid(child, &status, 0)
            close(input[1]); close(output[0]); close(errors[0])
            throw SwarmError(.handler, "pidfd_open(\(child)): \(text)")
        }
        pid = child
        stdinFd = input[1]
        _ = swarm_set_nonblocking(stdinFd, 1)
        // A pipelined batch fits its input pipe whole (1 MiB, Linux's limit
        // for an unprivileged process; best effort): the program finds the
        // next batch waiting while the node fetches the one after.
        _ = fcntl(stdinFd, 1031 /* F_SETPIPE_SZ */, 1 << 20)
        stdoutFd = output[0]
        answers = LineBuffer(limit: 64 * 1024)
        outbox = []
        outboxStart = 0
        queued = 0
        written = 0
        let errFd = errors[0]
        let logger = self.logger
        let meta: Logger.Metadata = ["slot": "\(slot)", "handler_pid": "\(child)"]
        let level = stderrLevel
        var limiter = LineRateLimiter(linesPerSecond: Double(stderrRate), burst: stderrRate * 10, now: monotonicNow())
        stderrThread = startThread(name: "handler-stderr") {
            var lines = LineBuffer(limit: 8192)
            var buffer = [UInt8](repeating: 0, count: 4096)
            func suppressed(_ n: Int) {
                logger.warning("handler stderr: suppressed \(n) line\(n == 1 ? "" : "s") (more than stderr_rate)", metadata: meta)
            }
            while true {
                let n = buffer.withUnsafeMutableBytes { read(errFd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                for case .line(let l) in lines.feed(Array(buffer[0..<n])) {
                    switch limiter.admit(now: monotonicNow()) {
                    case .pass(let before):
                        if before > 0 { suppressed(before) }
                        logger.log(level: level, "handler: \(String(decoding: l, as: UTF8.self))", metadata: meta)
                    case .drop(let report):
                        if let report { suppressed(report) }
                    }
                }
            }
            if limiter.pending > 0 { suppressed(limiter.pending) }
            close(errFd)
        }
        logger.info("handler started", metadata: ["slot": "\(slot)", "handler_pid": "\(child)", "command": "\(command.joined(separator: " "))"])
    }

    /// Ends the program and waits for it; says how it ended.
    ///
    /// The program is its whole process group (it was spawned as the group's
    /// leader): what it started goes with it. Gracefully: EOF on its input,
    /// then TERM to the group after half of `kill_timeout`, then KILL after
    /// three quarters, so the node's own stop (TERM, KILL at `kill_timeout`)
    /// still has time to commit. Measured before: a handler `sh -c '…; sleep
    /// 1000'` left its `sleep` behind at every restart, 7 orphans in 14 minutes.
    private func reap(kill force: Bool) -> String {
        guard pid > 0 else { return "not running" }
        if stdinFd >= 0 { close(stdinFd); stdinFd = -1 }
        if stdoutFd >= 0 { close(stdoutFd); stdoutFd = -1 }
        // The leader is our unreaped child until `pidfd_reap` below, so its pid,
        // and with it the group id, cannot be reused while these signals go out.
        let group = pid
        if force { _ = kill(-group, SIGKILL) }
        // The pidfd becomes readable when the program exits: no polling.
        var pfd = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        if !force && poll(&pfd, 1, Int32(saturating: killTimeout * 500)) == 0 {
            logger.warning("handler still running \(killTimeout / 2) s after the end of its input: TERM", metadata: ["slot": "\(slot)", "handler_pid": "\(group)"])
            _ = kill(-group, SIGTERM)
            pfd.revents = 0
            if poll(&pfd, 1, Int32(saturating: killTimeout * 250)) == 0 {
                logger.error("handler ignored TERM for \(killTimeout / 4) s: KILL", metadata: ["slot": "\(slot)", "handler_pid": "\(group)"])
                _ = kill(-group, SIGKILL)
            }
        }
        // Whatever the program left in its group goes with it.
        _ = kill(-group, SIGKILL)
        var code: Int32 = 0, status: Int32 = 0
        while swarm_pidfd_reap(pidfd, &code, &status) == 0 {
            pfd.revents = 0
            _ = poll(&pfd, 1, 1000)
        }
        close(pidfd)
        pidfd = -1
        pid = 0
        if let t = stderrThread { pthread_join(t, nil); stderrThread = nil }
        switch code {
        case 1: return "exited with status \(status)"
        case 2, 3: return "killed by signal \(signalName(status))"
        default: return "ended (code \(code), status \(status))"
        }
    }

    public func handle(_ batch: [KafkaMessage], shouldAbort: () -> Bool) -> [HandleOutcome] {
        let id = submit(batch)
        return take(id, shouldAbort: shouldAbort)
    }

    /// Writes a batch to the program without waiting for its answers (as
    /// much of it as its input pipe takes now; the rest while answers are
    /// read) and returns its ticket. Answers come back in the order batches
    /// were written: `collect` takes the oldest.
    @discardableResult
    public func submit(_ batch: [KafkaMessage]) -> Int {
        let id = nextBatch
        nextBatch += 1
        if pid == 0 {
            do { try start() } catch {
                logger.error("\(error)", metadata: ["slot": "\(slot)"])
                inFlight.append(InFlight(id: id, count: batch.count, frameEnd: queued,
                                         outcomes: Array(repeating: .failed("\(error)"), count: batch.count)))
                return id
            }
        }
        let frame = protocolVersion == 2 ? Self.frameV2(batch) : Self.frame(batch)
        if outbox.count == outboxStart { outbox = frame; outboxStart = 0 } else { outbox += frame }
        queued += frame.count
        inFlight.append(InFlight(id: id, count: batch.count, frameEnd: queued))
        writeSome()
        return id
    }

    /// The outcomes of the oldest batch not yet collected, waiting for them
    /// if need be; fewer than its messages when `shouldAbort` turned true.
    public func collect(shouldAbort: () -> Bool) -> [HandleOutcome] {
        guard let oldest = inFlight.first else { return [] }
        return take(oldest.id, shouldAbort: shouldAbort)
    }

    /// Reads answers (and writes what is queued) until batch `id` is
    /// answered, then hands its outcomes over. Answers for batches written
    /// before it are kept for their own `collect`.
    private func take(_ id: Int, shouldAbort: () -> Bool) -> [HandleOutcome] {
        while let i = inFlight.firstIndex(where: { $0.id == id }), !inFlight[i].complete {
            if shouldAbort() { return inFlight.remove(at: i).outcomes }
            pump()
        }
        guard let i = inFlight.firstIndex(where: { $0.id == id }) else { return [] }
        return inFlight.remove(at: i).outcomes
    }

    /// One turn of the I/O loop: writes what is queued and reads answers,
    /// waiting at most 100 ms. Writing and reading in one loop: a handler
    /// that answers while it reads must never block on a full stdout pipe
    /// while the node blocks on its full stdin pipe.
    private func pump() {
        guard pid > 0 else { return crashed("is not running") }
        var fds = [pollfd(fd: stdoutFd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: stdinFd, events: Int16(POLLOUT), revents: 0)]
        let writing = outboxStart < outbox.count
        let ready = poll(&fds, writing ? 2 : 1, 100)
        if ready == 0 || (ready < 0 && errno == EINTR) { return }
        if writing && fds[1].revents != 0 && !writeSome() { return }
        guard fds[0].revents != 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 16384)
        let n = buffer.withUnsafeMutableBytes { read(stdoutFd, $0.baseAddress, $0.count) }
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return }
        if n <= 0 { return crashed("exited") }
        for item in answers.feed(Array(buffer[0..<n])) {
            guard case .line(let bytes) = item else { return crashed("sent an answer longer than 64 KiB") }
            guard let answer = ExecAnswer.parse(bytes) else {
                return crashed("broke the protocol with \"\(String(decoding: bytes.prefix(80), as: UTF8.self))\"")
            }
            if answer == .blank { continue }
            // Answers fill the oldest unanswered batch; none spans two batches.
            guard let i = inFlight.firstIndex(where: { !$0.complete }) else { return crashed("answered more messages than it was given") }
            guard answer.count <= inFlight[i].count - inFlight[i].outcomes.count else {
                return crashed("answered more messages than it was given")
            }
            switch answer {
            case .ok(let n): inFlight[i].outcomes += repeatElement(.ok, count: n)
            case .deferred(let n): inFlight[i].outcomes += repeatElement(.deferred, count: n)
            case .fail(let reason): inFlight[i].outcomes.append(.failed(reason))
            case .blank: break
            }
            if inFlight[i].complete && written < inFlight[i].frameEnd { return crashed("answered before reading its whole batch") }
        }
    }

    /// Writes what the program's input pipe takes now; false when the program stopped reading.
    @discardableResult
    private func writeSome() -> Bool {
        while outboxStart < outbox.count {
            let n = outbox.withUnsafeBytes { write(stdinFd, $0.baseAddress! + outboxStart, $0.count - outboxStart) }
            if n > 0 {
                outboxStart += n
                written += n
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && errno == EAGAIN {
                break
            } else {
                crashed("stopped reading its input")
                return false
            }
        }
        if outboxStart == outbox.count { outbox = []; outboxStart = 0 }
        return true
    }

    /// The program broke the protocol or died: it is ended, and every message
    /// it had not answered counts as lost (not known to be its fault).
    private func crashed(_ why: String) {
        let cause = reap(kill: true)
        logger.error("handler \(why): \(cause)", metadata: ["slot": "\(slot)"])
        for i in inFlight.indices where !inFlight[i].complete {
            inFlight[i].outcomes += repeatElement(.lost("handler \(why) (\(cause))"), count: inFlight[i].count - inFlight[i].outcomes.count)
        }
    }

    /// The bytes of one batch, as swarm-handler(7) describes.
    static func frame(_ batch: [KafkaMessage]) -> [UInt8] {
        var out = Array("batch \(batch.count)\n".utf8)
        for m in batch {
            let headers = m.headers
            let keyLength = m.withKey { $0.map { $0.count } ?? -1 }
            let valueLength = m.isTombstone ? -1 : m.withValue { $0.count }
            out += Array("message \(m.topic) \(m.partition) \(m.offset) \(m.timestamp) \(keyLength) \(valueLength) \(headers.count)\n".utf8)
            for h in headers {
                let name = Array(h.name.utf8)
                out += Array("header \(name.count) \(h.value.count)\n".utf8)
                out += name
                out += h.value
                out.append(UInt8(ascii: "\n"))
            }
            m.withKey { if let k = $0 { out.append(contentsOf: k) } }
            m.withValue { out.append(contentsOf: $0) }
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// The bytes of one batch in framing 2, for handlers that read a batch in
    /// one read and slice it (the kits in contrib; swarm-handler(7)
    /// draws it): a 24-byte header ("SWB2", u32 message count, u32 header
    /// count, u32 topic count, u64 length of the rest), then fixed-size
    /// records — 64 bytes per message (u32 topic index, i32 partition, i64
    /// offset, i64 timestamp, i64 start and end of the key, of the value, u32
    /// first header, u32 header count), 32 per header (name start and end,
    /// value start and end), 16 per topic (start, end) — and last the bytes
    /// they point into. Positions count from the first record; a start of -1
    /// is null. Little-endian.
    ///
    /// Why records rather than each message's bytes in line (the first
    /// version): a Python reader then walks the records with
    /// `struct.iter_unpack`, a loop in C, and only slices in Python. Measured
    /// on 500-message batches of 16-byte values: 1,500 ns per message to
    /// parse inline headers one `unpack_from` at a time, 710 ns over records.
    static func frameV2(_ batch: [KafkaMessage]) -> [UInt8] {
        // Pass 1, the sizes. Per message only what is cheap: a batch is mostly
        // one topic (the consumer shares one String per topic, so == is a
        // pointer compare) and mostly without headers (counted in C, copied
        // only when there).
        var topics: [String] = []
        var topicOf = [UInt32](repeating: 0, count: batch.count)
        var keyLen = [Int](repeating: -1, count: batch.count)
        var valueLen = [Int](repeating: -1, count: batch.count)
        var headersOf: [Int: [(name: String, value: [UInt8])]] = [:]
        var headerCount = 0
        var dataSize = 0
        var last = -1
        for (i, m) in batch.enumerated() {
            if last < 0 || topics[last] != m.topic {
                last = topics.firstIndex(of: m.topic) ?? {
                    topics.append(m.topic)
                    dataSize += m.topic.utf8.count
                    return topics.count - 1
                }()
            }
            topicOf[i] = UInt32(last)
            if m.headerCount > 0 {
                let headers = m.headers
                headersOf[i] = headers
                headerCount += headers.count
                for h in headers { dataSize += h.name.utf8.count + h.value.count }
            }
            m.withKey { if let k = $0 { keyLen[i] = k.count; dataSize += k.count } }
            if !m.isTombstone { m.withValue { valueLen[i] = $0.count; dataSize += $0.count } }
        }
        // Pass 2: one allocation, written in place.
        let recordsSize = batch.count * 64 + headerCount * 32 + topics.count * 16
        let total = 24 + recordsSize + dataSize
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            var at = 0  // where the next record goes
            func put<T: FixedWidthInteger>(_ v: T) {
                base.storeBytes(of: v.littleEndian, toByteOffset: at, as: T.self)
                at += MemoryLayout<T>.size
            }
            var data = 24 + recordsSize  // where the next bytes go, from the start of the frame
            func copy(_ bytes: UnsafeRawBufferPointer) {
                if let p = bytes.baseAddress, bytes.count > 0 { (base + data).copyMemory(from: p, byteCount: bytes.count) }
                data += bytes.count
            }
            func span(_ count: Int) {  // a start and end in the data, counted from the first record
                put(Int64(data - 24))
                put(Int64(data - 24 + count))
            }
            base.copyMemory(from: "SWB2", byteCount: 4)
            at = 4
            put(UInt32(batch.count))
            put(UInt32(headerCount))
            put(UInt32(topics.count))
            put(UInt64(recordsSize + dataSize))
            // The data area in order: topics, then each message's headers, key and value.
            var topicSpans: [(Int64, Int64)] = []
            for var t in topics {
                let start = Int64(data - 24)
                t.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
                topicSpans.append((start, Int64(data - 24)))
            }
            var headerSpans: [(Int64, Int64, Int64, Int64)] = []
            var firstHeader: UInt32 = 0
            for (i, m) in batch.enumerated() {
                let headers = headersOf[i] ?? []
                for h in headers {
                    let nameStart = Int64(data - 24)
                    var name = h.name
                    name.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
                    let valueStart = Int64(data - 24)
                    h.value.withUnsafeBytes { copy($0) }
                    headerSpans.append((nameStart, valueStart, valueStart, Int64(data - 24)))
                }
                put(topicOf[i])
                put(m.partition)
                put(m.offset)
                put(m.timestamp)
                if keyLen[i] >= 0 { span(keyLen[i]); m.withKey { copy($0!) } } else { put(Int64(-1)); put(Int64(-1)) }
                if valueLen[i] >= 0 { span(valueLen[i]); m.withValue { copy($0) } } else { put(Int64(-1)); put(Int64(-1)) }
                put(firstHeader)
                put(UInt32(headers.count))
                firstHeader += UInt32(headers.count)
            }
            for (a, b, c, d) in headerSpans { put(a); put(b); put(c); put(d) }
            for (a, b) in topicSpans { put(a); put(b) }
            precondition(at == 24 + recordsSize && data == total, "framing 2: sizes computed and written differ")
            initialized = total
        }
    }

    public func shutdown(now: Bool) {
        guard pid > 0 else { return }
        let cause = reap(kill: now)
        logger.info("handler stopped: \(cause)", metadata: ["slot": "\(slot)"])
    }
}
