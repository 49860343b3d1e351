/// The supervisor's commands to a node, one per line on the node's control
/// pipe (fd 4). One type on both sides of the pipe, so the words cannot drift.
public enum NodeCommand: String, Sendable, CaseIterable {
    /// Stop fetching, commit, report `drained`, stay in the group (graceful stop, phase 1).
    case pause
    /// Commit and leave the subscription so the other nodes take the partitions.
    case drain
    /// Fetch again.
    case resume
    /// Hold still through a rebalance: commit what was handled and stop
    /// handling until the group's next assignment reaches this node (or
    /// `holdLimit` passes), then go on. Another node is about to join or
    /// leave; in the rebalance that follows a commit may be refused (the
    /// mock broker refuses all; a real one from the assignment's sync), so
    /// whatever a node handles between now and its revocation would be
    /// delivered again to the partition's next owner. Answered with a report
    /// whose `holds` counts it (after the commit), in any mode.
    case hold
    /// End a hold now, if holding (ignored otherwise): the change it was for
    /// is over (a rolled node's replacement consumes), whether or not an
    /// assignment reached this node.
    case release
    /// This node goes away for good (scale-down, the swarm stopping): on the
    /// TERM that follows, leave the group explicitly, so that its partitions
    /// move at once instead of after `session.timeout.ms` (static members
    /// send no LeaveGroup on close). Without it, a TERM keeps the static
    /// membership for the replacement (rolling restart, reload, memory).
    case leave

    /// The line written to the pipe.
    public var line: String { rawValue + "\n" }
}
