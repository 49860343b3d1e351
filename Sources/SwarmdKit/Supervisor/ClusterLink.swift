#if canImport(Glibc)
import Glibc
#endif
import Logging
import Shared
import SwarmKafka
import Synchronization

/// swarmd's side of the cluster view (`[cluster] status_topic`): it
/// publishes this swarm's record and follows everyone's, so that `/metrics`,
/// the page and `status --json` show the whole group.
///
/// Never in the way of the supervisor's loop: a produce only queues (the
/// queue holds 10 records; when the broker is away the rest are dropped and
/// counted, and a queued record expires after two intervals: old news is no
/// news), and the topic is followed on a thread of its own.
public final class ClusterLink {
    let topic: String
    let group: String
    let prefix: String
    let host: String
    let settings: ClusterSettings
    let consumedTopics: [String]
    private let producer: KafkaProducer
    private let readerProperties: [String: String]
    private let logger: Logger
    private var lastPublishAt = -Double.infinity
    private var lastLookAt = -Double.infinity
    private var lastSignature = ""
    private(set) var published = 0
    private var refused = 0
    /// Records not delivered: refused by a full queue, or expired in it.
    var dropped: Int { refused + producer.failedDeliveries }

    /// What the watcher thread shares with the loop: the latest record per
    /// key, the consumed topics' partition counts, and whether to go on.
    final class Seen: Sendable {
        let state = Mutex<(records: [[UInt8]: ClusterRecord], partitions: [String: Int])>(([:], [:]))
        let running = Atomic<Bool>(true)
    }
    private let seen = Seen()
    private var watcher: pthread_t?

    init(config: SwarmConfig, properties: [String: String], prefix: String, logger: Logger) throws {
        settings = config.cluster
        topic = config.cluster.statusTopic
        group = config.kafka.groupId
        consumedTopics = config.kafka.topics
        self.prefix = prefix
        self.host = hostName()
        self.logger = logger
        var p = properties
        p["log_level"] = p["log_level"] ?? "3"
        p["client.id"] = "swarmd-\(prefix)-status"
        p["queue.buffering.max.messages"] = "10"
        p["message.timeout.ms"] = String(Int(saturating: config.cluster.publishInterval * 2000))
        p["linger.ms"] = "0"
        producer = try KafkaProducer(properties: p)
        var r = properties
        r["log_level"] = r["log_level"] ?? "3"
        r["client.id"] = "swarmd-\(prefix)-status-reader"
        readerProperties = r
        let topic = self.topic, topics = consumedTopics, seen = self.seen
        watcher = startThread(name: "cluster-watch") {
            Self.follow(topic: topic, consumed: topics, properties: r, seen: seen, logger: logger)
        }
    }

    /// Reads the status topic from its beginning and keeps up with it until stopped.
    private static func follow(topic: String, consumed: [String], properties: [String: String], seen: Seen, logger: Logger) {

        var reader: KafkaTopicReader?
        var lastMetadata = -Double.infinity
        while seen.running.load(ordering: .relaxed) {
            if reader == nil {
                do {
                    let r = try KafkaTopicReader(properties: properties)
                    try r.start(topic: topic, timeoutMs: 2000)
                    reader = r
                } catch {
                    logger.warning("cluster: cannot read the status topic yet: \(error); trying again", metadata: ["topic": "\(topic)"])
                    for _ in 0..<10 where seen.running.load(ordering: .relaxed) { sleepSeconds(0.5) }
                    continue
                }
            }
            let now = monotonicNow()
            if now - lastMetadata >= 30, let counts = reader?.partitions(of: consumed, timeoutMs: 1000) {
                lastMetadata = now
                seen.state.withLock { $0.partitions = counts }
            }
            let records = reader?.poll(timeoutMs: 500) ?? []
            guard !records.isEmpty else { continue }
            seen.state.withLock { ClusterView.fold(records.map { ($0.key, $0.value) }, into: &$0.records) }
        }
    }

    /// Refuses to start when another live swarmd of this group already
    /// publishes under this prefix: two swarms with one prefix would share
    /// static member ids and fence each other out of the group. A record of
    /// a predecessor on this host whose pid is gone (a crash, then this
    /// start) is no conflict. Unreadable within `timeoutMs`: said, not fatal.
    func checkUnique(timeoutMs: Int32) throws {
        let records: [KafkaTopicReader.Record]
        do {
            let reader = try KafkaTopicReader(properties: readerProperties)
            let read = try reader.readToEnd(topic: topic, timeoutMs: timeoutMs)
            records = read.records
            if !read.complete { logger.warning("cluster: the status topic was not read to its end within \(timeoutMs) ms; the prefix check saw part of it") }
        } catch {
            logger.warning("cluster: cannot read the status topic to check that prefix \"\(prefix)\" is unique (\(error)); starting anyway")
            return
        }
        let now = wallClock()
        let key = Array(ClusterRecord.key(group: group, prefix: prefix).utf8)
        let latest = ClusterView.latest(records.filter { $0.key == key }.map { ($0.key, $0.value) })
        guard let other = latest.first, now - other.at <= settings.staleAfter else { return }
        if other.host == host && (other.pid == getpid() || !processExists(other.pid)) { return }
        throw SwarmError(.config, """
            another swarmd publishes as instance prefix "\(prefix)" for group "\(group)" (host \(other.host), pid \(other.pid), \
            \(Int(saturating: (now - other.at).rounded())) s ago): give this one another [supervisor] instance_prefix (it defaults to the host name)
            """)
    }

