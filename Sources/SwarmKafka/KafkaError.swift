import CRdKafka

/// A librdkafka failure, with librdkafka's own error name and text so that an
/// operator can look it up in librdkafka's documentation.
public struct KafkaError: Error, CustomStringConvertible, Sendable {
    public var name: String
    public var message: String
    public var context: String

    public init(_ code: rd_kafka_resp_err_t, context: String) {
        self.name = String(cString: rd_kafka_err2name(code))
        self.message = String(cString: rd_kafka_err2str(code))
        self.context = context
    }

    public init(name: String, message: String, context: String) {
        self.name = name
        self.message = message
        self.context = context
    }

    public var description: String { "\(context): \(message) (\(name))" }
}

/// Builds an `rd_kafka_conf_t` from properties, refusing unknown or invalid
/// ones with librdkafka's own message.
func makeKafkaConf(_ properties: [String: String]) throws -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    var errbuf = [CChar](repeating: 0, count: 512)
    for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
        if rd_kafka_conf_set(conf, key, value, &errbuf, errbuf.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            let text = String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KafkaError(name: "invalid property", message: text, context: "librdkafka property \"\(key)\"")
        }
    }
    if KafkaLog.sink != nil { rd_kafka_conf_set_log_cb(conf, swarmLogCallback) }
    return conf
}

/// librdkafka's version, for `swarmd --version`.
public enum Librdkafka {
    public static var version: String { String(cString: rd_kafka_version_str()) }
    /// 0xMMmmrrxx, as rd_kafka_version() returns it (2.14.2 is 0x020e02ff).
    public static var versionNumber: Int32 { rd_kafka_version() }
}

func cString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
