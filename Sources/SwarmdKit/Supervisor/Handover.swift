#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Shared

/// What an upgrading swarmd hands to the binary it re-executes, so that the
/// new one adopts every node without touching it: the whole core state
/// (`Swarm`: slots, processes, counters, mode, wanted count, readiness) and
/// the fds the nodes are watched through, which survive `execve` because
/// they are left open without close-on-exec. The process keeps its pid, its
/// children and its systemd MAINPID; the monotonic clock goes on, so every
/// deadline stays right.
///
/// Versioned: a swarmd refuses a format it does not know (it exits 70; the
/// nodes then see end of file on their control pipes, commit and exit, and
/// systemd restarts the service), rather than misreading one.
struct Handover: Codable {
    /// 2: this round's state (Kafka conditions, counters, autoscaler); a format-1 handover is refused.
    static let format = 2

    struct Node: Codable {
        var spawn: Int
        var pid: Int32
        var pidfd: Int32
        var reportFd: Int32
        var controlFd: Int32
        var watched: Bool
    }

    var format = Handover.format
    var swarm: Swarm
    var nodes: [Node]
    var nextSpawnId: Int
    var listenFd: Int32
    /// The HTTP listener, when `[http]` is on (optional: older handovers have none).
    var httpFd: Int32?
    var socketPath: String
    var configPath: String?
    var overridesNodes: Int?
    var overridesCommand: [String]?
    var executable: String
    /// Who asked, for the log of the new swarmd.
    var previousVersion: String

    /// Writes the handover to a memfd that stays open across exec; returns its fd.
    func write() throws -> Int32 {
        let bytes = try JSONValueEncoder().encode(self).serialized()
        let fd = bytes.withUnsafeBytes { swarm_sealed_memfd("swarmd-handover", $0.baseAddress, $0.count) }
        guard fd >= 0 else { throw SwarmError(.io, "memfd for the handover: \(errnoText())") }
        guard swarm_set_inheritable(fd) == 0 else {
            close(fd)
            throw SwarmError(.io, "handover fd: \(errnoText())")
        }
        return fd
    }

    /// Reads and closes the handover fd the previous swarmd left.
    static func read(fd: Int32) throws -> Handover {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(bytes.count)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw SwarmError(.usage, "cannot read the handover on fd \(fd): \(errnoText())") }
            if n == 0 { break }
            bytes += buffer[0..<n]
        }
        close(fd)
        let json = try JSONValue.parse(bytes)
        guard case .number(let f)? = json["format"], Int(f) == format else {
            throw SwarmError(.usage, "the handover's format is \(json["format"].map { $0.text } ?? "missing"); this swarmd reads format \(format) only")
        }
        // Settings added to swarm since the old swarmd was built take their defaults.
        var handover = json
        if case .object(var top) = json, case .object(var swarm)? = top["swarm"], let config = swarm["config"] {
            swarm["config"] = config.filling(from: try JSONValueEncoder().encode(SwarmConfig()))
            top["swarm"] = .object(swarm)
            handover = .object(top)
        }
        return try JSONValueDecoder().decode(Handover.self, from: handover)
    }

    /// Runs `binary --check` on the configuration before anything is handed
    /// over: a binary that does not run here, or refuses the running
    /// configuration, is refused while the old swarmd still runs everything.
    static func check(_ binary: String, configPath: String?) -> String? {
        guard access(binary, X_OK) == 0 else { return "\(binary) is not an executable file: \(errnoText())" }
        var out: [Int32] = [-1, -1]
        guard swarm_pipe(&out, 0, 0) == 0 else { return "pipe: \(errnoText())" }
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if devnull >= 0 { close(devnull) } }
        // Always a file: `--check` alone would check /etc/swarmd/swarmd.toml,
        // which is not what a swarmd started without a file runs.
        let argv = [binary, "--check", "--config", configPath ?? "/dev/null"]
        let maps = [swarm_fd_map(source: devnull, target: 0), swarm_fd_map(source: out[1], target: 1), swarm_fd_map(source: out[1], target: 2)]
        let env = currentEnvironment().map { "\($0.key)=\($0.value)" }
        let pid = withCStringArray(argv) { a in withCStringArray(env) { e in swarm_spawn(binary, a, e, maps, 3) } }
        close(out[1])
        guard pid > 0 else { close(out[0]); return "cannot run \(binary): \(errnoText(-pid))" }
        // Its output, then its status: a check takes milliseconds; a binary that hangs gets 10 s.
        var text: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var pfd = pollfd(fd: out[0], events: Int16(POLLIN), revents: 0)
        let deadline = monotonicNow() + 10
        while monotonicNow() < deadline, poll(&pfd, 1, 100) >= 0 {
            guard pfd.revents != 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(out[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            if text.count < 4096 { text += buffer[0..<n] }
        }
        close(out[0])
        // Its output ends a moment before it can be reaped: wait on its pidfd for what is left of the 10 s.
        let pidfd = swarm_pidfd_open(pid)
        var code: Int32 = 0, status: Int32 = 0
        var reaped = false
        if pidfd >= 0 {
            var wait = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            _ = poll(&wait, 1, Int32(saturating: max(1, (deadline - monotonicNow()) * 1000)))
            reaped = swarm_pidfd_reap(pidfd, &code, &status) == 1
            if !reaped {
                _ = swarm_pidfd_send_signal(pidfd, SIGKILL)
                _ = poll(&wait, 1, 1000)
                _ = swarm_pidfd_reap(pidfd, &code, &status)
            }
            close(pidfd)
        } else {
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            waitpid(pid, &raw, 0)
        }
        guard reaped else { return "\(binary) --check did not finish within 10 s" }
        let said = String(decoding: text, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        if code != 1 { return "\(binary) --check was killed by signal \(signalName(status))" }
        return status == 0 ? nil : "\(binary) --check refused the running configuration (exit \(status)): \(said)"
    }
}
