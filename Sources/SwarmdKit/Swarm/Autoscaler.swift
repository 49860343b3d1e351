import Shared

/// Lag-aware autoscaling, pure: what the swarm's size should be, from what
/// the nodes already report (lag per partition, messages/s, partitions
/// stopped at a failing message) and a clock. `Swarm` feeds it and carries
/// out its answer as a scale; tests drive it with a fake clock.
///
/// Every change of a Kafka consumer group costs a rebalance, so it acts
/// rarely and decisively (KEDA's users' lessons, kedacore/keda #5096, #7092,
/// #7517):
/// - up when the lag would take longer than `target_drain_seconds` to drain
///   at the measured rate, at most to the number of partitions that have
///   lag, in a step that spreads partitions evenly, and only `cooldown_up`
///   after the last change;
/// - down one even step when the swarm has been idle for `cooldown_down`:
///   the lag would drain in under a quarter of the target, and the smaller
///   swarm would be at most half busy (handler time per wall time, from the
///   nodes' batch times) — a swarm that keeps up only because it is large is
///   not idle;
/// - a step up that did not raise throughput by 10 % within `cooldown_up`
///   (a saturated downstream) is undone, and no step up is tried for four
///   times `cooldown_up`;
/// - partitions stopped at a failing message (a poison message retried in
///   order) do not count: more nodes would not move them;
/// - nothing while the swarm is not steady: a reload or rolling restart, a
///   stop, a rebalance, a node joining or missing; and nothing until it has
///   been steady for `settle` seconds, so that every node's lag is read
///   from a position it really has and its rate is measured after the
///   rebalance, not across it. A step taken is judged the same way. Before
///   this rule a swarm whose backlog was gone flapped 4 -> 3 -> 4 -> 3 on
///   lag misread right after each rebalance and on a rate that still
///   counted the rebalance's pause (issue #27);
/// - nothing while any partition's lag is unknown (-1: just assigned, its
///   committed offset not read yet).
struct Autoscaler: Codable, Equatable {
    /// What the swarm shows it, at one evaluation.
    struct Observation {
        var wanted: Int
        /// Every wanted node consumes, nothing rolls or stops.
        var steady: Bool
        var lag: [TopicPartition: Int64]
        var stuck: Set<TopicPartition>
        /// Messages/s the swarm handles (the nodes' smoothed rates summed).
        var rate: Double
        /// How many nodes' worth of handler time the work takes (each node's
        /// busy share, 0…1, summed): 6 nodes each half busy is 3.
        var busy: Double = 0
    }

    struct Decision: Equatable {
        var size: Int
        var reason: String
    }

    /// A step up on trial: undone if throughput did not follow.
    struct Trial: Codable, Equatable {
        var from: Int
        var to: Int
        var rateBefore: Double
        var at: Double
    }

    /// How often it looks (the nodes report every second; lag moves slower).
    static let interval = 5.0
    /// How long the swarm must have been steady before it looks: five
    /// reports at the default interval, after which what the rebalance left
    /// in each node's smoothed rate weighs 1/32.
    static let settle = 5.0
    /// A step up must raise throughput by this factor to stay.
    static let gainNeeded = 1.1
    /// A step down only if the smaller swarm would be at most this busy.
    static let busyAfterStepDown = 0.5

    var suspended = false
    /// "Long ago": finite, because the state crosses an in-place upgrade as
    /// JSON, which has no infinity (an upgrade with autoscaling on failed
    /// with "-inf is not a JSON number" before any change; found by
    /// SwarmFuzzTests).
    static let longAgo = -Double.greatestFiniteMagnitude
    private(set) var lastEvaluation = Autoscaler.longAgo
    private(set) var lastChange = Autoscaler.longAgo
    private(set) var idleSince: Double?
    private(set) var holdUpUntil = Autoscaler.longAgo
    private(set) var trial: Trial?
    private(set) var lastDecision: String?
    private(set) var lastReason: String?
    private(set) var ups = 0
    private(set) var downs = 0
    private(set) var undone = 0
    /// The most partitions ever seen assigned at once: a topic never loses
    /// partitions, but a rebalance hides some for a while (cooperative
    /// assignment moves them in two steps), and a ceiling taken from one
    /// look mid-rebalance scaled a swarm straight back down ("above max 1").
    /// Optional so that a handover from an older swarmd reads.
    private(set) var partitionsSeen: Int?
    /// Since when the swarm has been steady (see `settle`); nil while it is not.
    private(set) var steadySince: Double?

    /// Told at every event whether the swarm is steady now: a rebalance
    /// between two looks restarts the settling.
    mutating func note(steady: Bool, now: Double) {
        if !steady { steadySince = nil } else if steadySince == nil { steadySince = now }
    }

    /// The earliest time a change may happen, for the status.
    func nextChangeAllowed(_ s: AutoscaleSettings) -> Double {
        max(lastChange + s.cooldownUp, holdUpUntil)
    }

    /// Records a size change swarmd did not decide here (start, manual scale).
    mutating func sizeChanged(now: Double) {
        lastChange = now
        trial = nil
        idleSince = nil
    }

    /// True when `evaluate` would look now.
    func due(now: Double, settings s: AutoscaleSettings) -> Bool {
        s.enabled && !suspended && now - lastEvaluation >= Self.interval
    }

