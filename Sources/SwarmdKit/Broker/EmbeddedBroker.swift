#if canImport(Glibc)
import Glibc
#endif
import Logging
import Shared
import SwarmKafka
import Synchronization

/// librdkafka's mock cluster hosted inside swarmd (`"bootstrap.servers" =
/// "embedded"`), with the configured topics created and, optionally, a
/// synthetic producer feeding the first one. A development broker: nothing
/// is persisted and each partition keeps only ~5 MiB.
final class EmbeddedBroker {
    let cluster: MockCluster
    var bootstrapServers: String { cluster.bootstrapServers }
    private var producer: SyntheticProducer?

    init(config: SwarmConfig, logger: Logger) throws {
        do {
            cluster = try MockCluster(brokers: config.embedded.brokers)
            var topics = config.kafka.topics.filter { !$0.hasPrefix("^") }
            if config.handler.onFailure == .deadLetter { topics.append(config.handler.deadLetterTopic) }
            for topic in topics {
                try cluster.createTopic(topic, partitions: config.embedded.partitions)
            }
            if !config.cluster.statusTopic.isEmpty {
                try cluster.createTopic(config.cluster.statusTopic, partitions: 1)
            }
            logger.warning("embedded DEVELOPMENT broker (librdkafka mock cluster): nothing is persisted; not for production",
                           metadata: ["bootstrap": "\(cluster.bootstrapServers)", "topics": "\(topics.joined(separator: ","))",
                                      "partitions": "\(config.embedded.partitions)"])
            if config.embedded.produceRate > 0, let topic = topics.first {
                let p = try SyntheticProducer(bootstrap: cluster.bootstrapServers, topic: topic,
                                              rate: config.embedded.produceRate, size: config.embedded.messageSize)
                p.start()
                producer = p
                logger.info("synthetic producer started", metadata: ["topic": "\(topic)", "rate": "\(config.embedded.produceRate)/s", "size": "\(config.embedded.messageSize)"])
            }
        } catch let e as KafkaError {
            throw SwarmError(.broker, "embedded broker: \(e)")
        }
    }

    func stop() {
        producer?.stop()
        producer = nil
    }
}

/// Produces `rate` messages per second of `size` bytes, keyed `k<n>`, on its own thread.
final class SyntheticProducer: @unchecked Sendable {
    let producer: KafkaProducer
    let topic: String
    let rate: Int
    let size: Int
    private let running = Atomic<Bool>(false)
    private var thread: pthread_t?

    init(bootstrap: String, topic: String, rate: Int, size: Int) throws {
        producer = try KafkaProducer(properties: ["bootstrap.servers": bootstrap, "linger.ms": "5", "log_level": "3"])
        self.topic = topic
        self.rate = rate
        self.size = size
    }

    func start() {
        running.store(true, ordering: .relaxed)
        thread = startThread(name: "swarm-producer") { [self] in self.loop() }
    }

    func stop() {
        running.store(false, ordering: .relaxed)
        if let t = thread { pthread_join(t, nil) }
        thread = nil
        producer.flush(timeoutMs: 1000)
    }

    private func loop() {
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        var sent = 0
        let start = monotonicNow()
        while running.load(ordering: .relaxed) {
            let due = Int(saturating: (monotonicNow() - start) * Double(rate))
            while sent < due {
                if producer.produce(topic: topic, key: Array("k\(sent)".utf8), value: value) != nil { break }
                sent += 1
            }
            producer.poll(timeoutMs: 0)
            sleepSeconds(0.01)
        }
    }
}
