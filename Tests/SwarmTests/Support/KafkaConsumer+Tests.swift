import CRdKafka
@testable import SwarmKafka

/// What the tests ask the broker about a group, through a consumer that
/// never joins it. Test-only: swarm itself never needs either.
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

    /// The high watermark (the offset the next message will get) of each partition.
    public func highWatermarks(topic: String, partitions: Int, timeoutMs: Int32 = 10_000) throws -> [Int64] {
        try (0..<partitions).map { p in
            var low: Int64 = 0, high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(handle, topic, Int32(p), &low, &high, timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "querying \(topic)/\(p)") }
            return high
        }
    }
}
