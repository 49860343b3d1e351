#if canImport(Glibc)
import Glibc
#endif
import Logging
import Shared
import SwarmKafka
import Synchronization

/// The group's lag as the broker states it (its high watermark less the
/// group's committed offset, as kafka_exporter reads it), for the partitions
/// that no node reports: with every node drained, between a revocation and
/// the next assignment, or with fewer nodes than the topic has partitions
/// and one of them gone. Without it those partitions vanished from status
/// and `kafka_consumergroup_lag` exactly when nobody consumed them.
///
/// Asked every `interval` seconds on a thread of its own, through a
/// consumer that never joins the group, so the supervisor's loop never
/// waits for a broker.
final class GroupLag {
    /// Seconds between readings: a dashboard's scrape interval, not the
    /// nodes' report interval (each reading is a metadata request, one
    /// committed-offsets request and one watermark request per partition).
    static let interval = 5.0

    final class Shared: Sendable {
        /// Every partition's lag in the latest reading; nil before the first.
        let latest = Mutex<[PartitionLag]?>(nil)
        let running = Atomic<Bool>(true)
    }
    private let shared = Shared()
    private var thread: pthread_t?
    /// The group, topics and properties it reads for (a reload that changes them starts a new one).
    let kafka: KafkaSettings

    init(config: SwarmConfig, logger: Logger) {
        kafka = config.kafka
        var p = config.kafka.properties
        p["group.id"] = config.kafka.groupId
        p["client.id"] = "swarmd-lag"
        p["log_level"] = p["log_level"] ?? "3"
        p["enable.auto.commit"] = "false"
        // A group never committed to reads from where its nodes would start.
        let fromStart = ["earliest", "smallest", "beginning"].contains(p["auto.offset.reset"] ?? "latest")
        let topics = config.kafka.topics.filter { !$0.hasPrefix("^") }
        let shared = self.shared
        thread = startThread(name: "group-lag") {
            Self.follow(topics: topics, properties: p, fromStart: fromStart, shared: shared, logger: logger)
        }
    }

    private static func follow(topics: [String], properties: [String: String], fromStart: Bool, shared: Shared, logger: Logger) {
        var consumer: KafkaConsumer?
        while shared.running.load(ordering: .relaxed) {
            if consumer == nil {
                do { consumer = try KafkaConsumer(properties: properties) } catch {
                    logger.warning("group lag: cannot make a consumer to ask the broker: \(error)")
                }
            }
            if let c = consumer, let counts = c.partitionCounts(of: topics, timeoutMs: 2000) {
                var lags: [PartitionLag] = []
                for topic in counts.keys.sorted() {
                    let n = counts[topic]!
                    let committed: [Int64]
                    do { committed = try c.committed(topic: topic, partitions: n, timeoutMs: 2000) } catch {
                        logger.debug("group lag: \(error)")
                        continue
                    }
                    for p in 0..<n {
                        let w: (low: Int64, high: Int64)
                        do { w = try c.watermarks(topic: topic, partition: Int32(p), timeoutMs: 2000) } catch {
                            logger.debug("group lag: \(error)")
                            continue
                        }
                        let from = committed[p] >= 0 ? committed[p] : (fromStart ? w.low : w.high)
                        lags.append(PartitionLag(topic: topic, partition: Int32(p), lag: max(0, w.high - from)))
                    }
                }
                shared.latest.withLock { $0 = lags }
            } else {
                logger.debug("group lag: no broker answered a metadata request within 2 s")
            }
            let until = monotonicNow() + interval
            while shared.running.load(ordering: .relaxed) && monotonicNow() < until { sleepSeconds(0.25) }
        }
        consumer?.close()
    }

    /// The lag of the partitions in the latest reading that no node reports.
    func unowned(by nodes: [NodeStatus]) -> [PartitionLag]? {
        guard let reading = shared.latest.withLock({ $0 }) else { return nil }
        var owned: Set<TopicPartition> = []
        for n in nodes { owned.formUnion((n.partitionLag ?? []).map(\.topicPartition)) }
        let lags = reading.filter { !owned.contains($0.topicPartition) }
        return lags.isEmpty ? nil : lags
    }

    func stop() {
        shared.running.store(false, ordering: .relaxed)
        if let t = thread { pthread_join(t, nil); thread = nil }
    }
}
