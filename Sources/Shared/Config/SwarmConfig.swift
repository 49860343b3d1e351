/// Everything swarmd and its nodes are configured with. Every field has a
/// default, so an empty file (or none) is a valid configuration: two nodes of
/// the built-in consumer on the embedded development broker.
///
/// The configuration travels to built-in nodes as JSON in a sealed memfd
/// (fd 5, `NodeEnvironment.configFd`), never in the environment, so a node
/// always runs exactly what its supervisor validated, even if the file
/// changed on disk since, and no secret reaches a handler's environment.
public struct SwarmConfig: Codable, Equatable, Sendable {
    public var supervisor = SupervisorSettings()
    public var kafka = KafkaSettings()
    public var handler = HandlerSettings()
    public var embedded = EmbeddedSettings()
    public var http = HTTPSettings()
    public var autoscale = AutoscaleSettings()
    public var cluster = ClusterSettings()

    public init() {}

    /// True when swarmd should host librdkafka's mock cluster itself.
    public var usesEmbeddedBroker: Bool {
        kafka.properties["bootstrap.servers"] == KafkaSettings.embeddedBootstrap
    }

    /// The configuration as a node sees it: the settings only swarmd reads
    /// (timeouts, limits it enforces, the socket, the size) set to their
    /// defaults. Two configurations with the same view need no node replaced.
    public var nodeView: SwarmConfig {
        var c = self
        let d = SupervisorSettings()
        c.supervisor.nodes = d.nodes
        c.supervisor.nodesAuto = d.nodesAuto
        c.supervisor.reportTimeout = d.reportTimeout
        c.supervisor.killTimeout = d.killTimeout
        c.supervisor.shutdownTimeout = d.shutdownTimeout
        c.supervisor.quitTimeout = d.quitTimeout
        c.supervisor.memoryLimit = d.memoryLimit
        c.supervisor.restartBackoffMax = d.restartBackoffMax
        c.supervisor.restartResetAfter = d.restartResetAfter
        c.supervisor.crashLoopAfter = d.crashLoopAfter
        c.supervisor.socket = d.socket
        c.supervisor.socketMode = d.socketMode
        c.supervisor.socketGroup = d.socketGroup
        c.supervisor.socketReadGroup = d.socketReadGroup
        c.cluster = ClusterSettings()
        c.supervisor.controlTimeout = d.controlTimeout
        c.supervisor.readyTimeout = d.readyTimeout
        return c
    }
}

public struct SupervisorSettings: Codable, Equatable, Sendable {
    /// The largest swarm swarmd runs: each node costs it three fds and a
    /// slot in every status; past a thousand processes, run several swarms.
    public static let maxNodes = 1024

    /// How many nodes to run. 2 by default, as Karafka's swarm; `"auto"` in
    /// the file sizes it to the CPUs swarmd may use (`CPUBudget`).
    public var nodes = 2
    /// With `nodes = "auto"`: how `nodes` was derived (logged at start); nil when the file gave a number.
    public var nodesAuto: String?
    /// The node program as an argument vector; empty means swarmd's built-in Kafka node.
    public var nodeCommand: [String] = []
    /// The prefix of each node's stable id (and Kafka `group.instance.id`); default: the host name.
    public var instancePrefix = ""
    /// Seconds between a node's liveness reports.
    public var reportInterval = 1.0
    /// Seconds without a report after which a node is hung.
    public var reportTimeout = 10.0
    /// Seconds between TERM and KILL when a node is stopped or restarted.
    public var killTimeout = 10.0
    /// Seconds a graceful stop of the whole swarm may take before stragglers are killed.
    public var shutdownTimeout = 30.0
    /// Seconds an immediate stop (QUIT) gives nodes before KILL.
    public var quitTimeout = 2.0
    /// A node's memory limit in bytes, over its whole process tree (PSS, or
    /// its cgroup's charge): over it, the node is restarted gracefully; 0 means none.
    public var memoryLimit: Int64 = 0
    /// cgroup v2 only: each node's `memory.high` (the kernel throttles and reclaims above it); 0 means none.
    public var memoryHigh: Int64 = 0
    /// cgroup v2 only: each node's `memory.max` (the kernel OOM-kills inside the node above it); 0 means none.
    public var memoryMax: Int64 = 0
    /// The longest wait between restarts of a node that keeps failing.
    public var restartBackoffMax = 30.0
    /// A node healthy for this many seconds has its backoff reset.
    public var restartResetAfter = 10.0
    /// Quick failures in a row after which a node is shown as crash-looping.
    public var crashLoopAfter = 3
    /// The control socket path; empty means the default lookup (see `SocketPath`).
    public var socket = ""
    /// The control socket's file mode.
    public var socketMode: UInt32 = 0o600
    /// A group whose members may use the control socket (besides root and swarmd's user).
    public var socketGroup = ""
    /// A group whose members may only look (`status`, `metrics`), as Puma's
    /// stats-only token: monitoring without the right to stop the swarm.
    /// Set, the socket is opened to everyone (0666) and swarmd decides per
    /// request from the peer's credentials (SO_PEERCRED, SO_PEERGROUPS).
    public var socketReadGroup = ""
    /// How swarmd and its nodes write log lines: "logfmt" (the default; the
    /// journald priority prefix under systemd) or "json" (one object per line).
    public var logFormat = LogFormat.logfmt
    /// Seconds a control connection may stay silent before it is closed.
    public var controlTimeout = 5.0
    /// Seconds swarmd waits for every node to consume (joined, assigned)
    /// before it tells systemd READY anyway, with STATUS saying what is
    /// missing; also the longest a rolling step waits for its replacement to
    /// be assigned. Under systemd's default TimeoutStartSec (90 s): a broker
    /// outage at boot must not make systemd kill and restart the swarm,
    /// which would bring no broker back.
    public var readyTimeout = 60.0
    /// Seconds without any reachable broker before a node says `disconnected`
    /// (librdkafka reconnects by itself meanwhile; a blip is not an outage).
    public var disconnectedAfter = 10.0
    /// Seconds a node may spend joining the group or in one rebalance before
    /// it says `rebalancing-too-long` (Karafka Pro's stuck-rebalance check).
    /// Eager rebalances wait for every member's revocation, bounded by
    /// `max.poll.interval.ms` (300 s by default); 120 s catches a stuck
    /// group well before that without flagging a slow but normal one.
    public var rebalanceLimit = 120.0

