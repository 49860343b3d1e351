/// One liveness report, written by a node to its report pipe (fd 3) as one
/// line of space-separated `key=value` pairs:
///
///     v=1 health=ok state=running kafka=consuming handled=1200 failed=3 inflight=10 inflight_age_ms=40 partitions=3 poll_age_ms=12 lag=40 partition_lag=events/0:40,events/3:0
///
/// Why this format: a node in any language (even `echo … >&3` in a shell)
/// can write it, and unknown keys are ignored so newer nodes keep working
/// with older supervisors. `v` is required and must be 1. swarmd.8 documents it.
public struct NodeReport: Codable, Equatable, Sendable {
    public static let version = 1
    /// Lines longer than this are malformed (and a pipe that floods us cannot grow our memory).
    public static let maxLineLength = 4096
    /// The largest count a report may carry (2^53): no node handles 9e15
    /// messages, every Double conversion of it is exact, and sums over
    /// 1,024 nodes stay far from Int64's limit.
    public static let maxCount: Int64 = 1 << 53

    public enum Health: String, Codable, Sendable { case ok, unhealthy }
    /// What a node says it is doing; the supervisor's own view of the node is `NodeState`.
    public enum State: String, Codable, Sendable { case starting, running, draining, drained, stopping }

    public var health = Health.ok
    public var state = State.running
    /// Where the node stands with Kafka (`KafkaCondition`); nil from a node
    /// that does not say (a custom `node_command`): it counts as consuming.
    public var kafka: KafkaCondition?
    /// Why a node reports itself unhealthy (see `UnhealthyReason`).
    public var reason = 0
    public var detail = ""
    public var handled: Int64 = 0
    public var failed: Int64 = 0
    public var inflight: Int64 = 0
    public var inflightAgeMs: Int64 = 0
    public var partitions: Int64 = 0
    public var pollAgeMs: Int64 = 0
    public var lag: Int64 = -1
    /// Messages retried after a failure, dead-lettered, and rebalances this
    /// node went through (`retried=`, `dead_lettered=`, `rebalances=`).
    public var retried: Int64 = 0
    public var deadLettered: Int64 = 0
    public var rebalances: Int64 = 0
    /// Holds this node has answered (`holds=`): each means "everything I
    /// handled is committed, and I handle nothing until the group's next
    /// assignment". swarmd changes the group once every held node answered
    /// (its commit barrier).
    public var holds: Int64 = 0

