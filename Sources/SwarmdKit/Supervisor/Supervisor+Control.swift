#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared
import SwarmKafka

/// The status service: control requests answered by the core (refusals by
/// `ControlPolicy`), the status enriched with what only the shell reads,
/// `/metrics` and the HTTP routes.
extension Supervisor {
    /// A status from the core with what only the shell reads: swarmd's
    /// version and each node's memory. With a memory limit the core has every
    /// tree from the sweep (PSS included); without one, a status reads RSS
    /// quickly, not kept up to date for nobody.
    func enriched(_ input: SwarmStatus) -> SwarmStatus {
        var status = input
        status.version = version
        status.client = "librdkafka/\(Librdkafka.version)"
        status.config = configPath
        status.cluster = cluster?.view()
        status.unownedLag = groupLag?.unowned(by: status.nodes)
        let missing = status.nodes.filter { $0.processes == nil }.compactMap(\.pid)
        let now = monotonicNow()
        if now - statusMemory.at >= swarm.config.supervisor.reportInterval || missing.contains(where: { statusMemory.byPid[$0] == nil }) {
            statusMemory = (now, missing.isEmpty ? [:] : ProcessTree.quickMemory(of: missing))
        }
        let memory = statusMemory.byPid
        for i in status.nodes.indices where status.nodes[i].processes == nil {
            guard let m = status.nodes[i].pid.flatMap({ memory[$0] }) else { continue }
            status.nodes[i].rssBytes = m.rss
            status.nodes[i].processes = m.processes.map { ProcessMemoryStatus(pid: $0.pid, name: $0.name, rssBytes: $0.rss, pssBytes: nil) }
        }
        return status
    }

    /// The status as of now: pending reports read first, memory added.
    func freshStatus() -> SwarmStatus {
        sweepReports()
        return enriched(swarm.status(now: monotonicNow()))
    }

    /// The Prometheus exposition, for `/metrics` and `swarmctl metrics`.
    private func metricsText() -> String {
        Metrics.exposition(swarm: swarm, status: freshStatus(), publishing: cluster.map { ($0.published, $0.dropped) })
    }

    /// The HTTP routes. Read-only: nothing here changes the swarm.
    func route(_ request: HTTPServer.Request) -> HTTPServer.Response {
        switch request.path {
        case "/healthz":
            // Answered by the loop itself, so an answer is the proof that it turns.
            let age = Int(saturating: (monotonicNow() - lastTurnAt) * 1000)
            return .text(200, "ok: swarmd pid \(getpid()) answers; its loop turned \(age) ms ago\n")
        case "/readyz":
            sweepReports()
            let status = swarm.status(now: monotonicNow())
            var body = swarm.consuming ? "ready: all \(status.wanted) nodes consume\n" : "not ready: \(swarm.missing())\n"
            for n in status.nodes {
                body += "slot \(n.slot): \(n.state.rawValue), \(n.health.rawValue)\(n.kafka.map { ", \($0)" } ?? "")\(n.reason.map { " (\($0))" } ?? "")\n"
            }
            return .text(swarm.consuming ? 200 : 503, body)
        case "/metrics":
            return HTTPServer.Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(metricsText().utf8))
        case "/status.json":
            return HTTPServer.Response(status: 200, contentType: "application/json", body: StatusJSON.document(freshStatus()))
        case "/history.json":
            return HTTPServer.Response(status: 200, contentType: "application/json", body: Array(history.json().utf8))
        case "/", "/index.html":
            return HTTPServer.Response(status: 200, contentType: "text/html; charset=utf-8",
                                       body: Array(WebPage.html(freshStatus(), title: swarm.config.kafka.groupId).utf8))
        default:
            return .text(404, "no such page; try /, /metrics, /healthz, /readyz, /status.json\n")
        }
    }

    // MARK: Commands

    /// A control request: checked and mapped to a command, answered by the core.
    func answer(_ request: ControlRequest, from peer: ControlServer.Peer) -> ControlResponse {
        let origin = CommandOrigin.control(uid: peer.uid, pid: peer.pid, comm: peer.comm)
        if let refusal = ControlPolicy.refusal(of: request.cmd, access: peer.access, uid: peer.uid) {
            logger.warning("control: \(request.cmd.prefix(64)) refused: the peer may only look (socket_read_group)",
                           metadata: ["peer_uid": "\(peer.uid)", "peer_pid": "\(peer.pid)", "peer_comm": "\(peer.comm)"])
            return ControlResponse(ok: false, error: refusal)
        }
        let command: SwarmCommand
        switch ControlMapping.command(for: request) {
        case .failure(let failure):
            return ControlResponse(ok: false, error: failure)
        case .success(.upgrade(let binary)):
            return prepareUpgrade(binary: binary ?? executable, origin: "swarmctl upgrade by uid \(peer.uid)")
        case .success(.metrics):
            return ControlResponse(ok: true, message: metricsText())
        case .success(.reloadFile):
            switch readConfiguration() {
            case .failure(let e): return .failure(.badConfig, e.message)
            case .success(let config): command = .reload(config)
            }
        case .success(.command(let c)):
            command = c
        }
        if command == .status { sweepReports() }
        var response = ControlResponse.failure(.busy, "swarmd did not answer this request")
        replyTo = { response = $0 }
        feed(.command(command, from: origin))
        replyTo = nil
        return response
    }

    /// Re-reads the configuration file for a reload. A valid one becomes the
    /// command; an invalid one changes nothing.
    func readConfiguration() -> Result<SwarmConfig, SwarmError> {
        var next = swarm.config
        if let path = configPath {
            do {
                let loaded = try ConfigLoader(path: path).read()
                next = Self.apply(overrides, to: loaded.config)
                // The same checks as at start: a property librdkafka refuses must not reach the nodes.
                try SwarmdValidation.validate(next, setKeys: loaded.setKeys, environment: environment)
            } catch {
                let e = (error as? SwarmError) ?? SwarmError(.config, "\(error)")
                logger.error("reload refused, keeping the running configuration: \(e.message)")
                return .failure(e)
            }
        }
        if let refusal = ControlPolicy.reloadRefusal(running: swarm.config, next: next) {
            logger.error("reload refused: \(refusal.message)")
            return .failure(refusal)
        }
        if let deferred = ControlPolicy.reloadDeferred(running: swarm.config, next: next) { logger.warning("\(deferred)") }
        return .success(next)
    }
}
