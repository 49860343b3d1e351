#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared
import SwarmKafka

/// The shell's side of each node: spawning it (posix_spawn, pidfd and report
/// pipe into the loop), reaping it, and reading its reports (see
/// `Supervisor` for when a pipe is read at once and when in the sweep).
extension Supervisor {
    func spawn(_ slot: Int) -> SwarmEvent {
        let s: Spawner.Spawned
        do {
            s = try spawner.spawn(slot: slot)
        } catch {
            return .spawnFailed(slot: slot, error: "\(error)")
        }
        let spawnId = nextSpawnId
        nextSpawnId += 1
        do {
            try loop.add(s.pidfd, .pidfd(spawn: spawnId))
            try loop.add(s.reportFd, .report(spawn: spawnId))
        } catch {
            // A node the loop cannot watch must not run: kill and reap it now.
            loop.remove(s.pidfd)
            _ = swarm_pidfd_send_signal(s.pidfd, SIGKILL)
            var code: Int32 = 0, status: Int32 = 0
            var pfd = pollfd(fd: s.pidfd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 1000)
            _ = swarm_pidfd_reap(s.pidfd, &code, &status)
            for fd in [s.pidfd, s.reportFd, s.controlFd] { close(fd) }
            return .spawnFailed(slot: slot, error: "\(error)")
        }
        nodes[spawnId] = NodeFds(pid: s.pid, pidfd: s.pidfd, reportFd: s.reportFd, controlFd: s.controlFd)
        let settings = swarm.config.supervisor
        if let cgroups, let problem = cgroups.adopt(pid: s.pid, slot: slot, high: settings.memoryHigh, max: settings.memoryMax) {
            logger.warning("\(problem); its memory is read from /proc", metadata: ["slot": "\(slot)"])
        }
        return .spawned(slot: slot, spawn: spawnId, pid: s.pid)
    }

    func reap(_ spawn: Int) {
        guard let fds = nodes[spawn] else { return }
        var code: Int32 = 0, status: Int32 = 0
        let rc = swarm_pidfd_reap(fds.pidfd, &code, &status)
        guard rc == 1 else {
            if rc < 0 { logger.error("waitid failed: \(errnoText())", metadata: ["spawn": "\(spawn)"]) }
            return
        }
        readReports(spawn)  // its last words count (handled totals)
        loop.remove(fds.pidfd)
        close(fds.pidfd)
        if fds.reportFd >= 0 { loop.remove(fds.reportFd); close(fds.reportFd) }
        if fds.controlFd >= 0 { close(fds.controlFd) }
        nodes[spawn] = nil
        var cause: ExitCause
        switch code {
        case 1: cause = .exited(status)
        case 2, 3: cause = .signaled(signalName(status), coreDumped: code == 3)
        default: cause = .other(code: code, status: status)
        }
        if let cgroups, let slot = swarm.slot(ofSpawn: spawn)?.id, cgroups.wasOOMKilled(slot: slot) { cause = .oomKilled }
        feed(.exited(spawn: spawn, cause: cause))
    }

    /// swarmd's children that are not nodes, on every SIGCHLD (a node's own
    /// exit sends one): the dead are reaped; the living are judged by
    /// `Orphans.verdict` (a dead node's are killed, a running node's are
    /// left). A node is never touched here: it is reaped through its pidfd.
    func reapStrangers() {
        let me = getpid()
        let nodePids = Set(nodes.values.map(\.pid))
        let children = ProcessTree.children(of: me) ?? ProcessTree.table().filter { $0.value.ppid == me }.map(\.key)
        for pid in children where !nodePids.contains(pid) {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { continue }  // a zombie, reaped
            let pgid = getpgid(pid)
            let group: Int32? = pgid > 0 ? pgid : nil
            let leaderParent = group.flatMap { $0 == pid ? me : ProcessTree.parent(of: $0) }
            guard case .kill(let wholeGroup) = Orphans.verdict(pid: pid, group: group, groupLeaderParent: leaderParent, nodes: nodePids)
            else { continue }
            logger.warning("killing a process left behind by a node that is gone\(wholeGroup ? ", with its process group" : "")",
                           metadata: ["pid": "\(pid)", "name": "\(ProcessTree.name(of: pid))"])
            kill(wholeGroup ? -pid : pid, SIGKILL)
        }
    }

    // MARK: Reports

    /// Watches the report pipes of nodes the core waits on, leaves the rest
    /// to the sweep, and schedules the sweep while any node needs one.
    func updateReportWatches(now: Double) {
        var anySwept = false
        for slot in swarm.slots.values {
            guard let p = slot.process, let fds = nodes[p.spawn], fds.reportFd >= 0 else { continue }
            let prompt = swarm.awaitsReport(slot)
            if prompt != fds.watched {
                loop.modify(fds.reportFd, .report(spawn: p.spawn), events: prompt ? SWARM_EPOLLIN : 0)
                fds.watched = prompt
            }
            if !prompt { anySwept = true }
        }
        if !anySwept {
            nextSweep = nil
        } else if nextSweep == nil {
            nextSweep = now + swarm.config.supervisor.reportInterval
        }
    }

    /// Reads every node's pending reports and, when a limit needs it, what
    /// each node's process tree uses (one pass over /proc for all nodes).
    func sweepReports() {
        for spawn in nodes.keys.sorted() { readReports(spawn) }
        nextSweep = nil
        guard swarm.config.supervisor.memoryLimit > 0 else { return }
        let memory = ProcessTree.memory(of: nodes.values.map(\.pid))
        for (spawn, fds) in nodes.sorted(by: { $0.key < $1.key }) {
            guard var m = memory[fds.pid] else { continue }
            if let cgroups, let slot = swarm.slot(ofSpawn: spawn)?.id { m.cgroupBytes = cgroups.current(slot: slot) }
            feed(.memory(spawn: spawn, m))
        }
    }

    /// Reads whatever the node wrote since the last read; the newest report goes to the core.
    func readReports(_ spawn: Int) {
        guard let fds = nodes[spawn], fds.reportFd >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 8192)
        var lines: [LineBuffer.Item] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds.reportFd, $0.baseAddress, $0.count) }
            if n > 0 {
                lines += buffer.withUnsafeBytes { fds.reportLines.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                if lines.count > 1000 { break }  // a flooding node waits for the next turn
                continue
            }
            if n == 0 {
                // The node closed its report pipe; its pidfd will tell when it exits.
                loop.remove(fds.reportFd)
                close(fds.reportFd)
                fds.reportFd = -1
            } else if errno == EINTR {
                continue
            }
            break
        }
        var latest: NodeReport?
        for item in lines {
            switch item {
            case .overflow:
                feed(.malformedReport(spawn: spawn, why: "line longer than \(NodeReport.maxLineLength) bytes"))
            case .line(let bytes):
                if bytes.isEmpty { continue }
                do { latest = try NodeReport.parse(bytes) } catch { feed(.malformedReport(spawn: spawn, why: (error as? SwarmError)?.message ?? "\(error)")) }
            }
        }
        if let report = latest { feed(.report(spawn: spawn, report)) }
    }
}