    /// How long the handler took per batch: counts per bucket of
    /// `batchBucketsMs` (the last is everything slower), and the sum
    /// (`batch_ms=3,10,…` and `batch_sum_ms=` on the wire).
    public var batchBuckets: [Int64] = []
    public var batchSumMs: Int64 = 0
    /// Upper bounds of the batch-time buckets, in milliseconds: from a sink
    /// batch (under 1 ms) to a handler near the default batch_timeout (60 s).
    public static let batchBucketsMs: [Int64] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000]

    /// The bucket a batch of `ms` milliseconds falls in.
    public static func batchBucket(ms: Double) -> Int {
        batchBucketsMs.firstIndex { ms <= Double($0) } ?? batchBucketsMs.count
    }

    /// The counters metrics sum over a slot's processes.
    public enum Counter: String, CaseIterable, Sendable {
        case retried, deadLettered = "dead_lettered", rebalances
    }

    public subscript(counter: Counter) -> Int64 {
        switch counter {
        case .retried: return retried
        case .deadLettered: return deadLettered
        case .rebalances: return rebalances
        }
    }

    /// Partitions stopped at a failing message (retried in order), as
    /// `stuck=t/0,t/3`: their lag does not move however many nodes there are,
    /// so autoscaling leaves them out (KEDA's `excludePersistentLag`).
    public var stuck: Set<TopicPartition> = []

    /// The Kafka client the node loaded and the group protocol it joined
    /// with (`client=librdkafka/2.14.2 group_protocol=classic`): status,
    /// /metrics and the cluster view name both per node, so a mixed fleet
    /// (a node started before an upgrade of the library) shows. Empty from a
    /// node that does not say.
    public var client = ""
    public var groupProtocol = ""

    /// Lag of each assigned partition, as `partition_lag=t/0:5,t/1:0` on the wire (at most 200 partitions).
    /// -1 means not known yet (no position and no committed offset read since
    /// the assignment): never the partition's whole size.
    public var partitionLag: [TopicPartition: Int64] = [:]

    public init() {}

    public func encoded() -> String {
        var s = "v=\(Self.version) health=\(health.rawValue) state=\(state.rawValue)\(kafka.map { " kafka=\($0.rawValue)" } ?? "") handled=\(handled) failed=\(failed) inflight=\(inflight) inflight_age_ms=\(inflightAgeMs) partitions=\(partitions) poll_age_ms=\(pollAgeMs) lag=\(lag)"
        if health == .unhealthy { s += " reason=\(reason)" }
        if retried > 0 { s += " retried=\(retried)" }
        if deadLettered > 0 { s += " dead_lettered=\(deadLettered)" }
        if rebalances > 0 { s += " rebalances=\(rebalances)" }
        if holds > 0 { s += " holds=\(holds)" }
        if !client.isEmpty { s += " client=\(client)" }
        if !groupProtocol.isEmpty { s += " group_protocol=\(groupProtocol)" }
        if !stuck.isEmpty { s += " stuck=" + stuck.sorted().prefix(200).map { "\($0.topic)/\($0.partition)" }.joined(separator: ",") }
        if !batchBuckets.isEmpty { s += " batch_ms=" + batchBuckets.map(String.init).joined(separator: ",") + " batch_sum_ms=\(batchSumMs)" }
        if !partitionLag.isEmpty {
            s += " partition_lag=" + partitionLag.keys.sorted().prefix(200).map { "\($0.topic)/\($0.partition):\(partitionLag[$0]!)" }.joined(separator: ",")
        }
        if !detail.isEmpty { s += " detail=\(Self.escapeDetail(detail))" }
        return s + "\n"
    }

    /// Parses one line; the error says what is wrong with it, for the log.
    public static func parse(_ line: [UInt8]) throws -> NodeReport {
        guard let text = String(validating: line, as: UTF8.self), !line.contains(0) else {
            throw SwarmError(.report, "not UTF-8")
        }
        var report = NodeReport()
        var sawVersion = false
        for field in text.split(separator: " ", omittingEmptySubsequences: true) {
            guard let eq = field.firstIndex(of: "=") else {
                throw SwarmError(.report, "'\(field.prefix(40))' is not key=value")
            }
            let key = field[..<eq]
            let value = String(field[field.index(after: eq)...])
            /// Every count a node reports is range-checked here, where it is read:
            /// swarmd subtracts and sums them, and one absurd value must be
            /// refused with its name, not trap the supervisor (issue #27).
            func int(from low: Int64 = 0) throws -> Int64 {
                guard let v = Int64(value) else { throw SwarmError(.report, "\(key)=\(value.prefix(40)) is not an integer") }
                guard v >= low, v <= Self.maxCount else {
                    throw SwarmError(.report, "\(key)=\(value.prefix(40)) is out of range (\(low)...\(Self.maxCount))")
                }
                return v
            }
            switch key {
            case "v":
                guard value == String(Self.version) else {
                    throw SwarmError(.report, "version \(value.prefix(10)) is not supported (this swarmd speaks v=\(Self.version))")
                }
                sawVersion = true
            case "health":
                guard let h = Health(rawValue: value) else { throw SwarmError(.report, "health=\(value.prefix(40)) is not ok or unhealthy") }
                report.health = h
            case "state":
                guard let s = State(rawValue: value) else { throw SwarmError(.report, "state=\(value.prefix(40)) is unknown") }
                report.state = s
            case "kafka":
                guard let k = KafkaCondition(rawValue: value) else {
                    throw SwarmError(.report, "kafka=\(value.prefix(40)) is not one of \(KafkaCondition.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                report.kafka = k
            case "reason": report.reason = Int(try int())  // 0...maxCount: fits an Int on 64-bit Linux
            case "detail": report.detail = Self.unescapeDetail(String(value.prefix(600)), limit: 200)
            case "handled": report.handled = try int()
            case "failed": report.failed = try int()
            case "inflight": report.inflight = try int()
            case "inflight_age_ms": report.inflightAgeMs = try int()
            case "partitions": report.partitions = try int()
            case "poll_age_ms": report.pollAgeMs = try int()
            case "lag": report.lag = try int(from: -1)
            case "retried": report.retried = try int()
            case "dead_lettered": report.deadLettered = try int()
            case "rebalances": report.rebalances = try int()
            case "holds": report.holds = try int()
            case "batch_ms":
                let counts = value.split(separator: ",").map { Int64($0) }
                guard counts.count == batchBucketsMs.count + 1, counts.allSatisfy({ $0 != nil && $0! >= 0 && $0! <= Self.maxCount }) else {
                    throw SwarmError(.report, "batch_ms needs \(batchBucketsMs.count + 1) counts separated by commas")
                }
                report.batchBuckets = counts.map { $0! }
            case "batch_sum_ms": report.batchSumMs = try int()
            case "client", "group_protocol":
                // A word: letters, digits and ._/+- (it lands in metrics labels and the log).
                guard (1...40).contains(value.utf8.count),
                      value.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || "._/+-".utf8.contains($0) }) else {
                    throw SwarmError(.report, "\(key)=\(value.prefix(40)) is not a word of 1 to 40 letters, digits or ._/+-")
                }
                if key == "client" { report.client = value } else { report.groupProtocol = value }
            case "stuck":
                for item in value.split(separator: ",") {
                    guard let slash = item.lastIndex(of: "/"), let partition = Int32(item[item.index(after: slash)...]), partition >= 0 else {
                        throw SwarmError(.report, "stuck item '\(item.prefix(40))' is not topic/partition")
                    }
                    report.stuck.insert(TopicPartition(topic: String(item[..<slash]), partition: partition))
                }
            case "partition_lag":
                for item in value.split(separator: ",") {
                    // Topic names may hold '/' but never ':' (Kafka allows [a-zA-Z0-9._-]).
                    guard let colon = item.lastIndex(of: ":"), let lag = Int64(item[item.index(after: colon)...]),
                          let slash = item[..<colon].lastIndex(of: "/"), let partition = Int32(item[item.index(after: slash)..<colon]),
                          partition >= 0 else {
                        throw SwarmError(.report, "partition_lag item '\(item.prefix(40))' is not topic/partition:lag")
                    }
                    guard lag >= -1, lag <= Self.maxCount else {
                        throw SwarmError(.report, "partition_lag item '\(item.prefix(40))': lag out of range (-1 for unknown...\(Self.maxCount))")
                    }
                    report.partitionLag[TopicPartition(topic: String(item[..<slash]), partition: partition)] = lag
                }
            default: break  // forward compatible: newer keys are ignored
            }
        }
        guard sawVersion else { throw SwarmError(.report, "no v=\(Self.version) field") }
        return report
    }
}

