/// A node's health as status shows it, from its last report: `ok` while it
/// consumes or may (consuming, idle, waiting, a rebalance in progress),
/// `joining` before its first assignment, `degraded` when Kafka is the
/// problem (restarting would not help), `unhealthy` when the process is
/// (it is restarted), `unknown` before a first report, `down` with no process.
public enum NodeHealth: String, Codable, CaseIterable, Sendable {
    case ok, joining, degraded, unhealthy, unknown, down
}
