#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Shared

/// Starts node processes with posix_spawn (never fork: the Swift runtime's
/// threads and locks do not survive it). Each node gets:
/// - fd 0 from /dev/null, fds 1 and 2 shared with swarmd (its log),
/// - fd 3: the write end of its report pipe,
/// - fd 4: the read end of its control pipe (EOF there = swarmd is gone),
/// - fd 5 (built-in nodes): its configuration, in a sealed memfd,
/// - a clean signal mask, default dispositions, its own process group,
/// - `SWARM_*` variables naming its slot, id and fds.
/// Every other fd of swarmd is close-on-exec, so nothing else leaks in.
final class Spawner {
    /// The program and arguments; empty for swarmd's built-in node.
    var command: [String]
    var instancePrefix: String
    var reportInterval: Double
    /// The configuration handed to built-in nodes, as JSON in a sealed memfd
    /// (-1 if it could not be made: spawning built-in nodes then fails, loudly).
    let nodeConfigFd: Int32
    let nodeConfigError: String?
    var baseEnvironment: [String: String]

    struct Spawned {
        let pid: Int32
        let pidfd: Int32
        let reportFd: Int32
        let controlFd: Int32
    }

    init(config: SwarmConfig, environment: [String: String]) {
        command = config.supervisor.nodeCommand
        instancePrefix = config.supervisor.instancePrefix.isEmpty ? hostName() : config.supervisor.instancePrefix
        reportInterval = config.supervisor.reportInterval
        let json = (try? JSONValueEncoder().encode(config).serialized()) ?? Array("{}".utf8)
        nodeConfigFd = json.withUnsafeBytes { swarm_sealed_memfd("swarmd-node-config", $0.baseAddress, $0.count) }
        nodeConfigError = nodeConfigFd < 0 ? "memfd for the node configuration: \(errnoText())" : nil
        var env = environment
        // systemd's per-service variables belong to swarmd alone: a node that
        // saw NOTIFY_SOCKET could send READY=1 on our behalf.
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
            env[name] = nil
        }
        baseEnvironment = env
    }

    deinit {
        if nodeConfigFd >= 0 { close(nodeConfigFd) }
    }

    func nodeId(slot: Int) -> String { "\(instancePrefix)-\(slot)" }

    func spawn(slot: Int) throws -> Spawned {
        if command.isEmpty, let nodeConfigError { throw SwarmError(.spawn, nodeConfigError) }
        var report: [Int32] = [-1, -1]
        var control: [Int32] = [-1, -1]
        guard swarm_pipe(&report, 1, 0) == 0 else { throw SwarmError(.spawn, "pipe: \(errnoText())") }
        guard swarm_pipe(&control, 0, 1) == 0 else {
            close(report[0]); close(report[1])
            throw SwarmError(.spawn, "pipe: \(errnoText())")
        }
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer {
            close(report[1])
            close(control[0])
            if devnull >= 0 { close(devnull) }
        }

        var env = baseEnvironment
        env[NodeEnvironment.slot] = String(slot)
        env[NodeEnvironment.nodeId] = nodeId(slot: slot)
        env[NodeEnvironment.reportFdName] = String(NodeEnvironment.reportFd)
        env[NodeEnvironment.controlFdName] = String(NodeEnvironment.controlFd)
        env[NodeEnvironment.reportInterval] = String(reportInterval)
        env[NodeEnvironment.supervisorPid] = String(getpid())
        let path: String
        let argv: [String]
        if command.isEmpty {
            path = "/proc/self/exe"
            // argv[0] is not "swarmd", so `pidof swarmd` finds the supervisor alone.
            argv = ["swarmd-node", "node"]
        } else {
            path = command[0]
            argv = command
        }

        var maps = [
            swarm_fd_map(source: report[1], target: NodeEnvironment.reportFd),
            swarm_fd_map(source: control[0], target: NodeEnvironment.controlFd),
        ]
        if devnull >= 0 { maps.insert(swarm_fd_map(source: devnull, target: 0), at: 0) }
        if command.isEmpty { maps.append(swarm_fd_map(source: nodeConfigFd, target: NodeEnvironment.configFd)) }

        let envStrings = env.map { "\($0.key)=\($0.value)" }
        let pid = withCStringArray(argv) { cArgv in
            withCStringArray(envStrings) { cEnv in
                swarm_spawn(path, cArgv, cEnv, maps, Int32(maps.count))
            }
        }
        guard pid > 0 else {
            close(report[0]); close(control[1])
            throw SwarmError(.spawn, "cannot start \(path): \(errnoText(-pid))")
        }
        // The child is ours and unreaped, so its pid cannot be reused before this.
        let pidfd = swarm_pidfd_open(pid)
        guard pidfd >= 0 else {
            let code = errno
            kill(pid, SIGKILL)
            close(report[0]); close(control[1])
            throw SwarmError(.spawn, "pidfd_open(\(pid)): \(errnoText(code))")
        }
        return Spawned(pid: pid, pidfd: pidfd, reportFd: report[0], controlFd: control[1])
    }
}
