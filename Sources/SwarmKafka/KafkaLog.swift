import CRdKafka

/// Where librdkafka's own log lines go. Left alone, librdkafka prints
/// `%3|1764…|FAIL|rdkafka#consumer-1| …` on stderr, which journald files at
/// info whatever the severity and no logfmt or JSON reader can parse. With a
/// sink set, every handle made afterwards (consumer, dead-letter producer,
/// mock cluster) hands its lines to it: the node logs them through swarm's
/// logger, severity mapped, slot attached.
public enum KafkaLog {
    /// A syslog severity (0 emergency … 7 debug), librdkafka's facility
    /// (`FAIL`, `REQTMOUT`, …) and the text. Called on librdkafka's threads;
    /// set once, before the first handle is made.
    nonisolated(unsafe) public static var sink: ((Int32, String, String) -> Void)?
}

let swarmLogCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = { _, level, fac, buf in
    KafkaLog.sink?(level, fac.map { String(cString: $0) } ?? "", buf.map { String(cString: $0) } ?? "")
}