extension NodeReport {
    /// A detail travels as one word of the report line: "%", spaces and
    /// control characters as %XX. (Nodes before 0.3.0 sent spaces as "_",
    /// which still reads, as underscores.)
    static func escapeDetail(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for u in text.utf8 {
            if u == UInt8(ascii: "%") || u <= 0x20 || u == 0x7F {
                out += [UInt8(ascii: "%"), hex[Int(u >> 4)], hex[Int(u & 0xF)]]
            } else {
                out.append(u)  // bytes of other characters pass as they are: the line stays UTF-8
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func unescapeDetail(_ word: String, limit: Int) -> String {
        var bytes: [UInt8] = []
        var it = Array(word.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%"), it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v < 0x20 || v == 0x7F ? 0x20 : v)
                it = it.dropFirst(2)
            } else {
                bytes.append(b)
            }
        }
        return String(String(decoding: bytes, as: UTF8.self).prefix(limit))
    }
}

/// Where a built-in node stands with Kafka, as it reports it (`kafka=`).
/// Healthy means consuming, not "the process reports": Burrow's lag rules
/// and Karafka Pro's separate polling and rebalance limits are the models.
/// None of these restarts a node — restarting consumers brings no broker
/// back; only a wedged process (`UnhealthyReason`: stalled, stuck) is restarted.
public enum KafkaCondition: String, Codable, Sendable, CaseIterable {
    /// Subscribed, not assigned yet: the first join of the group.
    case joining
    /// Assigned, and messages arrived within the last report intervals (or lag is waiting).
    case consuming
    /// Assigned, nothing to do: healthy.
    case idle
    /// The group's assignment gave this node no partition (more nodes than
    /// partitions): healthy, and said so.
    case waiting
    /// Its partitions were revoked and the new assignment has not come yet.
    case rebalancing
    /// Joining or rebalancing for longer than `rebalance_limit`: the group is stuck.
    case rebalancingTooLong = "rebalancing-too-long"
    /// No broker reachable for longer than `disconnected_after`.
    case disconnected
    /// The brokers refused this client's credentials (SASL) or the TLS
    /// handshake failed: a wrong password, user or certificate. Its own
    /// condition, not `disconnected`, because the fix is the operator's
    /// and no restart helps; librdkafka retries with its reconnect backoff
    /// (up to `reconnect.backoff.max.ms`, 10 s), so a refused node does not
    /// hammer the broker.
    case authFailed = "auth-failed"
    /// A subscribed topic does not exist on the brokers (deleted, or a
    /// broker started again empty): the node waits for it to appear.
    case unknownTopic = "unknown-topic"

    /// Counts as healthy for `swarmctl status` (exit 0) and the swarm's health.
    public var isHealthy: Bool { self == .consuming || self == .idle || self == .waiting || self == .rebalancing }
    /// The group's assignment is settled for this node: READY may be sent.
    public var isSettled: Bool { self == .consuming || self == .idle || self == .waiting }
}

/// The numbered reasons a node gives for reporting itself unhealthy.
public enum UnhealthyReason: Int, Sendable {
    case pollStalled = 1
    case handlerStuck = 2
    case memoryOverLimit = 3
    case handlerFailing = 4

    public static func describe(_ code: Int) -> String {
        switch UnhealthyReason(rawValue: code) {
        case .pollStalled: return "poll stalled"
        case .handlerStuck: return "handler stuck on one batch"
        case .memoryOverLimit: return "memory over limit"
        case .handlerFailing: return "handler failing"
        case nil: return "reason \(code)"
        }
    }
}

/// One partition of one topic: a value end to end, never a "topic/partition"
/// string split apart again.
public struct TopicPartition: Hashable, Comparable, Codable, Sendable {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (a: TopicPartition, b: TopicPartition) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
}

/// The fds and environment a node is started with. Documented in swarmd(8).
public enum NodeEnvironment {
    /// The node writes its reports here.
    public static let reportFd: Int32 = 3
    /// The supervisor writes commands here (`drain`, `resume`); EOF means the supervisor is gone.
    public static let controlFd: Int32 = 4

    public static let slot = "SWARM_SLOT"
    public static let nodeId = "SWARM_NODE_ID"
    public static let reportFdName = "SWARM_REPORT_FD"
    public static let controlFdName = "SWARM_CONTROL_FD"
    public static let reportInterval = "SWARM_REPORT_INTERVAL"
    public static let supervisorPid = "SWARM_SUPERVISOR_PID"
    /// The built-in node reads its configuration (JSON) from this fd, a
    /// sealed memfd, and closes it: unlike an environment variable, nothing
    /// the node starts (its exec handler) can inherit it, so Kafka secrets
    /// stay with the node that owns the connection.
    public static let configFd: Int32 = 5

    /// The framing an exec handler is written in (1 or 2), so that one
    /// handler library reads either.
    public static let handlerProtocol = "SWARM_HANDLER_PROTOCOL"

    /// Variables that are swarm's plumbing between supervisor and node; the
    /// node removes them before it starts an exec handler.
    public static let internalNames = [reportFdName, controlFdName, reportInterval, supervisorPid]
}
