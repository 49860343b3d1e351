/// The control socket's protocol: newline-delimited JSON, one request and one
/// response per line, each carrying `"v": 1`. Documented in swarmctl(1) so
/// scripts can speak it with `socat` or any language's JSON library.
public enum ControlProtocol {
    public static let version = 1
    /// Requests longer than this are refused and the connection closed.
    public static let maxRequestBytes = 64 * 1024

    /// Field names on the wire are snake case (`uptime_s`); keys are sorted.
    public static let encoder = JSONValueEncoder(snakeCaseKeys: true)
    public static let decoder = JSONValueDecoder(snakeCaseKeys: true)

    /// One JSON line (with its newline) for a value.
    public static func line<T: Encodable>(_ value: T) -> [UInt8] {
        if let r = value as? ControlResponse, let s = r.status, r.error == nil { return StatusJSON.line(r, s) }
        return codableLine(value)
    }

    /// The same through Codable (every other message, and the reference the status writer is tested against).
    public static func codableLine<T: Encodable>(_ value: T) -> [UInt8] {
        let json = (try? encoder.encode(value)) ?? .object([:])
        return json.serialized() + [UInt8(ascii: "\n")]
    }
}

public enum ControlCommand: String, Codable, Sendable, CaseIterable {
    case status, scale, drain, resume, restart, reload, stop, upgrade, metrics, autoscale
}

public struct ControlRequest: Codable, Equatable, Sendable {
    public var v: Int
    public var cmd: String
    /// `scale`: the absolute number of nodes wanted.
    public var nodes: Int?
    /// `scale`: a change relative to the current number (+2, -1).
    public var delta: Int?
    /// `drain`, `resume`, `restart`: the slots; none means all.
    public var slots: [Int]?
    /// `stop`: true for an immediate stop (as QUIT).
    public var now: Bool?
    /// `upgrade`: the new swarmd binary; none means the path swarmd was started from.
    public var binary: String?
    /// `autoscale`: true to let swarmd size the swarm again, false to stop it.
    public var on: Bool?

    public init(cmd: ControlCommand, nodes: Int? = nil, delta: Int? = nil, slots: [Int]? = nil, now: Bool? = nil, binary: String? = nil,
                on: Bool? = nil) {
        self.binary = binary
        self.on = on
        self.v = ControlProtocol.version
        self.cmd = cmd.rawValue
        self.nodes = nodes
        self.delta = delta
        self.slots = slots
        self.now = now
    }
}

/// The stable codes of a refused request, as swarmctl(1) lists them.
public enum ControlErrorCode: String, Codable, Sendable, CaseIterable {
    case badRequest = "bad-request"
    case unknownCommand = "unknown-command"
    case badArgument = "bad-argument"
    case badConfig = "bad-config"
    case tooLarge = "too-large"
    case permissionDenied = "permission-denied"
    case busy
    case shuttingDown = "shutting-down"
    case timeout
}

public struct ControlFailure: Codable, Equatable, Sendable, Error {
    /// A `ControlErrorCode` on the wire; kept a string so that a newer
    /// swarmd's code still reaches an older swarmctl's user.
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public init(_ code: ControlErrorCode, _ message: String) {
        self.code = code.rawValue
        self.message = message
    }
}

public struct ControlResponse: Codable, Equatable, Sendable {
    public var v = ControlProtocol.version
    public var ok: Bool
    public var message: String?
    public var error: ControlFailure?
    public var status: SwarmStatus?

    public init(ok: Bool, message: String? = nil, error: ControlFailure? = nil, status: SwarmStatus? = nil) {
        self.ok = ok
        self.message = message
        self.error = error
        self.status = status
    }

    public static func failure(_ code: ControlErrorCode, _ message: String) -> ControlResponse {
        ControlResponse(ok: false, error: ControlFailure(code, message))
    }
}

/// What `swarmctl status --json` prints: the swarm and every node. The field
/// names are a stable interface (swarmctl(1) lists them).
public struct SwarmStatus: Codable, Equatable, Sendable {
    public var pid: Int32
    public var state: SwarmStatusState
    public var wanted: Int
    public var running: Int
    public var healthy: Int
    public var uptimeS: Double
    public var restarts: Int
    public var handled: Int64
    public var failed: Int64
    public var rate: Double
    public var malformedReports: Int
    /// The running swarmd's version and build ("0.3.0 (build 2026-11-28 05:20:01)").
    public var version: String?
    /// In-place upgrades of swarmd since it was started (`swarmctl upgrade`, USR2).
    public var upgrades: Int?
    /// The Kafka client swarmd itself loaded ("librdkafka/2.14.2").
    public var client: String?
    /// The configuration file swarmd runs (absolute), if it was given one:
    /// `swarmctl status --cluster` reads the status topic and the brokers
    /// from it.
    public var config: String?
    /// Lag-aware autoscaling, when `[autoscale] enabled`.
    public var autoscale: AutoscaleStatus?
    /// Every swarm of the group, from the status topic, when `[cluster] status_topic` is set.
    public var cluster: ClusterView?
    /// The lag of the partitions no node reports (every node drained, a
    /// rebalance under way, a node gone), as the broker states it: asked
    /// every few seconds by swarmd itself. Absent when every partition is
    /// reported by a node.
    public var unownedLag: [PartitionLag]?
    public var nodes: [NodeStatus]

