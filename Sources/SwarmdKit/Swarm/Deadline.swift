/// Everything the core waits for in time, one case per kind: the swarm's
/// one timer table (quinn-proto's `Timer` is the model).
///
/// `Swarm.deadlines()` lists the armed ones with their times. The shell
/// wakes at the earliest (`Swarm.nextDeadline()`), and the core acts on
/// exactly the ones due in that same list: the per-slot ones on a tick
/// (`Swarm.checkDeadlines`), the swarm-wide ones in the step that owns
/// them (`Swarm.isDue`). One list for both, so "when do I wake" and "what
/// fired" cannot disagree: the shell never wakes for a deadline the core
/// does not see as due, and never sleeps through one it does.
enum Deadline: Hashable {
    /// A slot's restart backoff ends: its node is started again.
    case respawn(slot: Int)
    /// A stopping node's grace (`kill_timeout`, or what is left of
    /// `shutdown_timeout`) ends: it is KILLed.
    case kill(slot: Int)
    /// A node sent no report for `report_timeout`: it is hung and stopped.
    case report(slot: Int)
    /// The graceful stop's pause (every node commits before any leaves)
    /// ends: the nodes are stopped, paused or not.
    case pause
    /// The commit barrier's limit: the held changes go out without every commit.
    case barrier
    /// The settle gate's quiet time after a change ends: from then on, a
    /// settled group lets the queued changes out.
    case settleQuiet
    /// The settle gate's limit: the queued changes go out, settled or not.
    case settleLimit
    /// `ready_timeout` since the start: READY goes out, consuming or not.
    case ready
    /// A rolled node's replacement had `ready_timeout` to consume: the roll goes on.
    case rollReplacement
}
