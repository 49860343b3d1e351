#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared
import SwarmKafka

/// Signals from the signalfd: each becomes a command for the core, or the
/// USR1 status report.
extension Supervisor {
    // MARK: Signals

    func readSignals() {
        while true {
            var sender: Int32 = 0
            let sig = swarm_signalfd_read(signalFd, &sender)
            guard sig > 0 else { return }
            handleSignal(Int32(sig), from: sender)
        }
    }

    /// Signals are commands too, through the same core as the socket.
    private func handleSignal(_ sig: Int32, from sender: Int32) {
        let meta: Logger.Metadata = ["signal": "\(signalName(sig))", "from_pid": "\(sender)"]
        let origin = CommandOrigin.signal(signalName(sig))
        switch sig {
        case SIGCHLD:
            // Nodes are reaped through their pidfds; this is for the others. A node's
            // own exit sends CHLD too, so what it left behind is found here.
            reapStrangers()
            return
        case SIGTERM, SIGINT:
            if !swarm.mode.isStopping { logger.notice("graceful stop requested", metadata: meta) }
            feed(.command(.stop(now: false), from: origin))
        case SIGQUIT:
            logger.notice("immediate stop requested", metadata: meta)
            feed(.command(.stop(now: true), from: origin))
        case SIGTTIN:
            logger.notice("one more node requested", metadata: meta)
            feed(.command(.scale(.relative(1)), from: origin))
        case SIGTTOU:
            logger.notice("one node fewer requested", metadata: meta)
            feed(.command(.scale(.relative(-1)), from: origin))
        case SIGUSR1:
            logStatusReport()
        case SIGUSR2:
            logger.notice("upgrade requested", metadata: meta)
            _ = prepareUpgrade(binary: executable, origin: "USR2")
        case SIGHUP:
            logger.notice("reload requested", metadata: meta)
            if case .success(let config) = readConfiguration() { feed(.command(.reload(config), from: origin)) }
        default:
            logger.warning("signal ignored: swarmd does nothing on it", metadata: meta)
        }
    }

    /// SIGUSR1: the whole status in the log, one line per node.
    private func logStatusReport() {
        sweepReports()
        let s = swarm.status(now: monotonicNow())
        let memory = ProcessTree.memory(of: s.nodes.compactMap(\.pid))  // USR1 is rare: the full pass, PSS included
        logger.notice("status: \(swarm.statusLine())", metadata: ["state": "\(s.state.rawValue)", "wanted": "\(s.wanted)", "handled": "\(s.handled)", "malformed_reports": "\(s.malformedReports)"])
        for n in s.nodes {
            logger.notice("status: node", metadata: [
                "slot": "\(n.slot)", "pid": "\(n.pid.map(String.init) ?? "-")", "state": "\(n.state.rawValue)",
                "uptime_s": "\(n.uptimeS)", "restarts": "\(n.restarts)", "last_exit": "\(n.lastExit ?? "-")",
                "rss": "\(n.pid.flatMap { memory[$0]?.rss }.map(String.init) ?? "-")",
                "pss": "\(n.pid.flatMap { memory[$0]?.pss }.map(String.init) ?? "-")", "handled": "\(n.handled)", "failed": "\(n.failed)",
                "partitions": "\(n.partitions)", "lag": "\(n.lag.map(String.init) ?? "-")",
            ])
        }
    }
}
