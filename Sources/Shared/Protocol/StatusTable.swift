/// Renders `SwarmStatus` as the table `swarmctl status` prints. In Shared so
/// that swarmd's tests and swarmctl print the same thing.
public enum StatusTable {
    public static func render(_ s: SwarmStatus) -> String {
        var out = "swarmd pid \(s.pid), \(s.state.rawValue), up \(duration(s.uptimeS)): \(s.running)/\(s.wanted) nodes running, "
        out += "\(s.healthy) healthy, \(s.handled) handled, \(s.failed) failed, \(format(s.rate)) msg/s, \(s.restarts) restarts\n"
        if let a = s.autoscale {
            out += "autoscale \(a.active ? "on" : "suspended") (\(a.min)…\(a.max == 0 ? "partitions" : String(a.max)))"
            if let d = a.lastDecision { out += ", last \(d): \(a.reason ?? "")" }
            out += "\n"
        }
        if let c = s.cluster {
            let stale = c.swarms.filter(\.stale).count
            out += "cluster: group \(c.group), \(c.swarms.count - stale) live swarm(s)\(stale > 0 ? ", \(stale) STALE" : ""), "
            out += "\(c.unowned.count) unowned partition(s), lag \(c.lag) (swarmctl status --cluster)\n"
        }
        let header = ["SLOT", "PID", "STATE", "HEALTH", "KAFKA", "UPTIME", "RESTARTS", "RSS", "HANDLED", "MSG/S", "PARTS", "LAG", "REPORT", "LAST EXIT"]
        var rows = [header]
        for n in s.nodes {
            rows.append([
                String(n.slot), n.pid.map(String.init) ?? "-", n.state.rawValue, n.health.rawValue, n.kafka ?? "-", n.pid == nil ? "-" : duration(n.uptimeS),
                String(n.restarts), n.rssBytes.map(bytes) ?? "-", String(n.handled), format(n.rate),
                String(n.partitions), n.lag.map(String.init) ?? "-",
                n.reportAgeMs.map { format(Double($0) / 1000) + "s" } ?? "-", n.lastExit ?? "-",
            ])
        }
        var widths = [Int](repeating: 0, count: header.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        for row in rows {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2)
            }
            out += line + "\n"
        }
        for n in s.nodes where n.health != .ok {
            out += "slot \(n.slot): \(n.health.rawValue)\(n.reason.map { ": \($0)" } ?? "")\n"
        }
        if let unowned = s.unownedLag, !unowned.isEmpty {
            let total = unowned.reduce(Int64(0)) { $0.addingSaturating($1.lag) }
            let shown = unowned.prefix(8).map { "\($0.topic)/\($0.partition) \($0.lag)" }.joined(separator: ", ")
            out += "no node consumes \(unowned.count) partition(s), lag \(total) as the broker states it: \(shown)\(unowned.count > 8 ? ", …" : "")\n"
        }
        return out
    }

    /// True when every wanted node is healthy: `swarmctl status` exits 0,
    /// else 3 (the swarm runs degraded), as `supervisorctl status` exits 3
    /// when a process is not running. A probe's answer.
    public static func allHealthy(_ s: SwarmStatus) -> Bool {
        s.nodes.count >= s.wanted && s.nodes.filter { $0.slot < s.wanted }.allSatisfy { $0.health == .ok }
    }

    /// The same answer read from status JSON as swarmd writes it, looking
    /// only at `wanted` and each node's `slot` and `health`: `swarmctl status
    /// --json` passes the JSON on as it came, and decoding all of it just
    /// for its exit status was most of its time at 256 nodes (BENCHMARKS.md,
    /// "Large swarms"). Anything unexpected reads as not healthy.
    public static func allHealthy(json: JSONValue) -> Bool {
        guard case .number(let w)? = json["wanted"], let wanted = Int(w), case .array(let nodes)? = json["nodes"],
              nodes.count >= wanted else { return false }
        return nodes.allSatisfy { node in
            guard case .number(let s)? = node["slot"], let slot = Int(s) else { return false }
            guard slot < wanted else { return true }
            guard case .string(let health)? = node["health"] else { return false }
            return health == NodeHealth.ok.rawValue
        }
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(saturating: seconds)
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m" }
        if s < 172_800 { return "\(s / 3600)h" }
        return "\(s / 86400)d"
    }

    static func bytes(_ b: Int64) -> String {
        let mib = Double(b) / 1_048_576
        return mib >= 1024 ? format(mib / 1024) + "G" : format(mib) + "M"
    }

    static func format(_ v: Double) -> String {
        let tenths = Int(saturating: (v * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}
