import Shared

/// What a built-in node does with its group apart from librdkafka, as a pure
/// state machine: active, paused (a graceful stop), drained, or held (a
/// change of the group is coming: ARCHITECTURE.md, "the hold protocol").
/// Commands, revocations, assignments and the clock go in; actions come out,
/// and `NodeRuntime` carries them out against the consumer in order.
/// `NodeModeTests` drive it with a fake clock.
///
///                 hold, or the broker refused a commit (eager)
///     active ─────────────────────────────────────────────────▶ held
///       ▲  ◀── the next assignment after a revocation, release, ──┘
///       │      or holdLimit (10 s)
///       │ resume          pause (a graceful stop)
///       ├──────── paused ◀──────────────────── active, held
///       │ resume          drain (leaves the subscription)
///       └──────── drained ◀─────────────────── active, held, paused
///
/// Every command is answered in any phase: a hold counts (`holds=`) even
/// when the node is paused or drained already, since it has nothing
/// uncommitted; a command that repeats the phase does nothing.
struct NodeMode {
    enum Phase: Equatable { case active, paused, drained, held }

    /// What the runtime does, in this order.
    enum Action: Equatable {
        /// Commit what was handled (the reason goes in the log if it fails).
        case commit(String)
        /// Stop fetching every assigned partition.
        case pause
        /// Fetch again; `keepRetriesPaused`: partitions waiting out a retry
        /// backoff stay paused.
        case resume(keepRetriesPaused: Bool)
        /// Leave the subscription (the group gives the partitions to the others).
        case unsubscribe
        case subscribe
        /// Say this state in the next report, and send it now.
        case report(NodeReport.State)
        /// Count a hold answered (`holds=`), and report now: swarmd's commit barrier waits for it.
        case countHold
        case log(String)
    }

    /// The longest a node holds still waiting for a rebalance that may not
    /// reach it (with cooperative assignment, nodes that keep their
    /// partitions get no callback): a mock or eager rebalance takes about
    /// `session.timeout.ms`; 10 s bounds the pause of a node the change did
    /// not concern.
    static let holdLimit = 10.0

    private(set) var phase = Phase.active
    /// When a hold ends at the latest.
    private(set) var heldUntil = 0.0
    /// True once a revocation reached this node since its latest hold. With
    /// eager assignment every rebalance begins with one, so an assignment
    /// without it concludes a rebalance that began before the hold (an
    /// earlier change still settling), not the change this hold is for:
    /// ending the hold there let the node handle through the next
    /// rebalance, whose commits the broker refused (BENCHMARKS.md,
    /// "Membership changes behind a commit barrier").
    private(set) var revokedSinceHold = false

    /// A command from swarmd. `assigned`: how many partitions the node holds now.
    mutating func apply(_ command: NodeCommand, now: Double, assigned: Int) -> [Action] {
        switch command {
        case .pause where phase == .active || phase == .held:
            phase = .paused
            return [.pause, .commit("pause"), .report(.drained), .log("paused: not fetching, everything handled is committed")]
        case .drain where phase != .drained:
            // What it is assigned when it comes back is fetched.
            let resume: [Action] = phase == .held || phase == .paused ? [.resume(keepRetriesPaused: false)] : []
            phase = .drained
            return resume + [.commit("drain"), .unsubscribe, .log("draining: committed; leaving the subscription so the others take the partitions")]
        case .hold:
            var actions: [Action] = []
            if phase == .active {
                actions = [.commit("hold: the group is about to change"), .pause, .log("holding: committed, not handling until the group's next assignment")]
            }
            // Held already (an earlier change still settling): the new change's
            // rebalance is the one to wait for, with a limit of its own.
            if phase == .active || phase == .held { startHold(now: now, assigned: assigned) }
            // Answered in any phase: held, paused or drained already, nothing
            // was handled since the last commit.
            return actions + [.countHold]
        case .release:
            return endHold("the change is over: the rolled node's replacement consumes")
        case .resume where phase != .active:
            // Partitions given to it while paused go on from their committed offsets
            // (KafkaConsumer.resume); those waiting out a retry backoff stay paused.
            var actions: [Action] = phase == .paused || phase == .held ? [.resume(keepRetriesPaused: true)] : []
            if phase == .drained { actions.append(.subscribe) }
            phase = .active
            return actions + [.report(.running), .log("resumed")]
        default:
            // `leave` is the runtime's (how it stops), and the rest repeat the phase it is in.
            return []
        }
    }

    /// The broker refused a commit while this node was active (eager): the
    /// group rebalances and the node may not hear of it for up to a
    /// heartbeat interval, so it holds as if swarmd had said so.
    mutating func brokerRefusedCommit(_ sign: String, now: Double, assigned: Int) -> [Action] {
        guard phase == .active else { return [] }
        startHold(now: now, assigned: assigned)
        return [.pause, .log("holding: the broker refused a commit (\(sign)); not handling until the group's next assignment")]
    }

    /// Partitions are being taken away.
    mutating func revoked() {
        revokedSinceHold = true
    }

    /// The group gave this node its assignment. Under cooperative
    /// assignment a rebalance revokes only what moves: any assignment ends a hold.
    mutating func assigned(cooperative: Bool) -> [Action] {
        guard revokedSinceHold || cooperative else { return [] }
        return endHold("the group's new assignment arrived")
    }

    /// The clock: a hold ends at its limit.
    mutating func tick(now: Double) -> [Action] {
        guard phase == .held, now >= heldUntil else { return [] }
        return endHold(revokedSinceHold ? "the group's rebalance did not end within \(Self.holdLimit) s"
                                        : "no rebalance reached this node within \(Self.holdLimit) s")
    }

    /// Enters (or renews) a hold: it ends at the next assignment that
    /// follows a revocation, or at `holdLimit`.
    private mutating func startHold(now: Double, assigned: Int) {
        phase = .held
        // A node holding no partition (more nodes than partitions) has nothing to
        // revoke, and librdkafka may call no revocation for it: any assignment will do.
        revokedSinceHold = assigned == 0
        heldUntil = now + Self.holdLimit
    }

    private mutating func endHold(_ why: String) -> [Action] {
        guard phase == .held else { return [] }
        phase = .active
        return [.resume(keepRetriesPaused: true), .log("hold over: \(why)")]
    }
}
