import Shared

/// Where one node slot is in its life, as the supervisor sees it.
///
///     backoff ──spawn──▶ starting ──healthy report──▶ running ◀──resume── drained
///        ▲                  │                           │   └──drain──▶ draining ──▶ drained
///        │                  └───── hung / unhealthy / over memory / restart / scale down ──▶ stopping
///        └──────────────── exit (crash, or stopped to be replaced) ◀─────────────────────────┘
///
/// A slot that is not wanted any more (scaled down, swarm stopping) is removed
/// at its exit instead of going to `backoff`.
enum NodeState: Equatable {
    /// Spawned; waiting for the first healthy report.
    case starting
    /// Reporting healthy.
    case running
    /// Told to drain; waiting for it to report `state=drained`.
    case draining
    /// Idle: not fetching, everything handled committed.
    case drained
    /// Told to stop (TERM or QUIT); KILL follows at the deadline.
    case stopping
    /// No process; the next one is spawned at the deadline.
    case backoff

    var name: String {
        switch self {
        case .starting: return "starting"
        case .running: return "running"
        case .draining: return "draining"
        case .drained: return "drained"
        case .stopping: return "stopping"
        case .backoff: return "backoff"
        }
    }

    /// True while a process exists for the slot.
    var hasProcess: Bool { self != .backoff }
}

/// Why the supervisor stops a node: shown in logs and in `last_exit`.
enum StopReason: Equatable {
    case hung
    case unhealthy(Int)
    case overMemory(Int64)
    case restart
    case scaleDown
    case shutdown
    case quit

    var text: String {
        switch self {
        case .hung: return "hung (no report)"
        case .unhealthy(let r): return "unhealthy: \(UnhealthyReason.describe(r))"
        case .overMemory(let b): return "over memory limit (rss \(b / 1024 / 1024) MiB)"
        case .restart: return "restart requested"
        case .scaleDown: return "scaled down"
        case .shutdown: return "swarm stopping"
        case .quit: return "swarm stopping now"
        }
    }

    /// Failures count toward backoff; operator-requested stops do not.
    var isFailure: Bool {
        switch self {
        case .hung, .unhealthy, .overMemory: return true
        default: return false
        }
    }
}

