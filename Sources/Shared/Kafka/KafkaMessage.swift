import CRdKafka

/// One consumed message, copied out of librdkafka so its handle can be freed
/// at once.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var timestamp: Int64
    public var headers: [(name: String, value: [UInt8])]

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8], timestamp: Int64,
                headers: [(name: String, value: [UInt8])] = []) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers = headers
    }

    init(_ m: UnsafeMutablePointer<rd_kafka_message_t>) {
        topic = String(cString: rd_kafka_topic_name(m.pointee.rkt))
        partition = m.pointee.partition
        offset = m.pointee.offset
        if let k = m.pointee.key {
            key = Array(UnsafeRawBufferPointer(start: k, count: m.pointee.key_len))
        } else {
            key = nil
        }
        if let p = m.pointee.payload {
            value = Array(UnsafeRawBufferPointer(start: p, count: m.pointee.len))
        } else {
            value = []
        }
        var tstype = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        timestamp = rd_kafka_message_timestamp(m, &tstype)
        headers = []
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var i = 0
            while true {
                var name: UnsafePointer<CChar>?
                var val: UnsafeRawPointer?
                var size = 0
                guard rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { break }
                let bytes = val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                headers.append((name.map { String(cString: $0) } ?? "", bytes))
                i += 1
            }
        }
    }
}
