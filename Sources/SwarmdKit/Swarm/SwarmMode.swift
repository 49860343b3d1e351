import Shared

extension Swarm {
    /// What the swarm as a whole is doing. The stop sequence's steps carry
    /// their own deadlines, so no deadline is armed outside the step it
    /// belongs to (`Swarm.deadlines()` reads them from here):
    ///
    ///     running ⇄ reloading
    ///        │ TERM, swarmctl stop
    ///        ├──▶ pausing(until:, stopBy:) ──all paused, or until──▶ stopping
    ///        │    (built-in nodes: commit while the group is stable)
    ///        ├──▶ stopping  (custom node_command: nothing to pause)
    ///        └──▶ quitting  (QUIT, a second TERM; from any state)
    ///
    /// `stopping` and `quitting` keep no deadline of their own: each node's
    /// KILL time is in its stop order (`NodeState.stopping`).
    enum Mode: Equatable {
        case running
        /// Rolling the nodes onto a new configuration.
        case reloading
        /// Graceful stop, phase 1: built-in nodes pause and commit while the
        /// group is stable; TERM goes out once all paused or at `until`, and
        /// the nodes get until `stopBy` (`shutdown_timeout` after the stop
        /// began) before KILL.
        case pausing(until: Double, stopBy: Double)
        /// Graceful stop, phase 2: TERM sent; each node's KILL at its stop order's deadline.
        case stopping
        /// Immediate stop: QUIT sent; KILL after `quit_timeout`.
        case quitting

        /// As status names it: both phases of a graceful stop are `stopping`.
        var status: SwarmStatusState {
            switch self {
            case .running: return .running
            case .reloading: return .reloading
            case .pausing, .stopping: return .stopping
            case .quitting: return .quitting
            }
        }

        var isStopping: Bool {
            switch self {
            case .running, .reloading: return false
            case .pausing, .stopping, .quitting: return true
            }
        }

        var isPausing: Bool {
            if case .pausing = self { return true }
            return false
        }

        /// The name on the handover's wire (format 2's `mode`, as the
        /// payload-free enum it was encoded), with the
        /// pause's two deadlines beside it (`pauseDeadline`, `stopDeadline`).
        enum Name: Codable {
            case running, reloading, pausing, stopping, quitting
        }

        var name: Name {
            switch self {
            case .running: return .running
            case .reloading: return .reloading
            case .pausing: return .pausing
            case .stopping: return .stopping
            case .quitting: return .quitting
            }
        }
    }
}
