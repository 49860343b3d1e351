#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared
import SwarmKafka

/// A batch's way through the node: handed to the handler (one at a time, or
/// pipelined), its answers settled (offsets stored only past what every
/// message before answered; a failure retried in partition order by
/// `OrderedRetries`, or out of line; dead letters), and counted. Decisions
/// about order live in `OrderedRetries`; this file carries them out.
extension NodeRuntime {
    /// Hands a batch on: pipelined while that is allowed, else one at a time
    /// after everything in flight is settled. Returns false when a message
    /// could not be settled.
    ///
    /// Pipelining (`[handler] pipeline` = P > 1, exec handlers): up to P
    /// batches are written to the handler before the node waits for the
    /// oldest's answers, and batches are settled (offsets stored) strictly in
    /// the order they were written, so an offset is stored only when every
    /// message before it in its partition was answered. Only while nothing is
    /// being retried (`ordering = "partition"`: no partition stopped or
    /// isolated), and only while the node is active: a failure, a command, a
    /// revocation and a stop first settle what is in flight.
    func dispatch(_ batch: [KafkaMessage]) -> Bool {
        if let pipelinedHandler, !batch.isEmpty, mode.phase == .active,
           config.handler.ordering == .none || ordered.isCalm {
            pipelinedHandler.submit(batch)
            inFlight.append((batch, monotonicNow()))
            reportInFlight()
            while inFlight.count >= config.handler.pipeline {
                if !settleOldest() { return false }
            }
            return true
        }
        guard settleInFlight() else { return false }
        return batch.isEmpty || process(batch)
    }

    /// Settles every batch in flight, oldest first; false when a message could not be settled.
    func settleInFlight() -> Bool {
        while !inFlight.isEmpty {
            if !settleOldest() { return false }
        }
        return true
    }

    /// Waits for the oldest batch in flight's answers and settles it.
    private func settleOldest() -> Bool {
        guard let pipelinedHandler, !inFlight.isEmpty else { return true }
        let (batch, started) = inFlight.removeFirst()
        let outcomes = pipelinedHandler.collect(shouldAbort: { self.quitPending() })
        let ms = (monotonicNow() - started) * 1000
        reporter.update { c in
            c.batchBuckets[NodeReport.batchBucket(ms: ms)] += 1
            c.batchSumMs += ms
        }
        reportInFlight()
        let settled = config.handler.ordering == .partition ? settleInOrder(batch, answers: outcomes)
                                                             : settleOutOfLine(batch, outcomes: outcomes)
        if !settled { inFlight = [] }  // nothing after an unsettled message is stored
        return settled
    }

    /// What status shows as in flight: every message handed over and not settled.
    private func reportInFlight() {
        let count = inFlight.reduce(0) { $0 + $1.batch.count }, since = inFlight.first?.started
        reporter.update { $0.inflight = count; $0.batchStartedAt = since }
    }

    /// Drops messages of stopped partitions fetched before their rewind
    /// took effect; they come again, in order, after the failed message.
    func admitted(_ batch: [KafkaMessage]) -> [KafkaMessage] {
        let (keep, rewind) = ordered.admit(batch.map { ($0.topicPartition, $0.offset) })
        for (p, offset) in rewind {
            logger.warning("a rewind to a failed message did not take effect: rewinding again",
                           metadata: ["topic": "\(p.topic)", "partition": "\(p.partition)", "offset": "\(offset)"])
            consumer?.seek(p, offset: offset)
        }
        return zip(batch, keep).filter(\.1).map(\.0)
    }

    /// Hands a batch to the handler and records how long it took (the batch-time histogram).
    private func timedHandle(_ batch: [KafkaMessage], shouldAbort: () -> Bool) -> [HandleOutcome] {
        let started = monotonicNow()
        let outcomes = handler.handle(batch, shouldAbort: shouldAbort)
        let ms = (monotonicNow() - started) * 1000
        reporter.update { c in
            c.batchBuckets[NodeReport.batchBucket(ms: ms)] += 1
            c.batchSumMs += ms
        }
        return outcomes
    }

    func process(_ batch: [KafkaMessage]) -> Bool {
        config.handler.ordering == .partition ? processInOrder(batch) : processOutOfLine(batch)
    }

