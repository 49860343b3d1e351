import Shared

/// The swarm as status shows it: a read-only view of the core's state,
/// rendered by swarmctl (table and JSON), `/metrics`, the page and the
/// cluster record. Nothing here changes the swarm.
extension Swarm {
    /// One node's health from its last report (`NodeHealth` says what each
    /// value means): Kafka's condition decides between ok, joining and
    /// degraded; the process's own verdict, unhealthy, wins over it.
    static func health(of report: NodeReport?, alive: Bool) -> NodeHealth {
        guard let report else { return alive ? .unknown : .down }
        if report.health == .unhealthy { return .unhealthy }
        switch report.kafka {
        case nil: return .ok
        case .joining?: return .joining
        case let k?: return k.isHealthy ? .ok : .degraded  // disconnected, rebalancing too long
        }
    }

    /// The status as `swarmctl status --json` shows it (memory is the shell's to read).
    func status(now: Double) -> SwarmStatus {
        var nodes = slots.keys.sorted().map { id -> NodeStatus in
            let slot = slots[id]!
            let p = slot.process
            var state = NodeStatusState(slot.state.phase)
            if state == .backoff && slot.quickFailures >= settings.crashLoopAfter { state = .crashLooping }
            return NodeStatus(
                slot: slot.id, pid: p?.pid, state: state,
                uptimeS: p.map { (now - $0.startedAt).rounded(toPlaces: 1) } ?? 0,
                restarts: slot.restarts, lastExit: slot.lastExit, rssBytes: p?.memory?.rss,
                handled: slot.handled, failed: slot.failed, rate: (p?.rate ?? 0).rounded(toPlaces: 1),
                partitions: p?.lastReport?.partitions ?? 0,
                lag: p?.lastReport.flatMap { $0.lag >= 0 ? $0.lag : nil },
                partitionLag: p?.lastReport.flatMap { $0.partitionLag.isEmpty ? nil : PartitionLag.list($0.partitionLag) },
                reportAgeMs: p?.lastReport == nil ? nil : Int64(saturating: (now - p!.lastReportAt) * 1000),
                health: Self.health(of: p?.lastReport, alive: p != nil))
        }
        for i in nodes.indices {
            if let report = slots[nodes[i].slot]?.process?.lastReport {
                nodes[i].kafka = report.kafka?.rawValue
                if !report.client.isEmpty { nodes[i].client = report.client }
                if !report.groupProtocol.isEmpty { nodes[i].groupProtocol = report.groupProtocol }
                if report.health == .unhealthy {
                    nodes[i].reason = UnhealthyReason.describe(report.reason)
                } else if let k = report.kafka, !k.isHealthy && k != .joining {
                    nodes[i].reason = k.rawValue + (report.detail.isEmpty ? "" : ": \(report.detail)")
                }
            }
            guard let m = slots[nodes[i].slot]?.process?.memory, m.hasPSS else { continue }
            nodes[i].pssBytes = m.pss
            nodes[i].processes = m.processes.map { ProcessMemoryStatus(pid: $0.pid, name: $0.name, rssBytes: $0.rss, pssBytes: $0.pss) }
        }
        return SwarmStatus(
            pid: pid, state: mode.status, wanted: wanted,
            running: nodes.filter { $0.state.isUp }.count,
            healthy: nodes.filter { $0.slot < wanted && $0.health == .ok }.count,
            uptimeS: (now - startedAt).rounded(toPlaces: 1), restarts: totalRestarts,
            handled: nodes.reduce(0) { $0.addingSaturating($1.handled) }, failed: nodes.reduce(0) { $0.addingSaturating($1.failed) },
            rate: nodes.reduce(0.0) { $0 + $1.rate }.rounded(toPlaces: 1),
            malformedReports: malformedReports, version: nil, upgrades: upgrades,
            autoscale: autoscaleStatus(now: now), nodes: nodes)
    }

    private func autoscaleStatus(now: Double) -> AutoscaleStatus? {
        guard config.autoscale.enabled else { return nil }
        let a = autoscaler
        let s = config.autoscale
        return AutoscaleStatus(active: !a.suspended, min: s.min, max: s.max, lastDecision: a.lastDecision, reason: a.lastReason,
                               nextChangeInS: max(0, a.nextChangeAllowed(s) - now).rounded(toPlaces: 1))
    }

    /// systemd's one-line STATUS: how many nodes consume, and what the others wait for.
    func statusLine() -> String {
        let consuming = slots.values.filter { $0.id < wanted && isSettled($0) }.count
        let rate = slots.values.reduce(0.0) { $0 + ($1.process?.rate ?? 0) }
        let word = mode == .running ? "" : "\(mode.status.rawValue): "
        let rest = consuming < wanted ? " (\(missing()))" : ""
        return "\(word)\(consuming)/\(wanted) nodes consuming\(rest), \(Int(saturating: rate.rounded())) msg/s, \(totalRestarts) restarts"
    }
}

/// Readiness: when READY goes out, and what keeps the swarm from consuming.
extension Swarm {
    // MARK: Readiness and status

    /// True when a slot's node consumes: it runs (or is drained on purpose)
    /// and its group assignment is settled. A node that says nothing of
    /// Kafka (a custom `node_command`) is settled once it reports running.
    func isSettled(_ slot: Slot) -> Bool {
        switch slot.state.phase {
        case .drained: return true
        case .running: return slot.process?.lastReport?.kafka.map(\.isSettled) ?? true
        default: return false
        }
    }

    /// READY=1 once every wanted node consumes — joined, assigned (nodes
    /// beyond the partition count `waiting`) — or once `ready_timeout`
    /// passed, with STATUS saying what is missing: a broker outage at boot
    /// must not make systemd kill a swarm that will consume once it is back.
    mutating func checkReady() {
        guard !readySent, mode == .running else { return }
        if consuming {
            readySent = true
            log(.ready(nodes: wanted))
            effects.append(.notify(.ready))
        } else if isDue(.ready) {
            readySent = true
            log(.readyByTimeout(readyTimeout: settings.readyTimeout, missing: missing()))
            effects.append(.notify(.ready))
        }
    }

    /// True while every wanted node consumes (what READY means, now): `/readyz`.
    var consuming: Bool {
        let wantedSlots = slots.values.filter { $0.id < wanted }
        return wantedSlots.count == wanted && wantedSlots.allSatisfy(isSettled)
    }

    /// What keeps the swarm from consuming, in a few words ("2 joining, 1 disconnected").
    func missing() -> String {
        var counts: [String: Int] = [:]
        for slot in slots.values where slot.id < wanted && !isSettled(slot) {
            let word = slot.process?.lastReport?.kafka?.rawValue ?? slot.state.phase.rawValue
            counts[word, default: 0] += 1
        }
        return counts.isEmpty ? "nothing" : counts.keys.sorted().map { "\(counts[$0]!) \($0)" }.joined(separator: ", ")
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}
