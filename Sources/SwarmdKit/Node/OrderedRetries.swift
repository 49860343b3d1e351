import Shared
/// Kafka's per-partition order under failures (`ordering = "partition"`).
///
/// When the handler fails a message, its partition stops there: nothing at
/// or after the failed offset is stored, the partition is paused and rewound
/// to the failed message, and after the backoff it is fetched again from
/// there, so the failed message is retried before any later one of its
/// partition counts as handled (the later ones of that batch come again,
/// whatever the handler answered for them). Other partitions keep flowing.
/// After `retries`, the failure policy settles the message and the
/// partition goes on from the next offset. This is Karafka's default on an
/// error (pause the partition, retry from the failed offset).
///
/// Pure: the node feeds it batches, answers and the time, and does the
/// Kafka calls (pause, seek, resume, store) it decides on.
struct OrderedRetries {
    /// A partition stopped at a message that failed (or was deferred).
    struct Stop: Equatable {
        var offset: Int64
        /// Failed tries of that message so far (a deferral does not count).
        var attempts: Int
        var reason: String
        var resumeAt: Double
        /// True until `resumeAt`; then the partition is fetched again from `offset`.
        var paused: Bool
    }

    /// What becomes of one message of a batch.
    enum Decision: Equatable {
        /// Handled: store its offset.
        case handled
        /// After a failure in its partition: not stored, it comes again.
        case redelivered
        /// Failed: the partition rewinds to it and pauses until `until`.
        case retry(attempt: Int, until: Double)
        /// Deferred by the handler: rewind and pause briefly; no attempt counted.
        case deferred(until: Double)
        /// Failed every retry: apply the failure policy, then store it.
        case exhausted(reason: String)
        /// Not answered (the node is leaving at once): not stored.
        case unanswered
    }

    let retries: Int
    let backoff: Double
    private(set) var stops: [TopicPartition: Stop] = [:]
    /// After a handler died in a batch, its partitions' unanswered messages
    /// up to this offset go to the handler one at a time, so that the one
    /// that kills it is found and only it uses up retries.
    private(set) var isolated: [TopicPartition: Int64] = [:]

    init(retries: Int, backoff: Double) {
        self.retries = retries
        self.backoff = backoff
    }

    /// Which messages of a freshly fetched batch go to the handler. A stopped
    /// partition's messages are dropped while it waits (fetched before the
    /// rewind took effect; they come again), and once it is fetched again
    /// they must start at the failed message: anything past it before it
    /// means the rewind was lost, so the partition is rewound again.
    func admit(_ batch: [(partition: TopicPartition, offset: Int64)]) -> (keep: [Bool], rewind: [TopicPartition: Int64]) {
        var keep = [Bool](repeating: true, count: batch.count)
        var rewind: [TopicPartition: Int64] = [:]
        var reached: Set<TopicPartition> = []
        for (i, m) in batch.enumerated() {
            guard let stop = stops[m.partition], !reached.contains(m.partition) else { continue }
            if stop.paused {
                keep[i] = false
            } else if m.offset == stop.offset {
                reached.insert(m.partition)
            } else if m.offset > stop.offset {
                keep[i] = false
                rewind[m.partition] = stop.offset
            }
        }
        return (keep, rewind)
    }

    /// Nothing stopped, nothing isolated: the common case, where a batch goes
    /// to the handler whole and a batch answered `ok` is simply handled.
    var isCalm: Bool { stops.isEmpty && isolated.isEmpty }

    /// True when a message must go to the handler on its own (see `isolated`).
    func isIsolated(_ p: TopicPartition, offset: Int64) -> Bool {
        isolated[p].map { offset <= $0 } ?? false
    }

    /// True when the message's partition was stopped earlier in the batch
    /// being handled: it must not go to the handler, it comes again.
    func isStopped(_ p: TopicPartition) -> Bool { stops[p]?.paused == true }

    /// Decides on every message of (a part of) a batch, given the handler's answers in order.
    mutating func decide(_ batch: [(partition: TopicPartition, offset: Int64)], answers: [HandleOutcome], now: Double) -> [Decision] {
        var out: [Decision] = []
        out.reserveCapacity(batch.count)
        for (i, m) in batch.enumerated() {
            // Stopped earlier in this batch, or before a pipelined batch was
            // answered: nothing past a stop counts until its message is settled.
            if let stop = stops[m.partition], stop.paused || m.offset > stop.offset { out.append(.redelivered); continue }
            guard i < answers.count else { out.append(.unanswered); continue }
            let previous = stops[m.partition].flatMap { $0.offset == m.offset ? $0 : nil }
            var answer = answers[i]
            if case .lost(let reason) = answer {
                let unanswered = batch[i...].filter { $0.partition == m.partition }
                if unanswered.count == 1 {
                    answer = .failed(reason)  // alone: the handler died on this very message
                } else {
                    // Not known which one killed the handler: none is charged; one at a time from here.
                    isolated[m.partition] = max(isolated[m.partition] ?? 0, unanswered.map(\.offset).max()!)
                    let until = now + backoff
                    stops[m.partition] = Stop(offset: m.offset, attempts: previous?.attempts ?? 0, reason: reason,
                                              resumeAt: until, paused: true)
                    out.append(.deferred(until: until))
                    continue
                }
            }
            switch answer {
            case .ok:
                if previous != nil { stops[m.partition] = nil }
                out.append(.handled)
            case .failed(let reason):
                let attempt = (previous?.attempts ?? 0) + 1
                if attempt > retries {
                    stops[m.partition] = nil
                    out.append(.exhausted(reason: reason))
                } else {
                    let until = now + backoff * Double(1 << min(attempt - 1, 20))
                    stops[m.partition] = Stop(offset: m.offset, attempts: attempt, reason: reason, resumeAt: until, paused: true)
                    out.append(.retry(attempt: attempt, until: until))
                }
            case .deferred:
                // A handler that defers forever must not spin the node: one backoff each time.
                let until = now + backoff
                stops[m.partition] = Stop(offset: m.offset, attempts: previous?.attempts ?? 0,
                                          reason: previous?.reason ?? "deferred", resumeAt: until, paused: true)
                out.append(.deferred(until: until))
            case .lost:
                break  // made a failure or a deferral above
            }
            // Past the last suspect, settled: whole batches again.
            if let last = isolated[m.partition], m.offset >= last, stops[m.partition]?.paused != true {
                isolated[m.partition] = nil
            }
        }
        return out
    }

    /// Paused partitions whose backoff is over: the node resumes them.
    mutating func due(now: Double) -> [TopicPartition] {
        var out: [TopicPartition] = []
        for (p, stop) in stops where stop.paused && stop.resumeAt <= now {
            stops[p]?.paused = false
            out.append(p)
        }
        return out.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }

    /// Partitions still waiting out their backoff (to pause again after the node resumes everything).
    var pausedPartitions: [TopicPartition] { stops.filter(\.value.paused).map(\.key) }

    /// Forgets partitions this node no longer owns: their new owner starts
    /// from the committed offset, which is at or before the failed message.
    mutating func keep(only assigned: Set<TopicPartition>) {
        stops = stops.filter { assigned.contains($0.key) }
        isolated = isolated.filter { assigned.contains($0.key) }
    }
}