    /// When the loop should come back: the next look for a change.
    var nextDeadline: Double { lastLookAt + min(1, settings.publishInterval) }

    /// Publishes the swarm's record when `publish_interval` has passed or
    /// the swarm changed (a node's state, health or partitions; looked at
    /// once a second at most). `status` is asked for only then.
    func tick(now: Double, status: () -> SwarmStatus) {
        guard now >= nextDeadline else { return }
        lastLookAt = now
        producer.poll()
        let s = status()
        let signature = s.nodes.map { "\($0.slot):\($0.state.rawValue):\($0.health.rawValue):\(($0.partitionLag ?? []).map { "\($0.topic)/\($0.partition)" })" }.joined(separator: ",") + s.state.rawValue
        guard signature != lastSignature || now - lastPublishAt >= settings.publishInterval else { return }
        lastSignature = signature
        lastPublishAt = now
        let record = ClusterRecord(status: s, prefix: prefix, host: host, group: group, at: wallClock(), interval: settings.publishInterval)
        guard let bytes = try? record.encoded() else { return }
        if let error = producer.produce(topic: topic, key: Array(ClusterRecord.key(group: group, prefix: prefix).utf8), value: bytes) {
            refused += 1
            if refused == 1 || refused % 100 == 0 {
                logger.warning("cluster: status record dropped: \(error)", metadata: ["dropped": "\(dropped)", "topic": "\(topic)"])
            }
        } else {
            published += 1
        }
    }

    /// The cluster as the status topic says now.
    func view(now: Double = wallClock()) -> ClusterView {
        let (records, partitions) = seen.state.withLock { (Array($0.records.values), $0.partitions) }
        return ClusterView(group: group, records: records, topics: partitions, now: now, staleAfter: settings.staleAfter)
    }

    /// A clean stop: a tombstone, so that readers drop this swarm at once
    /// instead of calling it stale later. Waits 2 s at most for it to go out.
    func stop(tombstone: Bool) {
        seen.running.store(false, ordering: .relaxed)
        if tombstone {
            _ = producer.produce(topic: topic, key: Array(ClusterRecord.key(group: group, prefix: prefix).utf8), value: nil)
            producer.flush(timeoutMs: 2000)
        }
        if let t = watcher { pthread_join(t, nil); watcher = nil }
    }
}

extension ClusterLink {
    /// The cluster view from anywhere that reaches the brokers, swarmd or
    /// not (`swarmd cluster`, `swarmctl status --cluster`): the status topic
    /// read to its end, the consumed topics' partition counts from metadata.
    public static func read(topic: String, group: String, consumed: [String], properties: [String: String],
                            staleAfter: Double, timeoutMs: Int32) throws -> ClusterView {
        do {
            return try readView(topic: topic, group: group, consumed: consumed, properties: properties, staleAfter: staleAfter, timeoutMs: timeoutMs)
        } catch let e as KafkaError {
            throw SwarmError(.broker, "\(e)")
        }
    }

    private static func readView(topic: String, group: String, consumed: [String], properties: [String: String],
                                 staleAfter: Double, timeoutMs: Int32) throws -> ClusterView {
        var p = properties
        p["log_level"] = p["log_level"] ?? "3"
        p["client.id"] = p["client.id"] ?? "swarm-cluster-view"
        let reader = try KafkaTopicReader(properties: p)
        guard let partitions = reader.partitions(of: consumed, timeoutMs: timeoutMs) else {
            throw SwarmError(.broker, "no broker of \(properties["bootstrap.servers"] ?? "?") answered within \(timeoutMs) ms")
        }
        let read = try reader.readToEnd(topic: topic, timeoutMs: timeoutMs)
        if !read.complete {
            throw SwarmError(.broker, "the status topic \(topic) was not read to its end within \(timeoutMs) ms")
        }
        return ClusterView(group: group, records: ClusterView.latest(read.records.map { ($0.key, $0.value) }),
                           topics: partitions, now: wallClock(), staleAfter: staleAfter)
    }
}

/// Wall-clock seconds (Unix time): records are compared across hosts.
func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