    public init() {}
}

public struct KafkaSettings: Codable, Equatable, Sendable {
    public static let embeddedBootstrap = "embedded"
    /// Topics to subscribe to; a name starting with `^` is a regular expression.
    public var topics: [String] = ["swarm-demo"]
    /// The consumer group every node joins.
    public var groupId = "swarm"
    /// librdkafka properties passed through as written, plus the defaults
    /// swarm sets when the file does not (`defaults`).
    public var properties: [String: String] = KafkaSettings.defaults

    /// What swarm sets unless the file says otherwise. `auto.offset.reset`:
    /// librdkafka's default is `latest`, so a new group silently skips the
    /// backlog waiting for it; an at-least-once consumer starts from the
    /// earliest message, as Karafka's `initial_offset` does.
    ///
    ///
    /// `partition.assignment.strategy` stays librdkafka's eager default
    /// (range,roundrobin). Measured side by side (BENCHMARKS.md, handover,
    /// with swarm's commit barrier): eager hands over swarm's own changes
    /// with nothing handled twice per drain + resume and per rolling restart,
    /// cooperative-sticky with 367 and 0; cooperative is far better per scale
    /// step (25 against 1,100–1,711; what is left under eager comes from rebalances
    /// the mock starts by itself), and a SIGKILL costs what was in flight
    /// either way. No clear winner on redeliveries, and cooperative needed
    /// three fixes for positions librdkafka 2.0 keeps across incremental
    /// revocations (messages never handled each time) where eager never
    /// skipped one: at-least-once first.
    public static let defaults: [String: String] = ["bootstrap.servers": embeddedBootstrap, "auto.offset.reset": "earliest"]

    /// True when the nodes use a cooperative assignor (`cooperative-sticky`):
    /// a rebalance revokes only what moves.
    public var cooperative: Bool { properties["partition.assignment.strategy"]?.contains("cooperative") == true }

    /// The consumer group protocol (`"group.protocol"` in `[kafka.properties]`,
    /// librdkafka's and Kafka's own name for it): `classic` (the default,
    /// served by every broker) or `consumer`, KIP-848's next-generation
    /// protocol (Kafka 4.0+; librdkafka 2.12+), where the group coordinator
    /// assigns and moves only the partitions that must move.
    public var groupProtocol: String { properties["group.protocol"] ?? "classic" }

    /// With KIP-848 swarm sends no holds and opens no commit barrier: the
    /// coordinator revokes only what moves, and each member commits in its
    /// own revocation; holding the others would pause nodes no change
    /// concerns. Measured (BENCHMARKS.md, "Membership changes per kind"):
    /// nothing handled twice without them.
    public var usesConsumerProtocol: Bool { groupProtocol == "consumer" }

    public init() {}
}

/// swarm's log line formats (`[supervisor] log_format`).
public enum LogFormat: String, Codable, Sendable, CaseIterable {
    case logfmt, json
}

/// A log level, as written in configuration (swift-log's names).
public enum LogLevel: String, Codable, Sendable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

public enum HandlerKind: String, Codable, Sendable, CaseIterable {
    case sink, cpu, exec
}

public enum FailurePolicy: String, Codable, Sendable, CaseIterable {
    case skip
    case deadLetter = "dead-letter"
}

