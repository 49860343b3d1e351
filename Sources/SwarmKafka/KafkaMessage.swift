import CRdKafka
import Shared

/// One consumed message. A message from the consumer keeps librdkafka's own
/// copy alive (one small allocation) instead of copying key, value and
/// headers out: with small messages, those copies were most of a node's cost.
/// `key`, `value` and `headers` copy on access; `withKey`/`withValue` do not.
public struct KafkaMessage: @unchecked Sendable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    public let timestamp: Int64
    private let storage: Storage

    /// The partition it came from, as a value.
    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }

    private enum Storage {
        case librdkafka(MessageHandle)
        case owned(key: [UInt8]?, value: [UInt8]?, headers: [(name: String, value: [UInt8])])
    }

    /// A message made in Swift (tests, retries of a dead letter). A nil value is a tombstone.
    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8]?, timestamp: Int64,
                headers: [(name: String, value: [UInt8])] = []) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        storage = .owned(key: key, value: value, headers: headers)
    }

    /// Takes ownership of a message from librdkafka; `topic` is its topic's
    /// name (the consumer caches names).
    init(_ m: UnsafeMutablePointer<rd_kafka_message_t>, topic: String) {
        self.topic = topic
        partition = m.pointee.partition
        offset = m.pointee.offset
        var tstype = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        timestamp = rd_kafka_message_timestamp(m, &tstype)
        storage = .librdkafka(MessageHandle(m))
    }

    public func withKey<R>(_ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        switch storage {
        case .librdkafka(let h):
            guard let k = h.m.pointee.key else { return try body(nil) }
            return try body(UnsafeRawBufferPointer(start: k, count: h.m.pointee.key_len))
        case .owned(let key, _, _):
            guard let key else { return try body(nil) }
            return try key.withUnsafeBytes { try body($0) }
        }
    }

    /// The value's bytes; empty for a tombstone (see `isTombstone`).
    public func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .librdkafka(let h):
            return try body(UnsafeRawBufferPointer(start: h.m.pointee.payload, count: h.m.pointee.payload == nil ? 0 : h.m.pointee.len))
        case .owned(_, let value, _):
            return try (value ?? []).withUnsafeBytes { try body($0) }
        }
    }

    /// True for a null value: how compacted topics and change-data-capture
    /// tools (Debezium) say "deleted". Not the same as an empty value.
    public var isTombstone: Bool {
        switch storage {
        case .librdkafka(let h): return h.m.pointee.payload == nil
        case .owned(_, let value, _): return value == nil
        }
    }

    public var key: [UInt8]? { withKey { $0.map { Array($0) } } }
    /// The value, nil for a tombstone.
    public var value: [UInt8]? { isTombstone ? nil : withValue { Array($0) } }

    /// How many headers the message has, without copying them out.
    public var headerCount: Int {
        switch storage {
        case .owned(_, _, let headers):
            return headers.count
        case .librdkafka(let h):
            var hdrs: OpaquePointer?
            guard rd_kafka_message_headers(h.m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return 0 }
            return rd_kafka_header_cnt(hdrs)
        }
    }

    public var headers: [(name: String, value: [UInt8])] {
        switch storage {
        case .owned(_, _, let headers):
            return headers
        case .librdkafka(let h):
            var out: [(name: String, value: [UInt8])] = []
            var hdrs: OpaquePointer?
            guard rd_kafka_message_headers(h.m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return out }
            var i = 0
            while true {
                var name: UnsafePointer<CChar>?
                var val: UnsafeRawPointer?
                var size = 0
                guard rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { break }
                out.append((name.map { String(cString: $0) } ?? "", val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
                i += 1
            }
            return out
        }
    }
}

/// librdkafka's message, freed when the last `KafkaMessage` that refers to it goes.
final class MessageHandle {
    let m: UnsafeMutablePointer<rd_kafka_message_t>
    init(_ m: UnsafeMutablePointer<rd_kafka_message_t>) { self.m = m }
    deinit { rd_kafka_message_destroy(m) }
}
