/// A node's state as status shows it (`swarmctl status`, its JSON, the
/// page, `swarm_nodes{state}`, the cluster record): the one vocabulary
/// swarmd writes and swarmctl waits on. `crash-looping` is a slot in
/// backoff that failed `crash_loop_after` times in a row; the others are
/// the phases of swarmd's transition table (`NodeState`).
public enum NodeStatusState: String, Codable, CaseIterable, Sendable {
    case starting, running, draining, drained, stopping, backoff
    case crashLooping = "crash-looping"

    /// A process that consumes, or may again without a restart: what
    /// `running` counts and what `swarmctl scale` waits for.
    public var isUp: Bool { self == .running || self == .draining || self == .drained }
}