    /// `ordering = "partition"`: hands a batch to the handler, stores what
    /// was handled up to each partition's first failure, and stops that
    /// partition there (see `OrderedRetries`). After the handler died in a
    /// batch, the suspects go to it one at a time. Returns false when a
    /// message could not be settled: the node must then leave.
    private func processInOrder(_ batch: [KafkaMessage]) -> Bool {
        let started = monotonicNow()
        reporter.update { $0.inflight = batch.count; $0.batchStartedAt = started }
        defer { reporter.update { $0.inflight = 0; $0.batchStartedAt = nil } }
        // Calm (nothing stopped or isolated), the batch goes whole: the
        // per-message checks below cost more than the framing with small messages.
        if ordered.isCalm { return handleInOrder(batch) }
        var parts: [[KafkaMessage]] = [[]]
        for m in batch {
            if ordered.isIsolated(m.topicPartition, offset: m.offset) {
                parts += [[m], []]
            } else {
                parts[parts.count - 1].append(m)
            }
        }
        for part in parts where !part.isEmpty {
            // A partition stopped by an earlier part waits: its messages come again.
            let live = part.filter { !ordered.isStopped($0.topicPartition) }
            guard !live.isEmpty else { continue }
            if !handleInOrder(live) { return false }
        }
        return true
    }

    private func handleInOrder(_ batch: [KafkaMessage]) -> Bool {
        settleInOrder(batch, answers: timedHandle(batch, shouldAbort: { self.quitPending() }))
    }

    /// Stores and counts what the handler's answers settle, in order mode
    /// (see `OrderedRetries`); false when a message could not be settled.
    private func settleInOrder(_ batch: [KafkaMessage], answers: [HandleOutcome]) -> Bool {
        if ordered.isCalm && answers.count == batch.count && answers.allSatisfy({ $0 == .ok }) {
            // What `decide` would say, without its per-partition bookkeeping per message.
            finish(batch.map { ($0.topicPartition, $0.offset) }, ok: Int64(batch.count), failed: 0)
            return true
        }
        let decisions = ordered.decide(batch.map { ($0.topicPartition, $0.offset) },
                                       answers: answers, now: monotonicNow())
        var settled: [(partition: TopicPartition, offset: Int64)] = []
        var ok: Int64 = 0, failed: Int64 = 0
        var complete = true
        var unsettled: Set<TopicPartition> = []
        for (message, decision) in zip(batch, decisions) {
            let p = message.topicPartition
            if !unsettled.isEmpty && unsettled.contains(p) { continue }
            // Built only for the lines that need it: a dictionary per message was 11 % of a node's time.
            var where_: Logger.Metadata { ["topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)"] }
            switch decision {
            case .handled:
                ok += 1
                settled.append((message.topicPartition, message.offset))
            case .redelivered:
                continue
            case .unanswered:
                complete = false
            case .retry(let attempt, let until):
                reporter.update { $0.retried += 1 }
                logger.info("retrying failed message in order: its partition waits",
                            metadata: where_.merging(["attempt": "\(attempt)", "in_s": "\((until - monotonicNow()).rounded(toPlaces: 2))",
                                                      "reason": "\(ordered.stops[p]?.reason ?? "")"]) { $1 })
                rewind(message)
            case .deferred:
                logger.debug("message to be delivered again: its partition waits", metadata: where_)
                rewind(message)
            case .exhausted(let reason):
                guard !quitPending(), settle(message, reason: reason) else {
                    // Nothing after an unsettled message may be stored.
                    complete = false
                    unsettled.insert(p)
                    continue
                }
                failed += 1
                settled.append((message.topicPartition, message.offset))
            }
        }
        finish(settled, ok: ok, failed: failed)
        return complete
    }

    /// Stores the offsets of what was settled and counts it.
    func finish(_ settled: [(partition: TopicPartition, offset: Int64)], ok: Int64, failed: Int64) {
        consumer?.store(settled)
        // Right after a rebalance another one often follows (a second member
        // joining or leaving, the broker's own), and the broker refuses the
        // commit at its revocation: what was handled since the last commit is
        // delivered again. Within `unsettledWindow` of an assignment each
        // batch's offsets go out at once (asynchronously: the loop does not
        // wait), so that loss is at most about a batch. BENCHMARKS.md, "Churn".
        if !settled.isEmpty, let at = lastAssignmentAt, monotonicNow() - at < Self.unsettledWindow, !(consumer?.brokersDown ?? true) {
            consumer?.commitAsync()
        }
        reporter.update {
            $0.handled += ok
            $0.failed += failed
        }
    }

