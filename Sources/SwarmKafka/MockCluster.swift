import CRdKafka

/// librdkafka's mock cluster (`rdkafka_mock.h`): a real Kafka-protocol broker
/// on loopback, hosted in this process on librdkafka's own threads. For
/// development, demos and tests only: it keeps ~5 MiB per partition and does
/// not persist anything.
public final class MockCluster: @unchecked Sendable {
    private let owner: OpaquePointer
    private let cluster: OpaquePointer
    /// The address list clients put in `bootstrap.servers`.
    public let bootstrapServers: String

    public init(brokers: Int) throws {
        var errbuf = [CChar](repeating: 0, count: 512)
        let conf = rd_kafka_conf_new()!
        if KafkaLog.sink != nil { rd_kafka_conf_set_log_cb(conf, swarmLogCallback) }
        rd_kafka_conf_set(conf, "log_level", "3", &errbuf, errbuf.count)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errbuf, errbuf.count) else {
            throw KafkaError(name: "create", message: cString(errbuf), context: "creating the mock cluster's handle")
        }
        guard let mc = rd_kafka_mock_cluster_new(rk, Int32(brokers)) else {
            rd_kafka_destroy(rk)
            throw KafkaError(name: "mock", message: "rd_kafka_mock_cluster_new failed", context: "starting the embedded broker")
        }
        owner = rk
        cluster = mc
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(mc))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(owner)
    }

    public func createTopic(_ name: String, partitions: Int) throws {
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), 1)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "creating topic \(name)") }
    }

    // MARK: Faults a broker process cannot be made to show (tests and demos)

    /// Takes a broker down (its connections closed, new ones refused) or brings it back.
    public func setBroker(_ id: Int32, up: Bool) {
        _ = up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id)
    }

    /// Adds `ms` of round-trip time to every request a broker answers.
    public func setRoundTripTime(broker id: Int32, ms: Int) {
        _ = rd_kafka_mock_broker_set_rtt(cluster, id, Int32(clamping: ms))
    }

    /// Moves a partition's leadership to another broker.
    public func setLeader(topic: String, partition: Int32, broker id: Int32) {
        _ = rd_kafka_mock_partition_set_leader(cluster, topic, partition, id)
    }

    /// Makes a broker the coordinator of a consumer group.
    public func setGroupCoordinator(group: String, broker id: Int32) {
        _ = rd_kafka_mock_coordinator_set(cluster, "group", group, id)
    }

    /// The next requests of `apiKey` (8 OffsetCommit, 12 Heartbeat, 14
    /// SyncGroup, 11 JoinGroup, 1 Fetch) fail with these errors, one each, in order.
    public func failNextRequests(apiKey: Int16, with errors: [Int32]) {
        var codes = errors.map { rd_kafka_resp_err_t($0) }
        codes.withUnsafeMutableBufferPointer { rd_kafka_mock_push_request_errors_array(cluster, apiKey, $0.count, $0.baseAddress) }
    }
}
