/// What swarmd does with a child that is not a node. swarmd is a child
/// subreaper (and may be a container's PID 1), so processes come to it from
/// two places: a node that is gone (its handler, what either started), and a
/// node that is alive but double-forked something (a daemonizing helper, a
/// shell's `( cmd & )`). The first are killed, since nothing they do can be
/// committed and no handler may outlive its node; the second belong to a
/// running node and are left alone until they end or their node does.
///
/// Ownership is read from the process group, which a process keeps across
/// a double fork: every node leads a group of its own (swarm_spawn sets
/// POSIX_SPAWN_SETPGROUP), and so does its handler. A group id cannot be
/// reused as a pid while the group has members, so a group named after a
/// live node, or after a live child of one, is that node's.
enum Orphans {
    enum Verdict: Equatable {
        /// It belongs to a running node: left alone, reaped when it ends.
        case leave
        /// Left behind by a node that is gone (or by anything else): killed,
        /// with its whole process group when it leads one (a handler).
        case kill(group: Bool)
    }

    /// - Parameters:
    ///   - pid: the child that is not a node.
    ///   - group: its process group id (nil if it could not be read).
    ///   - groupLeaderParent: the parent of the process whose pid is `group`
    ///     (nil if that process is gone): a handler's parent is its node.
    ///   - nodes: the pids of the nodes that are alive.
    static func verdict(pid: Int32, group: Int32?, groupLeaderParent: Int32?, nodes: Set<Int32>) -> Verdict {
        guard let group else { return .kill(group: false) }
        if nodes.contains(group) { return .leave }                  // the node's own group
        if group != pid, let parent = groupLeaderParent, nodes.contains(parent) { return .leave }  // its handler's group
        return .kill(group: group == pid)
    }
}
