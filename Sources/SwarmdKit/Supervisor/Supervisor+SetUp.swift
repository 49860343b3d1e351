#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared
import SwarmKafka

/// Everything swarmd sets up before its first turn: the file limit, the
/// subreaper, the signalfd, the control socket (or the one handed over, with
/// the nodes an upgrade handed over), the HTTP listener, per-node cgroups,
/// the embedded broker, the lag reader and the cluster record.
extension Supervisor {
    func setUp() throws {
        raiseFileLimit()
        // A node that dies (even by SIGKILL) must not leave its handler behind,
        // and swarmd as a container's PID 1 must not collect zombies: orphans of
        // the nodes come to swarmd (`reapStrangers`), not to init.
        if swarm_set_child_subreaper() != 0 { logger.warning("cannot become a child subreaper: \(errnoText())") }
        signalFd = Self.handledSignals.withUnsafeBufferPointer { swarm_signalfd($0.baseAddress, Int32($0.count)) }
        guard signalFd >= 0 else { throw SwarmError(.signalfd, "signalfd: \(errnoText())") }
        try loop.add(signalFd, .signal)
        let config = swarm.config
        let server: ControlServer
        if let h = handover {
            server = ControlServer(adopting: h.listenFd, path: socketPath,
                                   groups: (try? ControlServer.Groups(full: config.supervisor.socketGroup, read: config.supervisor.socketReadGroup))
                                       ?? ControlServer.Groups(),
                                   idleTimeout: config.supervisor.controlTimeout, logger: logger)
            for n in h.nodes {
                let fds = NodeFds(pid: n.pid, pidfd: n.pidfd, reportFd: n.reportFd, controlFd: n.controlFd)
                fds.watched = n.watched
                for fd in [n.pidfd, n.reportFd, n.controlFd] where fd >= 0 { _ = swarm_set_cloexec(fd) }
                nodes[n.spawn] = fds
                // A node that died during the upgrade: its pidfd is readable at once, and it is reaped as usual.
                try loop.add(n.pidfd, .pidfd(spawn: n.spawn))
                if n.reportFd >= 0 { try loop.add(n.reportFd, .report(spawn: n.spawn), events: n.watched ? SWARM_EPOLLIN : 0) }
            }
        } else {
            server = try ControlServer(path: socketPath, mode: config.supervisor.socketMode,
                                       groups: ControlServer.Groups(full: config.supervisor.socketGroup, read: config.supervisor.socketReadGroup),
                                       idleTimeout: config.supervisor.controlTimeout, logger: logger)
        }
        try loop.add(server.listenFd, .listener)
        control = server
        if !config.http.listen.isEmpty {
            let h: HTTPServer
            if let fd = handover?.httpFd {
                h = HTTPServer(adopting: fd, address: config.http.listen, logger: logger)
            } else {
                h = try HTTPServer(listen: config.http.listen, logger: logger)
            }
            try loop.add(h.listenFd, .httpListener)
            http = h
            logger.info("http: serving /metrics, /healthz, /readyz and the swarm's page", metadata: ["listen": "\(config.http.listen)"])
        }
        let (cg, why) = NodeCgroups.make(procSelfCgroup: try? readTextFile("/proc/self/cgroup"))
        cgroups = cg
        if cg == nil && (config.supervisor.memoryHigh > 0 || config.supervisor.memoryMax > 0) {
            logger.warning("memory_high and memory_max are not applied: they need a delegated cgroup v2 subtree, and \(why)")
        } else {
            logger.info("per-node cgroups: \(cg == nil ? "none, memory is read from /proc: " : "")\(why)")
        }
        if config.usesEmbeddedBroker && config.supervisor.nodeCommand.isEmpty {
            let b = try EmbeddedBroker(config: config, logger: logger)
            broker = b
            spawner = Spawner(config: reachable(config), environment: environment)
        }
        if config.supervisor.nodeCommand.isEmpty && !config.kafka.topics.isEmpty {
            groupLag = GroupLag(config: reachable(config), logger: logger)
        }
        if !config.cluster.statusTopic.isEmpty {
            let link = try ClusterLink(config: config, properties: reachable(config).kafka.properties, prefix: spawner.instancePrefix, logger: logger)
            if handover == nil { try link.checkUnique(timeoutMs: 5000) }
            cluster = link
            logger.info("cluster: publishing to and following the status topic", metadata: [
                "topic": "\(config.cluster.statusTopic)", "prefix": "\(spawner.instancePrefix)", "every_s": "\(config.cluster.publishInterval)"])
        }
    }

    /// Each node costs swarmd three fds (pidfd, report pipe, control pipe), so
    /// the usual soft limit of 1024 would stop a swarm at about 300 nodes:
    /// raise it to the hard limit, as servers such as nginx do.
    private func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let wanted = min(limit.rlim_max, 1 << 20)
        let previous = limit.rlim_cur
        limit.rlim_cur = wanted
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.debug("open file limit raised", metadata: ["from": "\(previous)", "to": "\(wanted)"])
        }
    }
}
