#if canImport(Glibc)
import Glibc
#endif
import Logging
import Shared

/// What an operator can ask for, by signal or over the control socket. Both
/// paths end in the same methods, so `kill -TTIN` and `swarmctl scale +1` do
/// exactly the same thing.
extension Supervisor {
    func handle(_ request: ControlRequest, from peer: ControlServer.Peer) -> ControlResponse {
        guard request.v == ControlProtocol.version else {
            return .failure("bad-request", "protocol version \(request.v) is not supported; this swarmd speaks v=\(ControlProtocol.version)")
        }
        guard let command = ControlCommand(rawValue: request.cmd) else {
            return .failure("unknown-command", "unknown command \"\(request.cmd.prefix(64))\"; known: \(ControlCommand.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if command != .status {
            logger.notice("control: \(command.rawValue)", metadata: ["peer_uid": "\(peer.uid)", "peer_pid": "\(peer.pid)"])
        }
        if mode.isStopping && command != .status {
            return .failure("shutting-down", "swarmd is stopping; it takes no more commands")
        }
        switch command {
        case .status:
            sweepReports()
            return ControlResponse(ok: true, status: status())
        case .scale:
            let target: Int
            switch (request.nodes, request.delta) {
            case (let n?, nil): target = n
            case (nil, let d?): target = wanted + d
            default: return .failure("bad-argument", "scale needs either \"nodes\" (absolute) or \"delta\" (relative)")
            }
            return scaleRequest(to: target, reason: "swarmctl scale by uid \(peer.uid)")
        case .drain, .resume, .restart:
            let targets = request.slots ?? slots.keys.sorted()
            if let bad = targets.first(where: { slots[$0] == nil }) {
                return .failure("bad-argument", "there is no node in slot \(bad) (slots 0…\(wanted - 1))")
            }
            switch command {
            case .drain: return drain(targets)
            case .resume: return resume(targets)
            default: return restart(targets)
            }
        case .reload:
            return reload()
        case .stop:
            if request.now == true { beginQuit() } else { beginStop() }
            return ControlResponse(ok: true, message: request.now == true ? "stopping now" : "stopping gracefully")
        }
    }

    func scaleRequest(to n: Int, reason: String) -> ControlResponse {
        guard n >= 1 && n <= SupervisorSettings.maxNodes else {
            return .failure("bad-argument", "the swarm size must be between 1 and \(SupervisorSettings.maxNodes), not \(n) (to stop the swarm, use swarmctl stop)")
        }
        guard !mode.isStopping else { return .failure("shutting-down", "swarmd is stopping") }
        scale(to: n, reason: reason)
        return ControlResponse(ok: true, message: "scaling to \(n) nodes")
    }

    func drain(_ targets: [Int]) -> ControlResponse {
        for id in targets {
            guard let slot = slots[id] else { continue }
            slot.drainRequested = true
            if slot.state == .running || slot.state == .starting {
                transition(slot, to: .draining, "drain requested")
            }
            send("drain", to: slot)
        }
        return ControlResponse(ok: true, message: "draining \(targets.count) node(s)")
    }

    func resume(_ targets: [Int]) -> ControlResponse {
        for id in targets {
            guard let slot = slots[id] else { continue }
            slot.drainRequested = false
            if slot.state == .draining { transition(slot, to: .running, "resume requested") }
            send("resume", to: slot)
        }
        return ControlResponse(ok: true, message: "resuming \(targets.count) node(s)")
    }

    func restart(_ targets: [Int]) -> ControlResponse {
        for id in targets where !rollQueue.contains(where: { $0.slot == id }) {
            rollQueue.append((id, .restart))
        }
        return ControlResponse(ok: true, message: "restarting \(targets.count) node(s), one at a time")
    }

    /// Re-reads the configuration file. A valid one is applied and every node
    /// is replaced, one at a time; an invalid one changes nothing.
    func reload() -> ControlResponse {
        var next = config
        if let path = configPath {
            do {
                next = Self.apply(overrides, to: try ConfigLoader(path: path).load())
                // The same checks as at start: a property librdkafka refuses
                // must not reach the nodes and crash-loop them.
                try SwarmdValidation.validate(next, environment: environment)
            } catch {
                logger.error("reload refused, keeping the running configuration: \(error)")
                return .failure("bad-config", "\(error)")
            }
        }
        if next.usesEmbeddedBroker, let broker {
            next.kafka.properties["bootstrap.servers"] = broker.bootstrapServers
        } else if next.usesEmbeddedBroker != config.usesEmbeddedBroker || (broker != nil && next.usesEmbeddedBroker == false) {
            logger.error("reload refused: switching the embedded broker on or off needs a restart of swarmd")
            return .failure("bad-config", "switching the embedded broker on or off needs a restart of swarmd")
        }
        notifier.reloading()
        mode = .reloading
        config = next
        spawner = Spawner(config: next, environment: environment)
        scale(to: next.supervisor.nodes, reason: "reload")
        for id in slots.keys.sorted() where !rollQueue.contains(where: { $0.slot == id }) {
            rollQueue.append((id, .restart))
        }
        logger.notice("configuration reloaded; replacing nodes one at a time", metadata: ["nodes": "\(wanted)"])
        return ControlResponse(ok: true, message: "reloading: replacing \(slots.count) node(s) one at a time")
    }

    // MARK: Status

    func status() -> SwarmStatus {
        let now = monotonicNow()
        let nodes = slots.values.sorted { $0.id < $1.id }.map { slot -> NodeStatus in
            let p = slot.process
            var state = slot.state.name
            if slot.state == .backoff && slot.quickFailures >= config.supervisor.crashLoopAfter { state = "crash-looping" }
            return NodeStatus(
                slot: slot.id, pid: p?.pid, state: state,
                uptimeS: p.map { (now - $0.startedAt).rounded(toPlaces: 1) } ?? 0,
                restarts: slot.restarts, lastExit: slot.lastExit, rssBytes: p.flatMap { residentBytes(pid: $0.pid) },
                handled: slot.handled, failed: slot.failed, rate: (p?.rate ?? 0).rounded(toPlaces: 1),
                partitions: p?.lastReport?.partitions ?? 0,
                lag: p?.lastReport.flatMap { $0.lag >= 0 ? $0.lag : nil },
                partitionLag: p?.lastReport.flatMap { $0.partitionLag.isEmpty ? nil : PartitionLag.list($0.partitionLag) },
                reportAgeMs: p?.lastReport == nil ? nil : Int64((now - p!.lastReportAt) * 1000),
                health: p?.lastReport?.health.rawValue ?? (p == nil ? "down" : "unknown"))
        }
        return SwarmStatus(
            pid: getpid(), state: mode.name, wanted: wanted,
            running: nodes.filter { $0.state == "running" || $0.state == "drained" || $0.state == "draining" }.count,
            healthy: nodes.filter { $0.health == "ok" }.count,
            uptimeS: (now - startedAt).rounded(toPlaces: 1), restarts: totalRestarts,
            handled: nodes.reduce(0) { $0 + $1.handled }, failed: nodes.reduce(0) { $0 + $1.failed },
            rate: nodes.reduce(0.0) { $0 + $1.rate }.rounded(toPlaces: 1),
            malformedReports: malformedReports, nodes: nodes)
    }

    /// SIGUSR1: the whole status in the log, one line per node.
    func logStatusReport() {
        sweepReports()
        let s = status()
        logger.notice("status: \(statusLine())", metadata: ["state": "\(s.state)", "wanted": "\(s.wanted)", "handled": "\(s.handled)", "malformed_reports": "\(s.malformedReports)"])
        for n in s.nodes {
            logger.notice("status: node", metadata: [
                "slot": "\(n.slot)", "pid": "\(n.pid.map(String.init) ?? "-")", "state": "\(n.state)",
                "uptime_s": "\(n.uptimeS)", "restarts": "\(n.restarts)", "last_exit": "\(n.lastExit ?? "-")",
                "rss": "\(n.rssBytes.map(String.init) ?? "-")", "handled": "\(n.handled)", "failed": "\(n.failed)",
                "partitions": "\(n.partitions)", "lag": "\(n.lag.map(String.init) ?? "-")",
            ])
        }
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}
