/// The effective configuration as TOML (`swarmd --check --print`): every
/// setting with the value swarm will run with, keys the file left out marked
/// `# default`, secrets shown as `[redacted]`. The output is itself a valid
/// configuration file (a test reads it back) apart from redacted secrets.
public struct ConfigPrinter {
    public var config: SwarmConfig
    /// `section.key` of the settings the file set (see `ConfigLoader.Loaded`).
    public var setKeys: Set<String>

    public init(config: SwarmConfig, setKeys: Set<String>) {
        self.config = config.redacted()
        self.setKeys = setKeys
    }

    public func text() -> String {
        let s = config.supervisor, k = config.kafka, h = config.handler, e = config.embedded
        var out = "# The configuration swarmd runs with; \"# default\" marks what the file did not set.\n"
        func section(_ name: String, _ rows: [(String, String)], quotedKeys: Bool = false) {
            out += "\n[\(name)]\n"
            let shown = rows.map { (raw: $0.0, key: quotedKeys ? Self.string($0.0) : $0.0, value: $0.1) }
            let width = shown.map { $0.key.count + 3 + $0.value.count }.max() ?? 0
            for (raw, key, value) in shown {
                var line = "\(key) = \(value)"
                if !setKeys.contains("\(name).\(raw)") {
                    line += String(repeating: " ", count: max(1, width - line.count + 2)) + "# default"
                }
                out += line + "\n"
            }
        }
        section("supervisor", [
            ("nodes", s.nodesAuto.map { "\"auto\"  # \(s.nodes): \($0)" } ?? "\(s.nodes)"),
            ("node_command", Self.array(s.nodeCommand)),
            ("instance_prefix", Self.string(s.instancePrefix)),
            ("report_interval", Self.seconds(s.reportInterval)),
            ("report_timeout", Self.seconds(s.reportTimeout)),
            ("kill_timeout", Self.seconds(s.killTimeout)),
            ("shutdown_timeout", Self.seconds(s.shutdownTimeout)),
            ("quit_timeout", Self.seconds(s.quitTimeout)),
            ("memory_limit", Self.bytes(s.memoryLimit)),
            ("memory_high", Self.bytes(s.memoryHigh)),
            ("memory_max", Self.bytes(s.memoryMax)),
            ("restart_backoff_max", Self.seconds(s.restartBackoffMax)),
            ("restart_reset_after", Self.seconds(s.restartResetAfter)),
            ("crash_loop_after", "\(s.crashLoopAfter)"),
            ("socket", Self.string(s.socket)),
            ("socket_mode", Self.string("0" + String(s.socketMode, radix: 8))),
            ("socket_group", Self.string(s.socketGroup)),
            ("socket_read_group", Self.string(s.socketReadGroup)),
            ("log_format", Self.string(s.logFormat.rawValue)),
            ("control_timeout", Self.seconds(s.controlTimeout)),
            ("ready_timeout", Self.seconds(s.readyTimeout)),
            ("disconnected_after", Self.seconds(s.disconnectedAfter)),
            ("rebalance_limit", Self.seconds(s.rebalanceLimit)),
        ])
        section("kafka", [
            ("topics", Self.array(k.topics)),
            ("group_id", Self.string(k.groupId)),
        ])
        section("kafka.properties", k.properties.keys.sorted().map { ($0, Self.string(k.properties[$0]!)) }, quotedKeys: true)
        section("handler", [
            ("kind", Self.string(h.kind.rawValue)),
            ("command", Self.array(h.command)),
            ("protocol", "\(h.protocolVersion)"),
            ("cpu_rounds", "\(h.cpuRounds)"),
            ("batch_size", "\(h.batchSize)"),
            ("pipeline", "\(h.pipeline)"),
            ("batch_timeout", Self.seconds(h.batchTimeout)),
            ("retries", "\(h.retries)"),
            ("retry_backoff", Self.seconds(h.retryBackoff)),
            ("on_failure", Self.string(h.onFailure.rawValue)),
            ("ordering", Self.string(h.ordering.rawValue)),
            ("dead_letter_topic", Self.string(h.deadLetterTopic)),
            ("commit_interval", Self.seconds(h.commitInterval)),
            ("stderr_level", Self.string(h.stderrLevel.rawValue)),
            ("stderr_rate", "\(h.stderrRate)"),
        ])
        section("embedded", [
            ("brokers", "\(e.brokers)"),
            ("partitions", "\(e.partitions)"),
            ("produce_rate", "\(e.produceRate)"),
            ("message_size", "\(e.messageSize)"),
        ])
        section("http", [
            ("listen", Self.string(config.http.listen)),
        ])
        let a = config.autoscale
        section("autoscale", [
            ("enabled", a.enabled ? "true" : "false"),
            ("min", "\(a.min)"),
            ("max", "\(a.max)"),
            ("target_drain_seconds", Self.seconds(a.targetDrainSeconds)),
            ("cooldown_up", Self.seconds(a.cooldownUp)),
            ("cooldown_down", Self.seconds(a.cooldownDown)),
        ])
        section("cluster", [
            ("status_topic", Self.string(config.cluster.statusTopic)),
            ("publish_interval", Self.seconds(config.cluster.publishInterval)),
            ("stale_after", Self.seconds(config.cluster.staleAfter)),
        ])
        return out
    }

    /// A TOML basic string.
    static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where u.value < 0x20 || u.value == 0x7F:
                let hex = String(u.value, radix: 16, uppercase: true)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    static func array(_ items: [String]) -> String { "[" + items.map(string).joined(separator: ", ") + "]" }

    static func seconds(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? "\(Int64(saturating: d))" : "\(d)"
    }

    static func bytes(_ b: Int64) -> String {
        for (unit, scale) in [("GiB", Int64(1) << 30), ("MiB", Int64(1) << 20), ("KiB", Int64(1) << 10)] where b > 0 && b % scale == 0 {
            return string("\(b / scale)\(unit)")
        }
        return "\(b)"
    }
}
