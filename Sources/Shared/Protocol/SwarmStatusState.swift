/// What the swarm as a whole is doing, as status shows it: `running`,
/// `reloading` (a new configuration goes out), `stopping` (graceful: nodes
/// pause and commit, then TERM) or `quitting` (QUIT: at once).
public enum SwarmStatusState: String, Codable, CaseIterable, Sendable {
    case running, reloading, stopping, quitting
}
