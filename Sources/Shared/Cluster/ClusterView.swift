/// The cluster as the status topic tells it: every swarm in one consumer
/// group, live or stale, who owns each partition, which partitions nobody
/// owns, and the group's lag. Pure: built from records, the topics'
/// partition counts and the time, so tests drive it without a broker.
public struct ClusterView: Codable, Equatable, Sendable {
    public struct Swarm: Codable, Equatable, Sendable {
        public var record: ClusterRecord
        /// Seconds since it last wrote.
        public var ageS: Double
        /// No record for longer than `stale_after`: its host (or swarmd) is gone.
        public var stale: Bool
    }

    public struct Owner: Codable, Equatable, Sendable {
        public var topic: String
        public var partition: Int32
        /// `<prefix>/<slot>`, or nil when no live swarm's node holds it.
        public var owner: String?
        public var host: String?
        public var lag: Int64?
    }

    public var group: String
    public var swarms: [Swarm]
    public var partitions: [Owner]
    /// Partitions no live node holds (while a group rebalances, or after a
    /// host died until its session times out).
    public var unowned: [String]
    /// Lag summed over the partitions live nodes hold.
    public var lag: Int64
    public var staleAfterS: Double

    /// `records` by key (latest per key, tombstones already removed);
    /// `topics` the consumed topics' partition counts; `now` Unix seconds.
    public init(group: String, records: [ClusterRecord], topics: [String: Int], now: Double, staleAfter: Double) {
        self.group = group
        self.staleAfterS = staleAfter
        swarms = records.filter { $0.group == group }
            .sorted { ($0.host, $0.prefix) < ($1.host, $1.prefix) }
            .map { Swarm(record: $0, ageS: max(0, now - $0.at), stale: now - $0.at > staleAfter) }
        var held: [String: (owner: String, host: String, lag: Int64)] = [:]
        for s in swarms where !s.stale {
            for n in s.record.nodes {
                for p in n.partitions { held["\(p.topic)/\(p.partition)"] = ("\(s.record.prefix)/\(n.slot)", s.record.host, p.lag) }
            }
        }
        var all: [Owner] = []
        for topic in topics.keys.sorted() {
            for p in 0..<Int32(topics[topic]!) {
                let h = held["\(topic)/\(p)"]
                all.append(Owner(topic: topic, partition: p, owner: h?.owner, host: h?.host, lag: h?.lag))
            }
        }
        partitions = all
        unowned = all.filter { $0.owner == nil }.map { "\($0.topic)/\($0.partition)" }
        lag = all.compactMap(\.lag).reduce(0) { $0.addingSaturating($1) }
    }

    /// Healthy: every swarm live, every node of each healthy, every partition owned.
    public var healthy: Bool {
        unowned.isEmpty && !swarms.isEmpty && swarms.allSatisfy { !$0.stale && $0.record.healthy == $0.record.wanted }
    }

    /// The table `swarmctl status --cluster` prints.
    public func render() -> String {
        var out = "group \(group): \(swarms.filter { !$0.stale }.count) live swarm(s)"
        let stale = swarms.filter(\.stale).count
        if stale > 0 { out += ", \(stale) STALE" }
        out += ", \(partitions.count) partitions, \(unowned.count) unowned, lag \(lag)\n\n"
        var rows = [["HOST", "PREFIX", "PID", "STATE", "NODES", "HEALTHY", "RATE", "LAG", "AGE", "VERSION"]]
        for s in swarms {
            let r = s.record
            rows.append([r.host, r.prefix, "\(r.pid)", s.stale ? "STALE" : r.state, "\(r.running)/\(r.wanted)", "\(r.healthy)",
                         "\(Int(saturating: r.rate.rounded()))/s", "\(r.lag)", "\(Int(saturating: s.ageS.rounded()))s", r.version.split(separator: " ").first.map(String.init) ?? r.version])
        }
        out += Self.table(rows)
        out += "\n"
        var owners = [["PARTITION", "OWNER", "HOST", "LAG"]]
        for p in partitions {
            owners.append(["\(p.topic)/\(p.partition)", p.owner ?? "-", p.host ?? "-", p.lag.map { "\($0)" } ?? "-"])
        }
        out += Self.table(owners)
        if !unowned.isEmpty { out += "\nunowned: \(unowned.joined(separator: ", "))\n" }
        return out
    }

    static func table(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2) }.joined()
        }.joined(separator: "\n") + "\n"
    }

    /// The latest record per key, tombstones removing theirs, unreadable ones skipped.
    public static func latest(_ records: [(key: [UInt8], value: [UInt8]?)]) -> [ClusterRecord] {
        var byKey: [[UInt8]: ClusterRecord] = [:]
        fold(records, into: &byKey)
        return Array(byKey.values)
    }

    /// Applies records read from the status topic, in order, to the latest
    /// per key (a reader that follows the topic keeps `byKey` between reads).
    public static func fold(_ records: [(key: [UInt8], value: [UInt8]?)], into byKey: inout [[UInt8]: ClusterRecord]) {
        for r in records {
            if let value = r.value, let record = ClusterRecord.decode(value) { byKey[r.key] = record } else if r.value == nil { byKey[r.key] = nil }
        }
    }
}
