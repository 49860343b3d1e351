import CRdKafka

/// What swarmd and the tests ask the broker about a group through a consumer
/// that never joins it (kafka_exporter's way of reading lag): committed
/// offsets from the group coordinator, watermarks from the partitions'
/// leaders, partition counts from the metadata.
extension KafkaConsumer {
    /// The group's committed offsets for the partitions of a topic (-1001:
    /// none committed). Asks the group coordinator; does not join the group.
    public func committed(topic: String, partitions: Int, timeoutMs: Int32 = 10_000) throws -> [Int64] {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in 0..<partitions { rd_kafka_topic_partition_list_add(list, topic, Int32(p)) }
        let err = rd_kafka_committed(handle, list, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "reading committed offsets of \(topic)") }
        return (0..<partitions).map { list.pointee.elems[$0].offset }
    }

    /// The low and high watermarks of a partition as its leader states them.
    public func watermarks(topic: String, partition: Int32, timeoutMs: Int32 = 10_000) throws -> (low: Int64, high: Int64) {
        var low: Int64 = 0, high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(handle, topic, partition, &low, &high, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "querying \(topic)/\(partition)") }
        return (low, high)
    }

    /// The high watermark (the offset the next message will get) of each partition.
    public func highWatermarks(topic: String, partitions: Int, timeoutMs: Int32 = 10_000) throws -> [Int64] {
        try (0..<partitions).map { try watermarks(topic: topic, partition: Int32($0), timeoutMs: timeoutMs).high }
    }

    /// How many partitions each of `topics` has; a topic the broker does not
    /// know is left out; nil when no broker answered.
    public func partitionCounts(of topics: [String], timeoutMs: Int32) -> [String: Int]? {
        partitionCountsOf(topics, handle: handle, timeoutMs: timeoutMs)
    }
}

/// How many partitions each of `topics` has, from a metadata request through
/// any client `handle`; a topic the broker does not know is left out; nil
/// when no broker answered.
func partitionCountsOf(_ topics: [String], handle: OpaquePointer, timeoutMs: Int32) -> [String: Int]? {
    var md: UnsafePointer<rd_kafka_metadata>?
    guard rd_kafka_metadata(handle, 1, nil, &md, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR, let md else { return nil }
    defer { rd_kafka_metadata_destroy(md) }
    var out: [String: Int] = [:]
    for i in 0..<Int(md.pointee.topic_cnt) {
        let t = md.pointee.topics[i]
        let name = String(cString: t.topic)
        if topics.contains(name), t.err == RD_KAFKA_RESP_ERR_NO_ERROR { out[name] = Int(t.partition_cnt) }
    }
    return out
}