    public init(pid: Int32, state: SwarmStatusState, wanted: Int, running: Int, healthy: Int, uptimeS: Double, restarts: Int,
                handled: Int64, failed: Int64, rate: Double, malformedReports: Int, version: String? = nil, upgrades: Int? = nil,
                autoscale: AutoscaleStatus? = nil, nodes: [NodeStatus]) {
        self.autoscale = autoscale
        self.version = version
        self.upgrades = upgrades
        self.pid = pid
        self.state = state
        self.wanted = wanted
        self.running = running
        self.healthy = healthy
        self.uptimeS = uptimeS
        self.restarts = restarts
        self.handled = handled
        self.failed = failed
        self.rate = rate
        self.malformedReports = malformedReports
        self.nodes = nodes
    }
}

public struct NodeStatus: Codable, Equatable, Sendable {
    public var slot: Int
    public var pid: Int32?
    public var state: NodeStatusState
    public var uptimeS: Double
    public var restarts: Int
    public var lastExit: String?
    /// The whole node: the node process and its handler's processes (RSS counts shared pages in each).
    public var rssBytes: Int64?
    /// The whole node's proportional set size: what `memory_limit` compares.
    public var pssBytes: Int64?
    /// The parts: the node process first, then its handler and whatever that started.
    public var processes: [ProcessMemoryStatus]?
    public var handled: Int64
    public var failed: Int64
    public var rate: Double
    public var partitions: Int64
    public var lag: Int64?
    /// Lag of each assigned partition, as the node reports it.
    public var partitionLag: [PartitionLag]?
    public var reportAgeMs: Int64?
    public var health: NodeHealth
    /// Where the node stands with Kafka (`KafkaCondition`), as it reported it.
    public var kafka: String?
    /// Why the node is not healthy, when it is not.
    public var reason: String?
    /// The Kafka client it loaded ("librdkafka/2.14.2") and the group
    /// protocol it joined with ("classic", "consumer"), as it reported them.
    public var client: String?
    public var groupProtocol: String?

    public init(slot: Int, pid: Int32?, state: NodeStatusState, uptimeS: Double, restarts: Int, lastExit: String?, rssBytes: Int64?,
                handled: Int64, failed: Int64, rate: Double, partitions: Int64, lag: Int64?, partitionLag: [PartitionLag]? = nil,
                reportAgeMs: Int64?, health: NodeHealth) {
        self.slot = slot
        self.pid = pid
        self.state = state
        self.uptimeS = uptimeS
        self.restarts = restarts
        self.lastExit = lastExit
        self.rssBytes = rssBytes
        self.pssBytes = nil
        self.processes = nil
        self.handled = handled
        self.failed = failed
        self.rate = rate
        self.partitions = partitions
        self.lag = lag
        self.partitionLag = partitionLag
        self.reportAgeMs = reportAgeMs
        self.health = health
    }
}

/// One process of a node, in `swarmctl status --json`.
public struct ProcessMemoryStatus: Codable, Equatable, Sendable {
    public var pid: Int32
    public var name: String
    public var rssBytes: Int64
    /// Read once per report interval while `memory_limit` is set; absent otherwise.
    public var pssBytes: Int64?

    public init(pid: Int32, name: String, rssBytes: Int64, pssBytes: Int64?) {
        self.pid = pid
        self.name = name
        self.rssBytes = rssBytes
        self.pssBytes = pssBytes
    }
}

/// One partition's lag in `swarmctl status --json`. (An array of objects, not
/// a map keyed by topic: key strategies would rewrite topic names.)
public struct PartitionLag: Codable, Equatable, Sendable {
    public var topic: String
    public var partition: Int32
    public var lag: Int64

    /// The partition, as a value.
    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }

    public init(topic: String, partition: Int32, lag: Int64) {
        self.topic = topic
        self.partition = partition
        self.lag = lag
    }

    /// From a report's lags, sorted by topic and partition; a lag not known
    /// yet (-1, just after an assignment) is left out rather than shown as a
    /// number: status, the cluster record and /metrics then have no figure
    /// for it (Prometheus: an absent sample), never a false one.
    public static func list(_ lags: [TopicPartition: Int64]) -> [PartitionLag] {
        lags.keys.sorted().compactMap { lags[$0]! >= 0 ? PartitionLag(topic: $0.topic, partition: $0.partition, lag: lags[$0]!) : nil }
    }
}

/// The autoscaler, in `swarmctl status --json`.
public struct AutoscaleStatus: Codable, Equatable, Sendable {
    /// True while swarmd sizes the swarm; false after a manual scale or `swarmctl autoscale off`.
    public var active: Bool
    public var min: Int
    public var max: Int
    /// "3 -> 5", and why.
    public var lastDecision: String?
    public var reason: String?
    /// Seconds until a step up may happen (cooldowns and hold-offs), 0 if now.
    public var nextChangeInS: Double

    public init(active: Bool, min: Int, max: Int, lastDecision: String?, reason: String?, nextChangeInS: Double) {
        self.active = active
        self.min = min
        self.max = max
        self.lastDecision = lastDecision
        self.reason = reason
        self.nextChangeInS = nextChangeInS
    }
}
