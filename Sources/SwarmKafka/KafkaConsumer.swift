#if canImport(Glibc)
import Glibc
#endif
import CRdKafka
import Shared

/// A librdkafka high-level consumer in one consumer group, for one node.
///
/// Offsets are stored only by `store(_:)`, after the node's handler has
/// handled a batch (`enable.auto.offset.store=false`); librdkafka commits
/// what is stored every `auto.commit.interval.ms`, and `commit()` commits
/// synchronously on revocation, drain and stop. Not thread-safe: one node
/// thread owns it.
public final class KafkaConsumer {
    let handle: OpaquePointer
    private var closed = false
    /// Set by `pause()`: partitions assigned later are paused as they arrive.
    public internal(set) var paused = false
    /// Called from inside `poll` before partitions are taken away, so the
    /// owner can commit what it handled while it still owns them.
    public var onRevoke: (() -> Void)?
    /// Called from inside `poll` after partitions were assigned or revoked.
    public var onAssignmentChange: ((Int) -> Void)?
    /// Called from inside `poll` when the group gave this consumer its
    /// assignment (possibly empty: more members than partitions).
    public var onAssigned: (() -> Void)?
    public var assignedCount: Int { assigned.count }
    /// True when the group uses a cooperative protocol (cooperative-sticky):
    /// a rebalance revokes only the partitions that move.
    public var isCooperative: Bool { String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE" }
    /// Topic names by librdkafka topic handle: a String per message is a
    /// measurable share of the cost of consuming small messages.
    private var topicNames: [OpaquePointer: String] = [:]
    private var lastTopic: (handle: OpaquePointer, name: String)?
    private let consumerQueue: OpaquePointer
    private var batchBuffer: [UnsafeMutablePointer<rd_kafka_message_t>?] = []
    private var assigned: [TopicPartition] = []
    /// Assigned partitions none of whose messages were handed out since they
    /// were assigned. librdkafka 2.0 keeps a partition's last application
    /// position across its revocation, and pausing a partition saves that
    /// position as where fetching goes on at resume: for these partitions it
    /// is stale — a position from an earlier assignment, ahead of what the
    /// group committed when this consumer dropped fetched messages at that
    /// revocation, or another member handled less in between.
    private var unfetched: Set<TopicPartition> = []
    /// Unfetched partitions paused since: resuming seeks them to the
    /// committed offset (see `rewindDue`) instead of trusting the saved one.
    private var pausedUnfetched: Set<TopicPartition> = []
    /// Resumed partitions waiting for that seek: the next `pollBatch` does it,
    /// outside any rebalance callback, and hands out none of their messages
    /// until it is done (see `rewind`).
    private var rewindDue: Set<TopicPartition> = []
    /// When a failed rewind is tried again (monotonic ms).
    private var nextRewindAt: Int64 = 0
    /// Where a partition without a committed offset starts (the logical
    /// offset `auto.offset.reset` names), for `rewind`.
    private let resetOffset: Int64?

    public init(properties: [String: String]) throws {
        var props = properties
        props["enable.auto.offset.store"] = "false"
        if props["enable.auto.commit"] == nil { props["enable.auto.commit"] = "true" }
        if props["enable.partition.eof"] == nil { props["enable.partition.eof"] = "false" }
        switch props["auto.offset.reset"] ?? "latest" {
        case "earliest", "smallest", "beginning": resetOffset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        case "latest", "largest", "end": resetOffset = Int64(RD_KAFKA_OFFSET_END)
        default: resetOffset = nil
        }
        let conf = try makeKafkaConf(props)
        rd_kafka_conf_set_rebalance_cb(conf, swarmRebalanceCallback)
        // Errors come to us (served by our own polls, on the node's thread),
        // not to librdkafka's stderr: the node logs them, and learns of an
        // outage (`_ALL_BROKERS_DOWN`) from them.
        rd_kafka_conf_set_error_cb(conf, swarmErrorCallback)
        rd_kafka_conf_set_offset_commit_cb(conf, swarmCommitCallback)
        var errbuf = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errbuf, errbuf.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(name: "create", message: cString(errbuf), context: "creating the consumer")
        }
        handle = rk
        rd_kafka_poll_set_consumer(rk)
        consumerQueue = rd_kafka_queue_get_consumer(rk)
        registry[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(rk)))] = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        close()
        rd_kafka_queue_destroy(consumerQueue)
        registry[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle)))] = nil
        rd_kafka_destroy(handle)
    }

    /// Subscribes to topics; names starting with `^` are regular expressions.
    public func subscribe(_ topics: [String]) throws {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for t in topics { rd_kafka_topic_partition_list_add(list, t, RD_KAFKA_PARTITION_UA) }
        let err = rd_kafka_subscribe(handle, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "subscribing to \(topics)") }
    }

    private func topicName(_ rkt: OpaquePointer?) -> String {
        guard let rkt else { return "" }
        if rkt == lastTopic?.handle { return lastTopic!.name }
        if let name = topicNames[rkt] { lastTopic = (rkt, name); return name }
        let name = String(cString: rd_kafka_topic_name(rkt))
        topicNames[rkt] = name
        return name
    }

    /// Up to `max` messages in one call (one lock round trip for the lot, as
    /// confluent-kafka-python's `consume(n)` does), waiting at most
    /// `timeoutMs` for the first. Serves rebalance callbacks like `poll`.
    /// Errors come back in `errors`; they are usually transient.
    public func pollBatch(max: Int, timeoutMs: Int32) -> (messages: [KafkaMessage], errors: [KafkaError]) {
        if batchBuffer.count < max {
            batchBuffer = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: max)
        }
        let n = batchBuffer.withUnsafeMutableBufferPointer {
            rd_kafka_consume_batch_queue(consumerQueue, Int32(timeoutMs), $0.baseAddress, max)
        }
        var errors = pendingErrors
        pendingErrors.removeAll()
        // What this batch holds of partitions due for a rewind was fetched from the
        // position librdkafka kept: dropped below, fetched again after the seek. The
        // seek runs whether or not the poll returned anything: a partition whose kept
        // position is its end fetches nothing (BENCHMARKS.md, "Figures behind the code").
        let stale = rewindDue
        if !stale.isEmpty { rewind() }
        guard n > 0 else { return ([], errors) }
        var messages: [KafkaMessage] = []
        messages.reserveCapacity(n)
        for i in 0..<n {
            let m = batchBuffer[i]!
            if m.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                if m.pointee.err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN { brokersDown = true }
                note(m.pointee.err, Self.messageText(m))
                if m.pointee.err != RD_KAFKA_RESP_ERR__PARTITION_EOF { errors.append(KafkaError(m.pointee.err, context: "consuming")) }
                rd_kafka_message_destroy(m)
            } else {
                messages.append(KafkaMessage(m, topic: topicName(m.pointee.rkt)))
            }
        }
        if !messages.isEmpty { brokersDown = false; refusal = nil; missingTopic = nil }
        if !stale.isEmpty { messages.removeAll { stale.contains($0.topicPartition) } }
        if !unfetched.isEmpty {
            // A batch runs in few partitions, and a partition without traffic keeps this
            // set non-empty for good: hash once per run of a partition, not per message.
            var last: KafkaMessage?
            for m in messages where m.partition != last?.partition || m.topic != last?.topic {
                unfetched.remove(m.topicPartition)
                last = m
            }
        }
        return (messages, errors)
    }

    /// True after librdkafka said every broker is down (`_ALL_BROKERS_DOWN`),
    /// until a message or a rebalance arrives or `probeBrokers` reaches one.
    /// librdkafka reports the outage but not the recovery, hence the probe.
    public private(set) var brokersDown = false
    /// Set when the group coordinator refused a commit because the group is
    /// rebalancing (or moved on to a new generation): the first sign a
    /// member gets of a rebalance, often a heartbeat interval (3 s by
    /// default) before its revocation. Whatever it handles from here until
    /// its next assignment will be refused too and delivered again; the
    /// owner reads and clears it (`takeRebalanceSign`).
    private var rebalanceSign: String?

    public func takeRebalanceSign() -> String? {
        defer { rebalanceSign = nil }
        return rebalanceSign
    }

    fileprivate func committed(_ err: rd_kafka_resp_err_t) {
        if err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION {
            rebalanceSign = String(cString: rd_kafka_err2name(err))
        }
    }

    /// Errors the error callback saw since the last `pollBatch`.
    private var pendingErrors: [KafkaError] = []

    /// What the brokers refused, in librdkafka's words, after an
    /// authentication or TLS failure (`__AUTHENTICATION`,
    /// `SASL_AUTHENTICATION_FAILED`, `__SSL`); nil again once a broker
    /// answers (a message, an assignment, a probe).
    public private(set) var refusal: String?
    /// A subscribed topic the brokers do not have (`UNKNOWN_TOPIC_OR_PART`,
    /// `__UNKNOWN_TOPIC`), in librdkafka's words; nil again once the node is
    /// assigned or a message arrives.
    public private(set) var missingTopic: String?

    private func note(_ err: rd_kafka_resp_err_t, _ text: String) {
        switch err {
        case RD_KAFKA_RESP_ERR__AUTHENTICATION, RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, RD_KAFKA_RESP_ERR__SSL:
            refusal = String(text.prefix(160))
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
            missingTopic = String(text.prefix(160))
        default: break
        }
    }

    private static func messageText(_ m: UnsafeMutablePointer<rd_kafka_message_t>) -> String {
        guard let p = m.pointee.payload, m.pointee.len > 0 else { return String(cString: rd_kafka_err2str(m.pointee.err)) }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: min(m.pointee.len, 400)), as: UTF8.self)
    }

    fileprivate func error(_ code: Int32, _ reason: String) {
        let err = rd_kafka_resp_err_t(code)
        if err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN { brokersDown = true }
        note(err, reason)
        if pendingErrors.count < 100 {
            pendingErrors.append(KafkaError(name: String(cString: rd_kafka_err2name(err)), message: reason, context: "librdkafka"))
        }
    }

    /// Asks the brokers about `topics` (names, not patterns) and returns the
    /// ones they do not have, or have without partitions; nil if no broker
    /// answered within `timeoutMs` (per topic). Sets `missingTopic`. The
    /// answer refreshes librdkafka's cache but not its group logic: to have a
    /// topic created again assigned before the next
    /// `topic.metadata.refresh.interval.ms` (5 minutes by default), subscribe
    /// again.
    public func missingTopics(_ topics: [String], timeoutMs: Int32) -> [String]? {
        var missing: [String] = []
        for name in topics {
            guard let rkt = rd_kafka_topic_new(handle, name, nil) else { continue }
            defer { rd_kafka_topic_destroy(rkt) }
            var md: UnsafePointer<rd_kafka_metadata>?
            guard rd_kafka_metadata(handle, 0, rkt, &md, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR, let md else { return nil }
            defer { rd_kafka_metadata_destroy(md) }
            let known = md.pointee.topic_cnt > 0 && md.pointee.topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && md.pointee.topics[0].partition_cnt > 0
            if !known { missing.append(name) }
        }
        missingTopic = missing.isEmpty ? nil : "the brokers have no topic \(missing.joined(separator: ", "))"
        return missing
    }

    /// Asks for the cluster's metadata (no topics): true, and `brokersDown`
    /// cleared, when a broker answered within `timeoutMs`. Blocks the caller
    /// that long at most: call it when `BrokerWatch` says a probe is due.
    @discardableResult
    public func probeBrokers(timeoutMs: Int32) -> Bool {
        var md: UnsafePointer<rd_kafka_metadata>?
        guard rd_kafka_metadata(handle, 0, nil, &md, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR else { return false }
        if let md { rd_kafka_metadata_destroy(md) }
        brokersDown = false
        refusal = nil
        return true
    }

    /// Stores, for each partition, the offset after the highest handled message.
    public func store(_ handled: [(partition: TopicPartition, offset: Int64)]) {
        guard !handled.isEmpty else { return }
        // A batch spans few partitions: a linear scan beats hashing strings.
        var highest: [(partition: TopicPartition, offset: Int64)] = []
        for h in handled {
            if let i = highest.firstIndex(where: { $0.partition.partition == h.partition.partition && $0.partition.topic == h.partition.topic }) {
                if highest[i].offset < h.offset { highest[i].offset = h.offset }
            } else {
                highest.append(h)
            }
        }
        let list = rd_kafka_topic_partition_list_new(Int32(highest.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (p, offset) in highest {
            let tp = rd_kafka_topic_partition_list_add(list, p.topic, p.partition)!
            tp.pointee.offset = offset + 1
        }
        // Fails only for partitions no longer assigned: their messages will be redelivered to
        // their new owner, which is at-least-once.
        _ = rd_kafka_offsets_store(handle, list)
    }

    /// True when the group took the partitions away without asking (the
    /// session timed out, a broker outage): a commit for them can only fail.
    public var assignmentLost: Bool { rd_kafka_assignment_lost(handle) != 0 }

    /// Commits the stored offsets without waiting for the answer: the
    /// request goes out at once and the poll loop goes on.
    public func commitAsync() {
        _ = rd_kafka_commit(handle, nil, 1)
    }

    /// Commits the stored offsets synchronously. "Nothing to commit" is success.
    @discardableResult
    public func commit() -> KafkaError? {
        let err = rd_kafka_commit(handle, nil, 0)
        committed(err)
        if err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET { return nil }
        return KafkaError(err, context: "committing offsets")
    }

    /// The lag of each assigned partition (messages behind), from
    /// librdkafka's cached high watermarks (no broker round trip), or -1
    /// while it is not known.
    ///
    /// Where this consumer has not consumed from a partition since it was
    /// assigned, librdkafka has no position for it: the lag then counts from
    /// the group's committed offset (asked of the broker once per assignment,
    /// within the budget), from `auto.offset.reset` where the group has none,
    /// and is -1 (unknown) until that answer came. Never the partition's
    /// whole size: taking the low watermark as the position made every
    /// rebalance look like a full backlog to status, /metrics and the
    /// autoscaler (issue #27).
    ///
    /// `refreshing` partitions (paused ones, whose cached watermark no fetch
    /// updates) ask the broker instead, within `budgetMs` for all of them:
    /// the lag of a paused partition keeps growing while nothing fetches it.
    public func lags(refreshing: Set<TopicPartition> = [], budgetMs: Int32 = 500) -> [TopicPartition: Int64] {
        guard !assigned.isEmpty else { return [:] }
        var budget = budgetMs
        func spend(_ body: (Int32) -> Void) {
            let started = monotonicMilliseconds()
            body(min(budget, 200))
            budget -= Int32(clamping: monotonicMilliseconds() - started)
        }
        let list = rd_kafka_topic_partition_list_new(Int32(assigned.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for a in assigned { rd_kafka_topic_partition_list_add(list, a.topic, a.partition) }
        guard rd_kafka_position(handle, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return [:] }
        var unknown: [TopicPartition] = []
        for i in 0..<Int(list.pointee.cnt) where list.pointee.elems[i].offset < 0 {
            let key = TopicPartition(topic: String(cString: list.pointee.elems[i].topic), partition: list.pointee.elems[i].partition)
            if committedAtAssignment[key] == nil { unknown.append(key) }
        }
        if !unknown.isEmpty && budget > 0 { spend { learnCommitted(unknown, timeoutMs: $0) } }
        var out: [TopicPartition: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) {
            let tp = list.pointee.elems[i]
            var low: Int64 = 0, high: Int64 = -1
            let key = TopicPartition(topic: String(cString: tp.topic), partition: tp.partition)
            if budget > 0, refreshing.contains(key) {
                spend { _ = rd_kafka_query_watermark_offsets(handle, tp.topic, tp.partition, &low, &high, $0) }
            }
            if high < 0 {
                guard rd_kafka_get_watermark_offsets(handle, tp.topic, tp.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
                      high >= 0 else {
                    out[key] = -1
                    continue
                }
            }
            let position: Int64
            if tp.offset >= 0 {
                position = tp.offset
            } else if let committed = committedAtAssignment[key] {
                // A logical offset: where auto.offset.reset starts a group with no commit.
                position = committed >= 0 ? committed : (committed == Int64(RD_KAFKA_OFFSET_END) ? high : low)
            } else {
                out[key] = -1
                continue
            }
            out[key] = max(0, high - position)
        }
        return out
    }

    /// The group's committed offset of partitions this consumer has no
    /// position for (see `lags`): where their consumption will start.
    /// Forgotten when the partition is revoked.
    private var committedAtAssignment: [TopicPartition: Int64] = [:]

    private func learnCommitted(_ keys: [TopicPartition], timeoutMs: Int32) {
        let list = rd_kafka_topic_partition_list_new(Int32(keys.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for key in keys { rd_kafka_topic_partition_list_add(list, key.topic, key.partition) }
        guard rd_kafka_committed(handle, list, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR else { return }
        for i in 0..<Int(list.pointee.cnt) where list.pointee.elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR {
            let tp = list.pointee.elems[i]
            let key = TopicPartition(topic: String(cString: tp.topic), partition: tp.partition)
            // No commit yet: the group starts where auto.offset.reset says (nil: "error", unknown).
            if tp.offset >= 0 { committedAtAssignment[key] = tp.offset } else if let reset = resetOffset { committedAtAssignment[key] = reset }
        }
    }

    /// Leaves the group. Commits nothing by itself beyond what librdkafka's
    /// auto-commit does for stored offsets; callers commit first.
    public func close() {
        guard !closed else { return }
        closed = true
        rd_kafka_consumer_close(handle)
    }

    fileprivate func rebalance(_ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let cooperative = isCooperative
        var list: [TopicPartition] = []
        if let partitions {
            for i in 0..<Int(partitions.pointee.cnt) {
                let tp = partitions.pointee.elems[i]
                list.append(TopicPartition(topic: String(cString: tp.topic), partition: tp.partition))
            }
        }
        if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            brokersDown = false  // the coordinator answered (a revocation can be local: a lost session)
            refusal = nil
            if !list.isEmpty { missingTopic = nil }
            rebalanceSign = nil  // the rebalance a refused commit announced is over
            if cooperative {
                if let e = rd_kafka_incremental_assign(handle, partitions) { rd_kafka_error_destroy(e) }
                assigned += list
            } else {
                rd_kafka_assign(handle, partitions)
                assigned = list
                committedAtAssignment = [:]
                unfetched = []
                pausedUnfetched = []
                rewindDue = []
            }
            unfetched.formUnion(list)
            // The node first (a hold ends here), then the new partitions' pause.
            onAssigned?()
            // Every assignment states its pause explicitly: librdkafka keeps a
            // partition's pause (and, in 2.0, its fetch position) across its
            // revocation, so one paused when taken away would come back paused.
            // A held node ends its hold first (onAssigned), so its new partitions
            // are never paused with a stale position. The bugs behind this, and
            // their measurement on 2.14: BENCHMARKS.md, "librdkafka 2.0 workarounds".
            if let partitions {
                if paused {
                    rd_kafka_pause_partitions(handle, partitions)
                    pausedUnfetched.formUnion(list)
                } else {
                    rd_kafka_resume_partitions(handle, partitions)
                }
            }
        } else {
            onRevoke?()
            if cooperative {
                if let e = rd_kafka_incremental_unassign(handle, partitions) { rd_kafka_error_destroy(e) }
                assigned.removeAll(where: list.contains)
                for p in list {
                    committedAtAssignment[p] = nil
                    unfetched.remove(p)
                    pausedUnfetched.remove(p)
                    rewindDue.remove(p)
                }
            } else {
                rd_kafka_assign(handle, nil)
                assigned = []
                committedAtAssignment = [:]
                unfetched = []
                pausedUnfetched = []
                rewindDue = []
            }
        }
        onAssignmentChange?(assignedCount)
    }
}

private func monotonicMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// The consumer of each librdkafka handle, for the C rebalance callback
/// (only ever touched from the thread that polls, one consumer per node).
nonisolated(unsafe) private var registry: [UInt: UnsafeMutableRawPointer] = [:]

private func swarmRebalanceCallback(
    _ rk: OpaquePointer?, _ err: rd_kafka_resp_err_t,
    _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let rk, let raw = registry[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(rk)))] else { return }
    Unmanaged<KafkaConsumer>.fromOpaque(raw).takeUnretainedValue().rebalance(err, partitions)
}

private func swarmCommitCallback(_ rk: OpaquePointer?, _ err: rd_kafka_resp_err_t,
                                 _ offsets: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let rk, err != RD_KAFKA_RESP_ERR_NO_ERROR, let raw = registry[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(rk)))] else { return }
    Unmanaged<KafkaConsumer>.fromOpaque(raw).takeUnretainedValue().committed(err)
}

private func swarmErrorCallback(_ rk: OpaquePointer?, _ err: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let rk, let raw = registry[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(rk)))] else { return }
    Unmanaged<KafkaConsumer>.fromOpaque(raw).takeUnretainedValue().error(err, reason.map { String(cString: $0) } ?? "")
}

extension KafkaConsumer {
    /// Checks consumer properties the way librdkafka will read them, without
    /// connecting anywhere: swarmd refuses a bad property at start, not in every node.
    public static func validate(properties: [String: String]) throws {
        var props = properties
        props["group.id"] = props["group.id"] ?? "validate"
        let conf = try makeKafkaConf(props)
        rd_kafka_conf_destroy(conf)
    }

    /// Stops fetching from every assigned partition (and any assigned later)
    /// while staying in the group. librdkafka refetches from the last
    /// consumed position on resume, so nothing is skipped.
    public func pause() {
        paused = true
        pausedUnfetched.formUnion(unfetched)
        withAssignment { rd_kafka_pause_partitions(handle, $0) }
    }

    /// Fetches again, from where each partition's handing out stopped; a
    /// partition paused before any of its messages was handed out goes on
    /// from its committed offset instead (see `unfetched`).
    public func resume() {
        paused = false
        withAssignment { rd_kafka_resume_partitions(handle, $0) }
        rewindDue.formUnion(pausedUnfetched.intersection(unfetched))
        pausedUnfetched = []
    }

    /// The partitions assigned to this consumer now.
    public var assignment: [TopicPartition] { assigned }

    /// Stops fetching one partition (the others go on), dropping what was
    /// fetched for it and not yet handed out.
    public func pause(_ key: TopicPartition) {
        if unfetched.contains(key) { pausedUnfetched.insert(key) }
        withPartition(key.topic, key.partition) { rd_kafka_pause_partitions(handle, $0) }
    }

    /// Fetches one partition again (unless the whole consumer is paused).
    public func resume(_ key: TopicPartition) {
        guard !paused else { return }
        withPartition(key.topic, key.partition) { rd_kafka_resume_partitions(handle, $0) }
        if pausedUnfetched.remove(key) != nil && unfetched.contains(key) { rewindDue.insert(key) }
    }

    /// Makes `offset` the next message fetched from one partition (the
    /// failed message, for a retry in order). Anything fetched past it
    /// before the seek is discarded by librdkafka.
    @discardableResult
    public func seek(_ p: TopicPartition, offset: Int64) -> KafkaError? {
        let list = rd_kafka_topic_partition_list_new(1)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_topic_partition_list_add(list, p.topic, p.partition).pointee.offset = offset
        if let error = rd_kafka_seek_partitions(handle, list, 5000) {
            let code = rd_kafka_error_code(error)
            rd_kafka_error_destroy(error)
            return KafkaError(code, context: "seeking \(p.topic)/\(p.partition) to \(offset)")
        }
        let err = list.pointee.elems[0].err
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(err, context: "seeking \(p.topic)/\(p.partition) to \(offset)")
    }

    /// Seeks the partitions in `rewindDue` to their committed offsets (to
    /// `auto.offset.reset`'s end when the group has none): a partition paused
    /// before any of its messages was handed out goes on from what the group
    /// committed, whatever position librdkafka kept.
    ///
    /// Why: librdkafka 2.0 kept stale fetch positions across revocations
    /// (messages never handled in the cooperative chaos test); measured
    /// again on 2.14 without it, and kept for now: BENCHMARKS.md, "librdkafka
    /// 2.0 workarounds, measured again".
    ///
    /// Never inside a rebalance callback (a committed-offset round trip
    /// there held nodes through the rebalance and their session fell
    /// behind), and within 1 s: a failed try is repeated a second later;
    /// until it succeeds, the partition's messages are not handed out.
    private func rewind() {
        let now = monotonicMilliseconds()
        guard now >= nextRewindAt else { return }
        let due = rewindDue.intersection(unfetched)
        rewindDue = due
        guard !due.isEmpty else { return }
        nextRewindAt = now + 1000
        let list = rd_kafka_topic_partition_list_new(Int32(due.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for key in due { rd_kafka_topic_partition_list_add(list, key.topic, key.partition) }
        guard rd_kafka_committed(handle, list, 500) == RD_KAFKA_RESP_ERR_NO_ERROR else { return }
        let seek = rd_kafka_topic_partition_list_new(list.pointee.cnt)!
        defer { rd_kafka_topic_partition_list_destroy(seek) }
        for i in 0..<Int(list.pointee.cnt) {
            let tp = list.pointee.elems[i]
            guard let offset = tp.offset >= 0 ? tp.offset : resetOffset else { continue }
            rd_kafka_topic_partition_list_add(seek, tp.topic, tp.partition).pointee.offset = offset
        }
        if seek.pointee.cnt > 0, let error = rd_kafka_seek_partitions(handle, seek, 500) {
            rd_kafka_error_destroy(error)
            return
        }
        rewindDue = []
    }

    private func withPartition(_ topic: String, _ partition: Int32,
                               _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> rd_kafka_resp_err_t) {
        let list = rd_kafka_topic_partition_list_new(1)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_topic_partition_list_add(list, topic, partition)
        _ = body(list)
    }

    /// Leaves the subscription (partitions go to the other members after the
    /// revocation callback has committed); `subscribe` again to come back.
    public func unsubscribe() {
        rd_kafka_unsubscribe(handle)
    }

    /// Leaves the group explicitly and waits (at most `timeoutMs`) until the
    /// revocation ran, so `close()` finds nothing left to leave. Why not
    /// just `close()`: with static membership (`group.instance.id`, which
    /// swarm sets) librdkafka sends no LeaveGroup on close (KIP-345), so a
    /// node that goes away for good would leave its partitions without an
    /// owner for `session.timeout.ms` (45 s by default). An unsubscribe is
    /// not a termination: it does send LeaveGroup, static member or not.
    /// Messages still queued are dropped unhandled (not stored: their new
    /// owner gets them).
    public func leaveGroup(timeoutMs: Int) {
        rd_kafka_unsubscribe(handle)
        let deadline = monotonicMilliseconds() + Int64(timeoutMs)
        while !assigned.isEmpty && monotonicMilliseconds() < deadline {
            _ = pollBatch(max: 100, timeoutMs: 50)
        }
    }

    func withAssignment(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> rd_kafka_resp_err_t) {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if list.pointee.cnt > 0 { _ = body(list) }
    }
}
