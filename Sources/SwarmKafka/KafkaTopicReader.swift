#if canImport(Glibc)
import Glibc
#endif
import CRdKafka

/// Reads whole topics without joining a group: every partition assigned
/// from its beginning, read up to its end (`read`) or followed (`poll`).
/// For the cluster view's status topic: compacted, small, and read by
/// anyone — a swarmd, `swarmd cluster` on a laptop — without becoming a
/// member of anything or committing anything.
public final class KafkaTopicReader: @unchecked Sendable {
    /// One record: where it was, its key, its value (nil: a tombstone).
    public struct Record: Sendable {
        public var partition: Int32
        public var offset: Int64
        public var key: [UInt8]
        public var value: [UInt8]?
    }

    let handle: OpaquePointer
    private var atEnd: Set<Int32> = []
    private var partitionCount = 0

    public init(properties: [String: String]) throws {
        var props = properties
        // assign() needs no group; librdkafka wants an id all the same. Nothing is committed.
        props["group.id"] = props["group.id"] ?? "swarm-reader"
        props["enable.auto.commit"] = "false"
        props["enable.auto.offset.store"] = "false"
        props["enable.partition.eof"] = "true"
        props["auto.offset.reset"] = "earliest"
        props["group.instance.id"] = nil
        let conf = try makeKafkaConf(props)
        var errbuf = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errbuf, errbuf.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(name: "create", message: cString(errbuf), context: "creating a topic reader")
        }
        handle = rk
        rd_kafka_poll_set_consumer(rk)
    }

    deinit {
        rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
    }

    /// Partitions of each topic, from the cluster's metadata (nil: the
    /// topic does not exist or no broker answered within `timeoutMs`).
    public func partitions(of topics: [String], timeoutMs: Int32) -> [String: Int]? {
        partitionCountsOf(topics, handle: handle, timeoutMs: timeoutMs)
    }

    /// Assigns every partition of `topic` from its beginning.
    public func start(topic: String, timeoutMs: Int32) throws {
        guard let count = partitions(of: [topic], timeoutMs: timeoutMs)?[topic], count > 0 else {
            throw KafkaError(name: "unknown topic", message: "no topic \(topic) (or no broker answered within \(timeoutMs) ms)", context: "reading \(topic)")
        }
        let list = rd_kafka_topic_partition_list_new(Int32(count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in 0..<Int32(count) {
            rd_kafka_topic_partition_list_add(list, topic, p).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        }
        let err = rd_kafka_assign(handle, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "assigning \(topic)") }
        partitionCount = count
        atEnd = []
    }

    /// True once every partition reached the end it had (since `start`).
    public var caughtUp: Bool { partitionCount > 0 && atEnd.count == partitionCount }

    /// What arrived within `timeoutMs` (at most 500 records).
    public func poll(timeoutMs: Int32) -> [Record] {
        var out: [Record] = []
        var wait = timeoutMs
        while out.count < 500, let m = rd_kafka_consumer_poll(handle, wait) {
            wait = 0
            defer { rd_kafka_message_destroy(m) }
            let msg = m.pointee
            if msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { atEnd.insert(msg.partition); continue }
            guard msg.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            let key = msg.key.map { Array(UnsafeRawBufferPointer(start: $0, count: msg.key_len)) } ?? []
            let value = msg.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: msg.len)) }
            out.append(Record(partition: msg.partition, offset: msg.offset, key: key, value: value))
        }
        return out
    }

    /// Everything from the beginning to the current end, or what arrived by the deadline.
    public func readToEnd(topic: String, timeoutMs: Int32) throws -> (records: [Record], complete: Bool) {
        let deadline = monotonicMs() + Int64(timeoutMs)
        try start(topic: topic, timeoutMs: timeoutMs)
        var records: [Record] = []
        while !caughtUp && monotonicMs() < deadline {
            records += poll(timeoutMs: 100)
        }
        return (records, caughtUp)
    }
}

func monotonicMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
