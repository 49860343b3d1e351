import Shared

/// What a node checks of its brokers once a second, beside librdkafka, as a
/// pure value: when to ask whether a broker answers, when to ask whether the
/// subscribed topics exist, when to join again, and when to give up on this
/// consumer. `NodeRuntime` asks the broker when told to and hands the answer
/// back; `BrokerWatchTests` drive it with a fake clock.
///
/// Three things librdkafka does not say by itself:
/// - **A broker back.** librdkafka says when every broker is down
///   (`ALL_BROKERS_DOWN`), not when one answers again: while it says down,
///   the node asks each second (200 ms at most), and the first answer ends
///   the outage it reports.
/// - **A frozen broker.** One that stops answering with its connections open
///   (SIGSTOP, a half-open network) never makes librdkafka say every broker
///   is down; the node only loses its assignment at `session.timeout.ms`.
///   Between a revocation and the next assignment the node asks each second
///   (not while the group gives it nothing to do: one request a second per
///   idle node is load on the broker for nothing), and a broker that does
///   not answer within 500 ms counts as down (`silentSince`;
///   `disconnected` after `disconnected_after`).
/// - **A topic that is gone, then back.** A broker started again empty, or a
///   deleted topic, assigns nothing and says nothing: every
///   `topicCheckInterval` with nothing assigned, the node asks whether its
///   topics exist, and the answer names the problem (`unknown-topic`).
///   Once they exist again, librdkafka's group logic does not hear of it
///   until its own metadata refresh (5 minutes): the node subscribes again
///   at each check, `rejoins` times at most (nothing is assigned, so nothing
///   is revoked). Seen on Tansu started again empty, that is not always
///   enough: the group keeps assigning nothing from librdkafka's stale view
///   of the topic. Then the node leaves (it holds nothing, so nothing is
///   redelivered) and swarmd starts a fresh consumer, once.
struct BrokerWatch: Equatable {
    /// How often a node with nothing assigned asks whether its topics exist.
    static let topicCheckInterval = 5.0
    /// How many times it joins again after its missing topic came back.
    static let rejoins = 6

    /// Since when no broker answered a probe although librdkafka holds its
    /// connections open (nil while one answers).
    private(set) var silentSince: Double?
    private(set) var lastTopicCheck: Double
    private(set) var rejoinsLeft = 0
    /// Since when the joins were used up with the topic back and nothing assigned.
    private(set) var staleGroupViewSince: Double?

    init(now: Double) { lastTopicCheck = now }

    /// What the node sees of its consumer at a look.
    struct Look: Equatable {
        /// The node is active (not paused, drained or held).
        var active: Bool
        var assigned: Int
        /// librdkafka says every broker is down.
        var brokersDown: Bool
        /// The node's partitions were revoked and nothing came since.
        var revoked: Bool
    }

    /// A question the node asks its brokers (cluster metadata, no topics).
    enum Probe: Equatable {
        /// librdkafka says every broker is down: is one back?
        case outage
        /// The partitions were revoked and nothing came since: is the broker frozen?
        case silence

        /// How long the node waits for the answer; the loop waits with it.
        var timeoutMs: Int32 { self == .outage ? 200 : 500 }
    }

    /// The probe due at this look, if any; a look that needs none ends a silence.
    mutating func probeDue(_ look: Look) -> Probe? {
        if look.brokersDown {
            silentSince = nil  // librdkafka's own word on the outage takes over
            return .outage
        }
        if look.active && look.revoked && look.assigned == 0 { return .silence }
        silentSince = nil
        return nil
    }

    /// A probe's answer: a line for the log when an outage or a silence ends,
    /// or when a silence begins.
    mutating func probed(_ probe: Probe, answered: Bool, now: Double) -> Action? {
        if answered {
            defer { silentSince = nil }
            return probe == .outage || silentSince != nil ? .notice("a broker answers again") : nil
        }
        guard probe == .silence, silentSince == nil else { return nil }
        silentSince = now
        return .warn("no broker answers a metadata request within \(probe.timeoutMs) ms, though the connections are open")
    }

    /// True when the node should ask whether its topics exist.
    func topicCheckDue(_ look: Look, now: Double) -> Bool {
        look.active && look.assigned == 0 && !look.brokersDown && now - lastTopicCheck >= Self.topicCheckInterval
    }

    /// What follows a probe or a topic check, in order.
    enum Action: Equatable {
        case warn(String)
        case notice(String)
        /// Subscribe again, so that the group joins with the topics.
        case resubscribe
        /// Leave for a fresh consumer (swarmd starts one): the group still
        /// assigns nothing although the topics are back.
        case leave(String)
    }

    /// The answer to a topic check: the missing topic before and after it
    /// (`KafkaConsumer.missingTopic`, nil when every topic exists).
    mutating func topicsChecked(missingBefore before: String?, missingAfter after: String?, now: Double) -> [Action] {
        lastTopicCheck = now
        var actions: [Action] = []
        if let after, after != before { actions.append(.warn("\(after): waiting for it (nothing to consume)")) }
        if before != nil && after == nil {
            actions.append(.notice("the subscribed topics exist again: joining with them"))
            rejoinsLeft = Self.rejoins
        }
        guard after == nil else { return actions }
        if rejoinsLeft > 0 {
            rejoinsLeft -= 1
            actions.append(.resubscribe)
            if rejoinsLeft == 0 { staleGroupViewSince = now }
        }
        if let since = staleGroupViewSince, now - since >= Self.topicCheckInterval {
            actions.append(.leave("the subscribed topics are back but the group still assigns nothing after \(Self.rejoins) joins: leaving, so that a fresh consumer joins"))
        }
        return actions
    }

    /// Something is assigned: the topic's return is over.
    mutating func assigned() {
        rejoinsLeft = 0
        staleGroupViewSince = nil
    }
}