/// What a failed message does to the order of its partition.
public enum Ordering: String, Codable, Sendable, CaseIterable {
    /// Kafka's order per partition: a failure stops its partition until the
    /// message is settled; later messages of that partition come again after it.
    case partition
    /// A failed message is retried alone after the rest of its batch; the
    /// most throughput, for handlers whose messages are independent.
    case none
}

public struct HandlerSettings: Codable, Equatable, Sendable {
    public var kind = HandlerKind.sink
    /// For `exec`: the handler program as an argument vector.
    public var command: [String] = []
    /// For `exec`: the framing written to it, 1 (text, for any language and
    /// the shell) or 2 (binary, read in bulk: the handler kits in contrib).
    public var protocolVersion = 1
    /// For `cpu`: rounds of SHA-256 over each message's value.
    public var cpuRounds = 100
    /// The most messages handed to the handler at once.
    public var batchSize = 100
    /// For `exec`: batches written to the handler before the node waits for
    /// the oldest's answers, so that the node fetches and frames the next
    /// batch while the handler works (1: one at a time). 2 by measurement:
    /// BENCHMARKS.md, "Pipelined handlers".
    public var pipeline = 2
    /// Seconds one batch may stay in the handler before the node reports itself unhealthy.
    public var batchTimeout = 60.0
    /// How many times a failed message is retried before the failure policy applies.
    public var retries = 2
    /// Seconds before the first retry; doubles each time.
    public var retryBackoff = 0.1
    public var onFailure = FailurePolicy.skip
    /// Whether a failure keeps its partition in order (the default) or is retried out of line.
    public var ordering = Ordering.partition
    /// The dead-letter topic, for `on_failure = "dead-letter"`.
    public var deadLetterTopic = ""
    /// Seconds between offset commits.
    public var commitInterval = 5.0
    /// The level an exec handler's stderr lines are logged at: info, as
    /// systemd logs a service's stderr (a handler's own notes are not warnings).
    public var stderrLevel = LogLevel.info
    /// Lines of handler stderr logged per second and node (a burst of ten
    /// times this is allowed); the rest are counted in one `suppressed` line
    /// per 10 s. 0: no limit. See `LineRateLimiter` for why 20.
    public var stderrRate = 20

    public init() {}
}

public struct EmbeddedSettings: Codable, Equatable, Sendable {
    /// Brokers in the mock cluster.
    public var brokers = 1
    /// Partitions of each topic created in it.
    public var partitions = 6
    /// Synthetic messages per second produced to the first topic (0: none).
    public var produceRate = 0
    /// Size of each synthetic message's value, in bytes.
    public var messageSize = 100

    public init() {}
}

/// Many swarms (hosts, pods) in one group seen as one cluster, through a
/// Kafka topic every swarmd publishes its state to (Karafka's Web UI
/// shape): no coordinator of swarm's own. Off by default.
public struct ClusterSettings: Codable, Equatable, Sendable {
    /// The status topic (compacted, e.g. "swarm.status"); empty: off.
    public var statusTopic = ""
    /// Seconds between records when nothing changes (a change publishes at once).
    public var publishInterval = 5.0
    /// A swarm with no record for this long is stale: its host or swarmd is
    /// gone. Six intervals: a broker blip of a few records is not a death.
    public var staleAfter = 30.0

    public init() {}
}

/// swarmd's read-only HTTP listener: metrics, probes and a live page. Off
/// by default: a new port is a decision the operator makes.
public struct HTTPSettings: Codable, Equatable, Sendable {
    /// `host:port`, `[v6]:port`, or a port alone (loopback); empty: off.
    /// 9464 is the port OpenTelemetry's Prometheus exporter took; any port
    /// works. An address other than loopback only when written out.
    public var listen = ""

    public init() {}

    /// The address to bind, parsed: (host, port), nil when off.
    public static func parse(_ text: String) -> (host: String, port: UInt16)? {
        if text.isEmpty { return nil }
        if let port = UInt16(text) { return ("127.0.0.1", port) }
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), let port = UInt16(rest.dropFirst()), !host.isEmpty else { return nil }
            return (host, port)
        }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        let host = String(text[..<colon])
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }
}

/// Lag-aware autoscaling (`[autoscale]`, off by default): swarmd sizes the
/// swarm to the work within `min`…`max`. See swarmd.toml(5) for the rules.
public struct AutoscaleSettings: Codable, Equatable, Sendable {
    public var enabled = false
    public var min = 1
    /// 0: the number of partitions the swarm's nodes hold (more nodes than
    /// partitions only wait).
    public var max = 0
    /// Scale up when the lag would take longer than this to drain at the
    /// measured rate. In seconds because that is what an operator promises
    /// ("we are never more than a minute behind"), not a lag count.
    public var targetDrainSeconds = 60.0
    /// The least time after any change before a scale-up (every change is a rebalance).
    public var cooldownUp = 60.0
    /// The least time after any change, with the swarm idle all along, before
    /// a scale-down: much slower than up, as KEDA's default (300 s).
    public var cooldownDown = 300.0

    public init() {}
}