    mutating func evaluate(_ o: Observation, settings s: AutoscaleSettings, now: Double) -> Decision? {
        guard due(now: now, settings: s) else { return nil }
        lastEvaluation = now
        note(steady: o.steady, now: now)
        guard let since = steadySince, now - since >= Self.settle, !o.lag.isEmpty,
              !o.lag.values.contains(where: { $0 < 0 }), o.rate.isFinite, o.busy.isFinite else { return nil }
        let partitions = max(partitionsSeen ?? 0, o.lag.count)
        partitionsSeen = partitions
        let ceiling = max(s.min, min(s.max > 0 ? s.max : partitions, SupervisorSettings.maxNodes))
        if o.wanted < s.min { return decide(s.min, "below min \(s.min)", o, now) }
        if o.wanted > ceiling { return decide(ceiling, "above max \(ceiling)", o, now) }
        let lagged = o.lag.filter { $0.value > 0 && !o.stuck.contains($0.key) }
        let lag = lagged.values.reduce(Int64(0)) { $0.addingSaturating($1) }
        let drain = lag == 0 ? 0 : (o.rate > 0 ? Double(lag) / o.rate : .infinity)
        let stuckNote = o.stuck.isEmpty ? "" : "; \(o.stuck.count) partition(s) stopped at a failing message not counted"
        let inputs = "lag \(lag) drains in \(Self.seconds(drain)) at \(Int(saturating: o.rate.rounded()))/s"

        if let t = trial, now - t.at >= s.cooldownUp {
            trial = nil
            if t.to > t.from && o.rate < t.rateBefore * Self.gainNeeded && drain > s.targetDrainSeconds {
                holdUpUntil = now + 4 * s.cooldownUp
                undone += 1
                return decide(t.from, "undo: \(t.from) -> \(t.to) raised throughput only from \(Int(saturating: t.rateBefore.rounded())) to "
                              + "\(Int(saturating: o.rate.rounded()))/s (a saturated downstream?); no step up for \(Int(saturating: 4 * s.cooldownUp)) s", o, now)
            }
        }

        if drain > s.targetDrainSeconds {
            idleSince = nil
            let cap = min(ceiling, lagged.count)
            guard cap > o.wanted, now - lastChange >= s.cooldownUp, now >= holdUpUntil else { return nil }
            let wanted = drain.isFinite ? Int(saturating: (Double(o.wanted) * drain / s.targetDrainSeconds).rounded(.up)) : cap
            let size = Self.evenStepUp(from: o.wanted, toward: min(max(wanted, o.wanted + 1), cap), partitions: partitions, cap: cap)
            guard size > o.wanted else { return nil }
            trial = Trial(from: o.wanted, to: size, rateBefore: o.rate, at: now)
            ups += 1
            return decide(size, "\(inputs) > target \(Int(saturating: s.targetDrainSeconds)) s; \(lagged.count) partitions with lag\(stuckNote)", o, now)
        }

        let smaller = max(s.min, Self.evenStepDown(from: o.wanted, partitions: partitions))
        if drain <= s.targetDrainSeconds / 4 && o.busy <= Double(smaller) * Self.busyAfterStepDown {
            let since = idleSince ?? now
            idleSince = since
            guard o.wanted > s.min, now - since >= s.cooldownDown, now - lastChange >= s.cooldownDown else { return nil }
            let size = smaller
            guard size < o.wanted else { return nil }
            downs += 1
            idleSince = now
            return decide(size, "idle: \(inputs), under a quarter of the target, and \(Self.share(o.busy)) nodes' worth of work, "
                          + "for \(Int(saturating: now - since)) s\(stuckNote)", o, now)
        }
        idleSince = nil
        return nil
    }

    private mutating func decide(_ size: Int, _ reason: String, _ o: Observation, _ now: Double) -> Decision {
        lastChange = now
        steadySince = nil  // the change is a rebalance: settle again before the next look
        lastDecision = "\(o.wanted) -> \(size)"
        lastReason = reason
        return Decision(size: size, reason: reason)
    }

    /// The smallest size above `from`, at most `cap`, that gives each node
    /// no more partitions than `toward` would: sizes between two such counts
    /// leave some nodes with more partitions than others for nothing
    /// (12 partitions: 4 nodes hold 3 each, 5 nodes still leave some with 3).
    static func evenStepUp(from: Int, toward: Int, partitions: Int, cap: Int) -> Int {
        guard partitions > 0 else { return from }
        var perNode = (partitions + toward - 1) / toward
        var size = (partitions + perNode - 1) / perNode
        while size <= from && perNode > 1 {
            perNode -= 1
            size = (partitions + perNode - 1) / perNode
        }
        return min(size, cap)
    }

    /// One even step down: the fewest nodes that hold one more partition each.
    static func evenStepDown(from: Int, partitions: Int) -> Int {
        guard partitions > 0, from > 1 else { return max(1, from - 1) }
        if from > partitions { return partitions }  // the waiting nodes first: they hold nothing
        var perNode = (partitions + from - 1) / from
        var size = from
        while size >= from && perNode < partitions {
            perNode += 1
            size = (partitions + perNode - 1) / perNode
        }
        return size >= from ? from - 1 : size
    }

    static func share(_ v: Double) -> String { "\((v * 10).rounded() / 10)" }

    static func seconds(_ s: Double) -> String {
        s.isFinite ? "\(Int(saturating: s.rounded())) s" : "never (nothing handled)"
    }
}
