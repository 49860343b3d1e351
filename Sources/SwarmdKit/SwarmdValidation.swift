import Shared
import SwarmKafka

/// Checks that go beyond the file's syntax, done once at start (and on
/// reload) so that a mistake is refused with exit 78 instead of becoming a
/// crash-looping swarm.
public enum SwarmdValidation {
    /// Settings the file wrote that cannot take effect, in words: `--check`
    /// prints them (exit 0: the file is valid) and swarmd logs them at start.
    /// An `[autoscale]` section with bounds but without `enabled = true`
    /// autoscales nothing, and nothing else would say so.
    public static func warnings(_ config: SwarmConfig, setKeys: Set<String>) -> [String] {
        var out: [String] = []
        let autoscaleKeys = setKeys.filter { $0.hasPrefix("autoscale.") && $0 != "autoscale.enabled" }.map { String($0.dropFirst(10)) }.sorted()
        if !config.autoscale.enabled && !autoscaleKeys.isEmpty {
            out.append("[autoscale] \(autoscaleKeys.joined(separator: ", ")) set, but enabled = false: nothing autoscales (set enabled = true)")
        }
        return out
    }

    /// The first librdkafka with KIP-848 generally available.
    static let consumerProtocolSince: Int32 = 0x020C_0000

    /// `"group.protocol"`: `classic` or `consumer`; `consumer` needs
    /// librdkafka 2.12 or later (refused with the version that was loaded,
    /// never a silent fallback to classic) and has no assignment strategy:
    /// the coordinator assigns, so `partition.assignment.strategy` is refused.
    static func checkGroupProtocol(_ props: [String: String], client: Int32, clientText: String) throws {
        guard let p = props["group.protocol"] else { return }
        guard p == "classic" || p == "consumer" else {
            throw SwarmError(.config, "[kafka.properties] \"group.protocol\" = \"\(p)\": it is \"classic\" or \"consumer\" (KIP-848)")
        }
        guard p == "consumer" else { return }
        if client < consumerProtocolSince {
            throw SwarmError(.config, "[kafka.properties] \"group.protocol\" = \"consumer\" (KIP-848) needs librdkafka 2.12 or later; this swarmd loaded librdkafka \(clientText): build with scripts/setup (librdkafka 2.14) or use \"classic\"")
        }
        if props["partition.assignment.strategy"] != nil {
            throw SwarmError(.config, "[kafka.properties] \"partition.assignment.strategy\" has no meaning with \"group.protocol\" = \"consumer\": the group coordinator assigns (KIP-848); remove it")
        }
        // librdkafka refuses these when it creates the consumer, so every node would
        // crash-loop on them: refused here, once, with what to do.
        for key in ["session.timeout.ms", "heartbeat.interval.ms", "group.protocol.type"] where props[key] != nil {
            throw SwarmError(.config, "[kafka.properties] \"\(key)\" is not supported with \"group.protocol\" = \"consumer\": under KIP-848 the broker sets it (group.consumer.* broker configs); remove it")
        }
    }

    /// `setKeys` are the settings the file wrote (`ConfigLoader.Loaded`).
    public static func validate(_ config: SwarmConfig, setKeys: Set<String>, environment: [String: String]) throws {
        let path = environment["PATH"]
        // Forgetting the brokers must not quietly start the development broker
        // and report healthy: the file says where Kafka is, or says "embedded".
        // (A custom node_command talks to whatever it likes.)
        if config.supervisor.nodeCommand.isEmpty && !setKeys.contains("kafka.properties.bootstrap.servers") {
            throw SwarmError(.config, "[kafka.properties] \"bootstrap.servers\" is required: the brokers, e.g. \"kafka1:9092,kafka2:9092\", or \"embedded\" for swarmd's development broker (swarmd.toml(5))")
        }
        for (key, group) in [("socket_group", config.supervisor.socketGroup), ("socket_read_group", config.supervisor.socketReadGroup)]
        where !group.isEmpty && resolveGroup(group) == nil {
            throw SwarmError(.config, "[supervisor] \(key): there is no group named \"\(group)\" (create it, e.g. with contrib/sysusers.d, or name another)")
        }
        if let program = config.supervisor.nodeCommand.first, resolveProgram(program, path: path) == nil {
            throw SwarmError(.config, "[supervisor] node_command: program \"\(program)\" not found or not executable")
        }
        if config.supervisor.nodeCommand.isEmpty {
            if config.handler.kind == .exec, let program = config.handler.command.first, resolveProgram(program, path: path) == nil {
                throw SwarmError(.config, "[handler] command: program \"\(program)\" not found or not executable")
            }
            try checkGroupProtocol(config.kafka.properties, client: Librdkafka.versionNumber, clientText: Librdkafka.version)
            do {
                var props = config.kafka.properties
                if config.usesEmbeddedBroker { props["bootstrap.servers"] = "127.0.0.1:9092" }
                try KafkaConsumer.validate(properties: props)
            } catch let e as KafkaError {
                // librdkafka quotes a refused value: never echo a secret.
                throw SwarmError(.config, config.redact("[kafka.properties] \(e.context): \(e.message)"))
            }
        }
    }
}
