import CRdKafka

/// A librdkafka producer: for dead-letter messages and the embedded broker's
/// synthetic traffic.
public final class KafkaProducer: @unchecked Sendable {
    let handle: OpaquePointer

    /// Delivery outcomes, counted by librdkafka's delivery report callback
    /// (served by `poll` and `flush`, on the caller's thread).
    final class Outcomes {
        var delivered = 0
        var failed = 0
    }
    private let outcomes = Outcomes()
    /// Messages the brokers confirmed, and messages that failed (expired
    /// after `message.timeout.ms` with the brokers away, say).
    public var delivered: Int { outcomes.delivered }
    public var failedDeliveries: Int { outcomes.failed }

    public init(properties: [String: String]) throws {
        let conf = try makeKafkaConf(properties)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(outcomes).toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf, { _, message, opaque in
            guard let message, let opaque else { return }
            let outcomes = Unmanaged<KafkaProducer.Outcomes>.fromOpaque(opaque).takeUnretainedValue()
            if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR { outcomes.delivered += 1 } else { outcomes.failed += 1 }
        })
        var errbuf = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errbuf, errbuf.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(name: "create", message: cString(errbuf), context: "creating a producer")
        }
        handle = rk
    }

    deinit { rd_kafka_destroy(handle) }

    /// Queues one message; a nil value is a tombstone. Returns an error when
    /// the local queue is full (the caller should `poll` and try again) or
    /// the topic is unknown.
    public func produce(topic: String, key: [UInt8]?, value: [UInt8]?, headers: [(String, [UInt8])] = []) -> KafkaError? {
        let hdrs = rd_kafka_headers_new(headers.count)!
        for (name, v) in headers {
            v.withUnsafeBytes { _ = rd_kafka_header_add(hdrs, name, -1, $0.baseAddress, $0.count) }
        }
        let err: rd_kafka_resp_err_t = (value ?? []).withUnsafeBytes { vp in
            (key ?? []).withUnsafeBytes { kp in
                swarm_produce(handle, topic, value == nil ? nil : vp.baseAddress, vp.count, key == nil ? nil : kp.baseAddress, kp.count, hdrs)
            }
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_headers_destroy(hdrs)
            return KafkaError(err, context: "producing to \(topic)")
        }
        return nil
    }

    /// Messages queued and not yet delivered (or failed).
    public var queueLength: Int { Int(rd_kafka_outq_len(handle)) }

    /// Serves delivery reports.
    public func poll(timeoutMs: Int32 = 0) { rd_kafka_poll(handle, timeoutMs) }

    /// Waits until every queued message is delivered (or the timeout passes).
    @discardableResult
    public func flush(timeoutMs: Int32) -> Bool {
        rd_kafka_flush(handle, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR
    }
}

/// rd_kafka_producev is variadic; rd_kafka_produceva takes an array of vtypes.
private func swarm_produce(_ rk: OpaquePointer, _ topic: String, _ value: UnsafeRawPointer?, _ valueLen: Int,
                           _ key: UnsafeRawPointer?, _ keyLen: Int, _ headers: OpaquePointer) -> rd_kafka_resp_err_t {
    topic.withCString { t in
        var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 5)
        vus[0].vtype = RD_KAFKA_VTYPE_TOPIC
        vus[0].u.cstr = t
        vus[1].vtype = RD_KAFKA_VTYPE_VALUE
        vus[1].u.mem.ptr = UnsafeMutableRawPointer(mutating: value)
        vus[1].u.mem.size = valueLen
        vus[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS
        vus[2].u.i = RD_KAFKA_MSG_F_COPY
        vus[3].vtype = RD_KAFKA_VTYPE_HEADERS
        vus[3].u.headers = headers
        var count = 4
        if let key {
            vus[4].vtype = RD_KAFKA_VTYPE_KEY
            vus[4].u.mem.ptr = UnsafeMutableRawPointer(mutating: key)
            vus[4].u.mem.size = keyLen
            count = 5
        }
        guard let error = rd_kafka_produceva(rk, &vus, count) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
        let code = rd_kafka_error_code(error)
        rd_kafka_error_destroy(error)
        return code
    }
}
