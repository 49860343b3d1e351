import Shared

/// Everything that can happen to the swarm, as the shell turns fds into it.
enum SwarmEvent: Equatable {
    /// swarmd is up: bring the swarm to its size.
    case start
    /// The shell started the process the core asked for in `spawn(slot:)`.
    case spawned(slot: Int, spawn: Int, pid: Int32)
    case spawnFailed(slot: Int, error: String)
    /// A node process ended (reaped through its pidfd).
    case exited(spawn: Int, cause: ExitCause)
    /// The newest of a node's reports.
    case report(spawn: Int, NodeReport)
    /// What a node's whole process tree uses, read once per report interval when a limit needs it.
    case memory(spawn: Int, NodeMemory)
    case malformedReport(spawn: Int, why: String)
    /// An operator's request, from the control socket or a signal.
    case command(SwarmCommand, from: CommandOrigin)
    /// Time passed: act on the deadlines that came due.
    case tick
}

/// Who asked: a signal or a control-socket peer. Only the socket gets a reply.
enum CommandOrigin: Equatable {
    case signal(String)
    /// `comm` is the peer's process name (/proc/PID/comm), for the log.
    case control(uid: UInt32, pid: Int32, comm: String = "")

    var isControl: Bool { if case .control = self { return true } else { return false } }
}

/// What an operator can ask for. `kill -TTIN` and `swarmctl scale +1` are
/// the same command, so they do exactly the same thing.
enum SwarmCommand: Equatable {
    case status
    case scale(ScaleTarget)
    case drain(slots: [Int]?)
    case resume(slots: [Int]?)
    case restart(slots: [Int]?)
    /// A configuration already read and validated by the shell.
    case reload(SwarmConfig)
    case stop(now: Bool)
    /// `swarmctl autoscale on|off`.
    case autoscale(on: Bool)

    var name: String {
        switch self {
        case .status: return "status"
        case .scale: return "scale"
        case .drain: return "drain"
        case .resume: return "resume"
        case .restart: return "restart"
        case .reload: return "reload"
        case .stop: return "stop"
        case .autoscale: return "autoscale"
        }
    }
}

/// What the core asks the shell to do, in order.
enum SwarmEffect: Equatable {
    /// Start a process for the slot; answer with `spawned` or `spawnFailed`.
    case spawn(slot: Int)
    case signal(spawn: Int, NodeSignal)
    /// One line on the node's control pipe (fd 4).
    case tell(spawn: Int, NodeCommand)
    case notify(SystemdMessage)
    /// The answer to the command being handled (control socket only).
    case reply(ControlResponse)
    /// Something for the log, typed (`SwarmLog`); the shell renders it to a line.
    case log(SwarmLog)
    /// Spawn nodes with this configuration from now on.
    case useConfig(SwarmConfig)
}

/// The systemd notifications the core decides on (WATCHDOG and STATUS are the shell's).
enum SystemdMessage: Equatable {
    case ready, reloading, stopping
}

extension CommandOrigin {
    var signalName: String {
        if case .signal(let name) = self { return name }
        return "swarmctl"
    }
}
