/// What one swarmd publishes to the status topic (`[cluster] status_topic`),
/// every `publish_interval` and on every change, keyed by `key(group:prefix:)`;
/// a tombstone (null value) when it stops cleanly.
///
/// Versioned (`v`): a reader skips a record of a version it does not know,
/// and unknown keys are ignored, so swarmds of different versions can share
/// one topic during a rolling upgrade across hosts. Small on purpose (a
/// compacted topic keeps one per swarm): per node only what the cluster view
/// shows.
public struct ClusterRecord: Codable, Equatable, Sendable {
    public static let version = 1

    public var v = ClusterRecord.version
    /// The instance prefix: unique per swarm in a group (nodes are `<prefix>-<slot>`).
    public var prefix: String
    public var host: String
    public var group: String
    public var pid: Int32
    public var version: String
    /// Wall-clock seconds (Unix time) when it was written: readers on other
    /// hosts call a swarm stale when this is older than `stale_after`.
    public var at: Double
    /// Seconds between records: a reader can tell a slow publisher from a dead one.
    public var interval: Double
    public var state: String
    public var wanted: Int
    public var running: Int
    public var healthy: Int
    public var rate: Double
    public var lag: Int64
    public var nodes: [Node]

    public struct Node: Codable, Equatable, Sendable {
        public var slot: Int
        public var pid: Int32?
        public var state: String
        public var health: String
        public var rate: Double
        public var lag: Int64?
        /// Assigned partitions with their lag (`topic`, `partition`, `lag`).
        public var partitions: [PartitionLag]
        /// The Kafka client the node loaded and its group protocol (absent from older records).
        public var client: String?
        public var groupProtocol: String?

        public init(slot: Int, pid: Int32?, state: String, health: String, rate: Double, lag: Int64?, partitions: [PartitionLag],
                    client: String? = nil, groupProtocol: String? = nil) {
            self.client = client
            self.groupProtocol = groupProtocol
            self.slot = slot
            self.pid = pid
            self.state = state
            self.health = health
            self.rate = rate
            self.lag = lag
            self.partitions = partitions
        }
    }

    public init(prefix: String, host: String, group: String, pid: Int32, version: String, at: Double, interval: Double,
                state: String, wanted: Int, running: Int, healthy: Int, rate: Double, lag: Int64, nodes: [Node]) {
        self.prefix = prefix
        self.host = host
        self.group = group
        self.pid = pid
        self.version = version
        self.at = at
        self.interval = interval
        self.state = state
        self.wanted = wanted
        self.running = running
        self.healthy = healthy
        self.rate = rate
        self.lag = lag
        self.nodes = nodes
    }

    /// The record's key: one consumer group's swarms can share a status
    /// topic with other groups' without their prefixes colliding.
    public static func key(group: String, prefix: String) -> String { "\(group)/\(prefix)" }

    /// The record built from a swarm's status.
    public init(status: SwarmStatus, prefix: String, host: String, group: String, at: Double, interval: Double) {
        self.init(prefix: prefix, host: host, group: group, pid: status.pid, version: status.version ?? SwarmVersion.number, at: at,
                  interval: interval, state: status.state.rawValue, wanted: status.wanted, running: status.running, healthy: status.healthy,
                  rate: status.rate, lag: status.nodes.compactMap(\.lag).reduce(0) { $0.addingSaturating($1) },
                  nodes: status.nodes.map {
                      Node(slot: $0.slot, pid: $0.pid, state: $0.state.rawValue, health: $0.health.rawValue, rate: $0.rate, lag: $0.lag,
                           partitions: $0.partitionLag ?? [], client: $0.client, groupProtocol: $0.groupProtocol)
                  })
    }

    public func encoded() throws -> [UInt8] {
        try ControlProtocol.encoder.encode(self).serialized()
    }

    /// Nil for bytes that are not a record of a version this reader knows.
    public static func decode(_ bytes: [UInt8]) -> ClusterRecord? {
        guard let json = try? JSONValue.parse(bytes), case .number(let v)? = json["v"], Int(v) == version else { return nil }
        return try? ControlProtocol.decoder.decode(ClusterRecord.self, from: json)
    }
}
