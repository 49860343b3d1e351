import Shared

/// The swarm in Prometheus text exposition format 0.0.4 (`GET /metrics`,
/// `swarmctl metrics`): swarm's own series, and consumer lag under
/// kafka_exporter's names and labels, so that dashboards made for
/// kafka_exporter show swarm's numbers unchanged.
///
/// Counters are the supervisor's sums over every process a slot had, so they
/// never go backwards when a node restarts. States and health are labelled
/// gauges with every value present (1 for the current one, 0 for the
/// others), as kube-state-metrics does, so that a series does not vanish and
/// reappear when a node changes state.
enum Metrics {
    static let restartReasons = ["crashed", "hung", "unhealthy", "memory", "requested"]

    static func exposition(swarm: Swarm, status: SwarmStatus, publishing: (published: Int, dropped: Int)? = nil) -> String {
        var out = Writer()
        let group = swarm.config.kafka.groupId

        out.family("swarm_nodes_wanted", .gauge, "Nodes the swarm is sized to.")
        out.sample("swarm_nodes_wanted", [], Double(status.wanted))
        out.family("swarm_nodes_running", .gauge, "Nodes with a process that runs (running, draining or drained).")
        out.sample("swarm_nodes_running", [], Double(status.running))
        out.family("swarm_nodes_healthy", .gauge, "Wanted nodes whose health is ok (consuming, idle, waiting or rebalancing).")
        out.sample("swarm_nodes_healthy", [], Double(status.healthy))
        out.family("swarm_ready", .gauge, "1 when every wanted node consumes (joined and assigned), as /readyz.")
        out.sample("swarm_ready", [], swarm.consuming ? 1 : 0)
        out.family("swarm_restarts_total", .counter, "Node restarts since swarmd started.")
        out.sample("swarm_restarts_total", [], Double(status.restarts))
        out.family("swarm_malformed_reports_total", .counter, "Node reports that could not be read.")
        out.sample("swarm_malformed_reports_total", [], Double(status.malformedReports))
        out.family("swarm_build_info", .gauge, "swarmd's version and the Kafka client it loaded (1).")
        out.sample("swarm_build_info", [("version", SwarmVersion.number), ("client", status.client ?? "")], 1)
        out.family("swarm_node_info", .gauge, "The Kafka client each node loaded and the group protocol it joined with (1).")
        for n in status.nodes where n.client != nil || n.groupProtocol != nil {
            out.sample("swarm_node_info", [("slot", "\(n.slot)"), ("client", n.client ?? ""), ("group_protocol", n.groupProtocol ?? "")], 1)
        }
        out.family("swarm_upgrades_total", .counter, "In-place upgrades of swarmd since it was started.")
        out.sample("swarm_upgrades_total", [], Double(status.upgrades ?? 0))

        let nodes = status.nodes
        out.family("swarm_node_up", .gauge, "1 when the slot has a live process.")
        for n in nodes { out.sample("swarm_node_up", [("slot", "\(n.slot)")], n.pid == nil ? 0 : 1) }
        out.family("swarm_node_state", .gauge, "The slot's state: 1 for the current one.")
        for n in nodes {
            for s in NodeStatusState.allCases { out.sample("swarm_node_state", [("slot", "\(n.slot)"), ("state", s.rawValue)], n.state == s ? 1 : 0) }
        }
        out.family("swarm_node_health", .gauge, "The node's health: 1 for the current one (HEALTH in swarmd(8)).")
        for n in nodes {
            for h in NodeHealth.allCases { out.sample("swarm_node_health", [("slot", "\(n.slot)"), ("health", h.rawValue)], n.health == h ? 1 : 0) }
        }
        out.family("swarm_node_restarts_total", .counter, "Restarts of the slot, by why.")
        for n in nodes {
            let reasons = swarm.slots[n.slot]?.restartReasons ?? [:]
            for r in restartReasons { out.sample("swarm_node_restarts_total", [("slot", "\(n.slot)"), ("reason", r)], Double(reasons[r] ?? 0)) }
        }
        out.family("swarm_node_rss_bytes", .gauge, "Resident memory of the node's whole process tree (handler included).")
        for n in nodes { if let r = n.rssBytes { out.sample("swarm_node_rss_bytes", [("slot", "\(n.slot)")], Double(r)) } }
        out.family("swarm_node_pss_bytes", .gauge, "Proportional set size of the node's tree (what memory_limit compares; with a limit set).")
        for n in nodes { if let p = n.pssBytes { out.sample("swarm_node_pss_bytes", [("slot", "\(n.slot)")], Double(p)) } }
        out.family("swarm_node_partitions", .gauge, "Partitions assigned to the node.")
        for n in nodes { out.sample("swarm_node_partitions", [("slot", "\(n.slot)")], Double(n.partitions)) }
        out.family("swarm_node_messages_per_second", .gauge, "Messages the node handled per second, smoothed over its reports.")
        for n in nodes { out.sample("swarm_node_messages_per_second", [("slot", "\(n.slot)")], n.rate) }

        out.family("swarm_messages_handled_total", .counter, "Messages handled (the handler said ok).")
        for n in nodes { out.sample("swarm_messages_handled_total", [("slot", "\(n.slot)")], Double(n.handled)) }
        out.family("swarm_messages_failed_total", .counter, "Messages that failed every retry (skipped or dead-lettered).")
        for n in nodes { out.sample("swarm_messages_failed_total", [("slot", "\(n.slot)")], Double(n.failed)) }
        let counters: [(NodeReport.Counter, String, String)] = [
            (.retried, "swarm_messages_retried_total", "Retries of failed messages."),
            (.deadLettered, "swarm_messages_dead_lettered_total", "Messages sent to the dead-letter topic."),
            (.rebalances, "swarm_rebalances_total", "Assignments the node received from the group (each rebalance it took part in)."),
        ]
        for (counter, name, help) in counters {
            out.family(name, .counter, help)
            for n in nodes { out.sample(name, [("slot", "\(n.slot)")], Double(swarm.slots[n.slot]?.total(counter) ?? 0)) }
        }

        out.family("swarm_handler_batch_seconds", .histogram, "Time the handler took per batch (retries of one message count as batches of one).")
        for n in nodes {
            guard let slot = swarm.slots[n.slot] else { continue }
            let times = slot.batchTimes
            var cumulative: Int64 = 0
            for (i, bound) in NodeReport.batchBucketsMs.enumerated() {
                cumulative = cumulative.addingSaturating(times.buckets[i])
                out.sample("swarm_handler_batch_seconds_bucket", [("slot", "\(n.slot)"), ("le", Writer.format(Double(bound) / 1000))], Double(cumulative))
            }
            cumulative = cumulative.addingSaturating(times.buckets[NodeReport.batchBucketsMs.count])
            out.sample("swarm_handler_batch_seconds_bucket", [("slot", "\(n.slot)"), ("le", "+Inf")], Double(cumulative))
            out.sample("swarm_handler_batch_seconds_sum", [("slot", "\(n.slot)")], Double(times.sumMs) / 1000)
            out.sample("swarm_handler_batch_seconds_count", [("slot", "\(n.slot)")], Double(cumulative))
        }

        if swarm.config.autoscale.enabled {
            let a = swarm.autoscaler
            out.family("swarm_autoscale_active", .gauge, "1 while swarmd sizes the swarm (not suspended by a manual scale).")
            out.sample("swarm_autoscale_active", [], a.suspended ? 0 : 1)
            out.family("swarm_autoscale_decisions_total", .counter, "Size changes the autoscaler made, by direction.")
            out.sample("swarm_autoscale_decisions_total", [("direction", "up")], Double(a.ups))
            out.sample("swarm_autoscale_decisions_total", [("direction", "down")], Double(a.downs))
            out.sample("swarm_autoscale_decisions_total", [("direction", "undo")], Double(a.undone))
        }

        // kafka_exporter's names and labels, for its dashboards.
        var byPartition: [(topic: String, partition: Int32, lag: Int64)] = []
        for n in nodes { for l in n.partitionLag ?? [] { byPartition.append((l.topic, l.partition, l.lag)) } }
        // Partitions no node reports, as the broker states them: they do not vanish while nobody consumes them.
        for l in status.unownedLag ?? [] { byPartition.append((l.topic, l.partition, l.lag)) }
        byPartition.sort { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
        out.family("kafka_consumergroup_lag", .gauge, "Current approximate lag of a consumer group at topic/partition (kafka_exporter's name).")
        for l in byPartition {
            out.sample("kafka_consumergroup_lag", [("consumergroup", group), ("partition", "\(l.partition)"), ("topic", l.topic)], Double(l.lag))
        }
        out.family("kafka_consumergroup_lag_sum", .gauge, "Current approximate lag of a consumer group at topic for all partitions (kafka_exporter's name).")
        var sums: [String: Int64] = [:]
        for l in byPartition { sums[l.topic] = (sums[l.topic] ?? 0).addingSaturating(l.lag) }
        for topic in sums.keys.sorted() {
            out.sample("kafka_consumergroup_lag_sum", [("consumergroup", group), ("topic", topic)], Double(sums[topic]!))
        }
        out.family("kafka_consumergroup_members", .gauge, "Members of the consumer group that are this swarm's nodes (kafka_exporter's name).")
        out.sample("kafka_consumergroup_members", [("consumergroup", group)], Double(nodes.filter { $0.pid != nil && $0.state == .running }.count))
        if let c = status.cluster { cluster(c, publishing: publishing, into: &out) }
        return out.text
    }

    /// The group as the status topic tells it (`[cluster]`): every swarmd
    /// shows the same numbers, so a dashboard can scrape any one of them.
    static func cluster(_ c: ClusterView, publishing: (published: Int, dropped: Int)?, into out: inout Writer) {
        out.family("swarm_cluster_swarms", .gauge, "Swarms of the group in the status topic, live or stale (no record for stale_after).")
        out.sample("swarm_cluster_swarms", [("state", "live")], Double(c.swarms.filter { !$0.stale }.count))
        out.sample("swarm_cluster_swarms", [("state", "stale")], Double(c.swarms.filter(\.stale).count))
        out.family("swarm_cluster_nodes", .gauge, "Nodes of every live swarm of the group, by health.")
        out.sample("swarm_cluster_nodes", [("health", "ok")], Double(c.swarms.filter { !$0.stale }.map(\.record.healthy).reduce(0) { $0.addingSaturating($1) }))
        out.sample("swarm_cluster_nodes", [("health", "wanted")], Double(c.swarms.filter { !$0.stale }.map(\.record.wanted).reduce(0) { $0.addingSaturating($1) }))
        out.family("swarm_cluster_lag", .gauge, "Lag of the group over the partitions live nodes hold.")
        out.sample("swarm_cluster_lag", [], Double(c.lag))
        out.family("swarm_cluster_partitions_unowned", .gauge, "Partitions of the consumed topics no live node holds.")
        out.sample("swarm_cluster_partitions_unowned", [], Double(c.unowned.count))
        if let p = publishing {
            out.family("swarm_cluster_records_total", .counter, "Status records this swarmd queued, and dropped (refused by a full queue or expired in it: the brokers away).")
            out.sample("swarm_cluster_records_total", [("result", "queued")], Double(p.published))
            out.sample("swarm_cluster_records_total", [("result", "dropped")], Double(p.dropped))
        }
    }

    enum Kind: String { case gauge, counter, histogram }

    struct Writer {
        var text = ""

        mutating func family(_ name: String, _ kind: Kind, _ help: String) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n"
        }

        mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
            text += name
            if !labels.isEmpty {
                text += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
            }
            text += " " + Self.format(value) + "\n"
        }

        static func escape(_ s: String) -> String {
            var out = ""
            for c in s {
                switch c {
                case "\\": out += "\\\\"
                case "\"": out += "\\\""
                case "\n": out += "\\n"
                default: out.append(c)
                }
            }
            return out
        }

        static func format(_ v: Double) -> String {
            if v.isNaN { return "NaN" }
            if v == v.rounded() && abs(v) < 1e15 { return String(Int64(saturating: v)) }
            return "\(v)"
        }
    }
}
