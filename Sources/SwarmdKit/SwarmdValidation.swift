import Shared
import SwarmKafka

/// Checks that go beyond the file's syntax, done once at start (and on
/// reload) so that a mistake is refused with exit 78 instead of becoming a
/// crash-looping swarm.
public enum SwarmdValidation {
    public static func validate(_ config: SwarmConfig, environment: [String: String]) throws {
        let path = environment["PATH"]
        if let program = config.supervisor.nodeCommand.first, resolveProgram(program, path: path) == nil {
            throw SwarmError(.config, "[supervisor] node_command: program \"\(program)\" not found or not executable")
        }
        if config.supervisor.nodeCommand.isEmpty {
            if config.handler.kind == .exec, let program = config.handler.command.first, resolveProgram(program, path: path) == nil {
                throw SwarmError(.config, "[handler] command: program \"\(program)\" not found or not executable")
            }
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