    /// Stops a partition at a message and makes it the next one fetched.
    func rewind(_ message: KafkaMessage) {
        guard let consumer else { return }
        consumer.pause(message.topicPartition)
        if let error = consumer.seek(message.topicPartition, offset: message.offset) {
            // The admission check rewinds again if a later message shows up first.
            logger.warning("cannot rewind to the failed message: \(error)")
        }
    }

    /// `ordering = "none"`: hands a batch to the handler, retries what failed
    /// alone (after the rest of the batch), applies the failure policy, and
    /// only then stores the offsets. Returns false when a message could not
    /// be settled: the node must then leave (after committing what was
    /// settled before it), so the group redelivers it from there.
    private func processOutOfLine(_ batch: [KafkaMessage]) -> Bool {
        let started = monotonicNow()
        reporter.update { $0.inflight = batch.count; $0.batchStartedAt = started }
        defer { reporter.update { $0.inflight = 0; $0.batchStartedAt = nil } }
        return settleOutOfLine(batch, outcomes: timedHandle(batch, shouldAbort: { self.quitPending() }))
    }

    /// Retries what failed, applies the failure policy, stores and counts
    /// (`ordering = "none"`); false when a message could not be settled.
    private func settleOutOfLine(_ batch: [KafkaMessage], outcomes: [HandleOutcome]) -> Bool {
        var settled: [(partition: TopicPartition, offset: Int64)] = []
        var ok: Int64 = 0, failed: Int64 = 0
        var complete = true
        for (i, message) in batch.enumerated() {
            // Fewer answers than messages: aborted by QUIT, the rest is not handled.
            guard i < outcomes.count else { complete = false; break }
            var outcome = outcomes[i]
            if outcome == .deferred { outcome = .failed("deferred by the handler") }
            if case .lost(let reason) = outcome { outcome = .failed(reason) }
            if case .failed(let reason) = outcome { outcome = retry(message, firstFailure: reason) }
            if case .failed(let reason) = outcome {
                // Nothing after an unsettled message may be stored: offsets are per partition high-water marks.
                guard !quitPending(), settle(message, reason: reason) else { complete = false; break }
                failed += 1
            } else {
                ok += 1
            }
            settled.append((message.topicPartition, message.offset))
        }
        finish(settled, ok: ok, failed: failed)
        return complete
    }

    func retry(_ message: KafkaMessage, firstFailure: String) -> HandleOutcome {
        var reason = firstFailure
        var delay = config.handler.retryBackoff
        for attempt in 0..<config.handler.retries {
            if quitPending() { break }
            reporter.update { $0.retried += 1 }
            logger.info("retrying failed message", metadata: ["topic": "\(message.topic)", "partition": "\(message.partition)",
                                                              "offset": "\(message.offset)", "attempt": "\(attempt + 1)", "reason": "\(reason)"])
            sleepSeconds(delay)
            delay *= 2
            let outcome = timedHandle([message], shouldAbort: { self.quitPending() }).first ?? .failed("aborted")
            if outcome == .ok { return .ok }
            switch outcome {
            case .failed(let r), .lost(let r): reason = r
            case .deferred: reason = "deferred by the handler"
            case .ok: break
            }
        }
        return .failed(reason)
    }

    /// Applies the failure policy to a message that failed every retry.
    /// Returns false when it could not be settled (dead-letter produce failed):
    /// then it is not stored and will be delivered again.
    func settle(_ message: KafkaMessage, reason: String) -> Bool {
        let where_: Logger.Metadata = ["topic": "\(message.topic)", "partition": "\(message.partition)",
                                       "offset": "\(message.offset)", "reason": "\(reason)"]
        switch config.handler.onFailure {
        case .skip:
            logger.error("message failed every retry: skipped", metadata: where_)
            return true
        case .deadLetter:
            guard let producer = deadLetters else { return false }
            var headers = message.headers.map { ($0.name, $0.value) }
            headers.append(("swarm.error", Array(reason.utf8)))
            headers.append(("swarm.source", Array("\(message.topic)/\(message.partition)/\(message.offset)".utf8)))
            if let error = producer.produce(topic: config.handler.deadLetterTopic, key: message.key, value: message.value, headers: headers) {
                logger.error("dead-letter produce failed: \(error); the message will be delivered again", metadata: where_)
                return false
            }
            guard producer.flush(timeoutMs: 10_000) else {
                logger.error("dead-letter produce not confirmed; the message will be delivered again", metadata: where_)
                return false
            }
            reporter.update { $0.deadLettered += 1 }
            logger.error("message failed every retry: sent to \(config.handler.deadLetterTopic)", metadata: where_)
            return true
        }
    }
}
