import ArgumentParser
import Logging
import Shared
import SwarmdKit

#if canImport(Glibc)
import Glibc
#endif

/// `swarmd`: runs a Kafka consumer as a swarm of processes. Synchronous on
/// purpose: an async main would park the main thread with an empty signal
/// mask and break signalfd.
struct Swarmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarmd",
        abstract: "Run a Kafka consumer as a supervised swarm of processes.",
        discussion: "See swarmd(8) and swarmd.toml(5).",
        version: "swarmd \(SwarmVersion.describe()), librdkafka \(Supervisor.librdkafkaVersion)",
        subcommands: [Run.self, Node.self, Broker.self, Cluster.self],
        defaultSubcommand: Run.self
    )
}

extension Swarmd {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Start the supervisor and its nodes (the default)."
        )

        @Option(name: .shortAndLong, help: ArgumentHelp("The configuration file (TOML; default: $SWARMD_CONFIG; with --check, /etc/swarmd/swarmd.toml where it exists).", valueName: "file"))
        var config: String?

        @Option(name: .shortAndLong, help: "How many nodes to run (overrides the file).")
        var nodes: Int?

        @Option(help: ArgumentHelp("The control socket (default: $SWARMD_SOCKET, $RUNTIME_DIRECTORY/swarmd.sock, /run/swarmd/swarmd.sock).", valueName: "path"))
        var socket: String?

        @Flag(help: "Check the configuration and exit (0 valid, 78 invalid).")
        var check = false

        @Flag(help: "With --check: print the effective configuration as TOML (every setting, defaults marked, secrets redacted).")
        var print = false

        @Option(help: .hidden)
        var handover: Int32?

        @Argument(parsing: .postTerminator, help: ArgumentHelp("A node program and its arguments, after --, instead of the built-in node.", valueName: "node-command"))
        var nodeCommand: [String] = []

        func run() throws {
            do { try StderrLogHandler.bootstrap() } catch let error as SwarmError {
                writeAll(2, "swarmd: \(error.message)\n")
                throw ExitCode(error.code.exitStatus)
            }
            let logger = Logger(label: "swarmd")
            NodeRuntime.routeKafkaLogs(to: logger)
            if let handover {
                // Re-executed by an upgrading swarmd (swarmctl upgrade, USR2): adopt, don't start.
                let supervisor: Supervisor
                do {
                    supervisor = try Supervisor(handoverFd: handover, logger: logger)
                } catch {
                    logger.critical("cannot adopt the swarm handed over: \(error); its nodes leave when they see swarmd gone")
                    throw ExitCode(ExitStatus.software)
                }
                let status = supervisor.run()
                if status != 0 { throw ExitCode(status) }
                return
            }
            let env = currentEnvironment()
            // --check alone checks the file the shipped unit runs, as `nginx -t`
            // does; a swarmd started without a file still runs on its defaults.
            let path = config ?? env["SWARMD_CONFIG"] ?? (check ? InstallPaths.existingDefaultConfig() : nil)
            let overrides = Supervisor.Overrides(nodes: nodes, nodeCommand: nodeCommand.isEmpty ? nil : nodeCommand)
            var settings: SwarmConfig
            let loaded: ConfigLoader.Loaded
            do {
                if let nodes, nodes < 1 || nodes > SupervisorSettings.maxNodes {
                    throw SwarmError(.config, "--nodes must be between 1 and \(SupervisorSettings.maxNodes), not \(nodes)")
                }
                if print && !check { throw SwarmError(.usage, "--print goes with --check: swarmd --check --print --config FILE") }
                loaded = try path.map { try ConfigLoader(path: $0).read() } ?? ConfigLoader.Loaded(config: SwarmConfig(), setKeys: [])
                settings = Supervisor.apply(overrides, to: loaded.config)
                try SwarmdValidation.validate(settings, setKeys: loaded.setKeys, environment: env)
                // The file's log_format wins over SWARM_LOG_FORMAT; the nodes log as swarmd does.
                if loaded.setKeys.contains("supervisor.log_format") { StderrLogHandler.format = settings.supervisor.logFormat }
                settings.supervisor.logFormat = StderrLogHandler.format
            } catch let error as SwarmError {
                writeAll(2, "swarmd: \(error.message)\n")
                throw ExitCode(error.code.exitStatus)
            }
            for w in SwarmdValidation.warnings(settings, setKeys: loaded.setKeys) { writeAll(2, "swarmd: warning: \(w)\n") }
            if check {
                if print {
                    writeAll(1, ConfigPrinter(config: settings, setKeys: loaded.setKeys).text())
                } else {
                    let n = loaded.setKeys.count
                    var text = "\(path ?? "(defaults)"): configuration is valid; it sets \(n) setting\(n == 1 ? "" : "s"), the rest are defaults (--print shows them all)\n"
                    if let auto = settings.supervisor.nodesAuto { text += "nodes = \"auto\": \(settings.supervisor.nodes) (\(auto))\n" }
                    writeAll(1, text)
                }
                return
            }
            let socketPath = SocketPath.resolve(option: socket, configured: settings.supervisor.socket, environment: env)
            let supervisor: Supervisor
            do {
                supervisor = try Supervisor(config: settings, configPath: path, overrides: overrides, socketPath: socketPath, logger: logger)
            } catch {
                writeAll(2, "swarmd: \(error)\n")
                throw ExitCode(ExitStatus.software)
            }
            let status = supervisor.run()
            if status != 0 { throw ExitCode(status) }
        }
    }

    struct Node: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "node",
            abstract: "Run one node (started by swarmd itself, as swarmd-node).",
            shouldDisplay: false
        )

        func run() throws {
            NodeProcessSetup.prepare()
            let env = currentEnvironment()
            do {
                try StderrLogHandler.bootstrap()
                let config = try NodeRuntime.configuration()
                StderrLogHandler.format = config.supervisor.logFormat
                let logger = Logger(label: "swarmd-node")
                let runtime = try NodeRuntime(config: config, environment: env, logger: logger)
                let status = runtime.run()
                if status != 0 { throw ExitCode(status) }
            } catch let error as SwarmError {
                writeAll(2, "swarmd-node: \(error.message)\n")
                throw ExitCode(ExitStatus.usage)
            }
        }
    }

    struct Cluster: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cluster",
            abstract: "Show every swarm of the group, from the status topic ([cluster] in swarmd.toml).",
            discussion: """
            Works on any host that reaches the brokers, swarmd running there or not (swarmctl status --cluster runs this). \
            Exit status: 0 every swarm live and healthy and every partition owned; 3 otherwise; 69 brokers unreachable; 78 bad configuration.
            """
        )

        @Option(name: .shortAndLong, help: ArgumentHelp("swarmd's configuration file (default: $SWARMD_CONFIG, then /etc/swarmd/swarmd.toml where it exists): its brokers, group, topics and [cluster].", valueName: "file"))
        var config: String?

        @Option(help: ArgumentHelp("The brokers, instead of the file's.", valueName: "host:port,..."))
        var bootstrap: String?

        @Option(help: ArgumentHelp("The status topic, instead of the file's.", valueName: "topic"))
        var topic: String?

        @Option(help: ArgumentHelp("The consumer group, instead of the file's.", valueName: "group"))
        var group: String?

        @Flag(help: "Print JSON (the \"cluster\" object of swarmctl status --json).")
        var json = false

        @Option(help: "Seconds to wait for the brokers.")
        var timeout: Double = 10

        func run() throws {
            do {
                try StderrLogHandler.bootstrap()
                let env = currentEnvironment()
                var settings = try (config ?? env["SWARMD_CONFIG"] ?? InstallPaths.existingDefaultConfig()).map { try ConfigLoader(path: $0).load() } ?? SwarmConfig()
                if let bootstrap { settings.kafka.properties["bootstrap.servers"] = bootstrap }
                if let topic { settings.cluster.statusTopic = topic }
                if let group { settings.kafka.groupId = group }
                guard !settings.cluster.statusTopic.isEmpty else {
                    throw SwarmError(.config, "no status topic: set [cluster] status_topic in the configuration (swarmd.toml(5)) or give --topic")
                }
                guard !settings.usesEmbeddedBroker else {
                    throw SwarmError(.config, "the embedded broker lives inside swarmd and is not reachable from here: give --bootstrap, or ask swarmd (swarmctl status --json)")
                }
                NodeRuntime.routeKafkaLogs(to: Logger(label: "swarmd-cluster"))
                let view = try ClusterLink.read(topic: settings.cluster.statusTopic, group: settings.kafka.groupId, consumed: settings.kafka.topics,
                                                properties: settings.kafka.properties, staleAfter: settings.cluster.staleAfter,
                                                timeoutMs: Int32(saturating: timeout * 1000))
                writeAll(1, json ? (try ControlProtocol.encoder.encode(view).text) + "\n" : view.render())
                if !view.healthy { throw ExitCode(ExitStatus.degraded) }
            } catch let error as SwarmError {
                writeAll(2, "swarmd cluster: \(error.message)\n")
                throw ExitCode(error.code.exitStatus)
            }
        }
    }

    struct Broker: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "broker",
            abstract: "Host a development Kafka broker (librdkafka's mock cluster) until stopped.",
            discussion: "Prints the bootstrap address on the first line of standard output, then serves until TERM, INT, or EOF on standard input."
        )

        @Option(name: .long, help: ArgumentHelp("A topic to create, as name:partitions (repeatable).", valueName: "name:partitions"))
        var topic: [String] = []

        @Option(help: "Brokers in the cluster.")
        var brokers = 1

        func run() throws {
            var topics: [(String, Int)] = []
            for t in topic {
                let parts = t.split(separator: ":")
                guard parts.count == 2, let n = Int(parts[1]), n > 0 else {
                    throw ValidationError("--topic takes name:partitions, e.g. events:6, not \"\(t)\"")
                }
                topics.append((String(parts[0]), n))
            }
            let status = BrokerCommand.run(brokers: brokers, topics: topics)
            if status != 0 { throw ExitCode(status) }
        }
    }
}
