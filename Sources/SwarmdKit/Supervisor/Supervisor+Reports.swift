#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared

/// Liveness reports: how they are read, and what the supervisor does with them.
///
/// Every node reports every `report_interval`. Reading each report the moment
/// it arrives would wake swarmd once per node per interval, so an idle swarm
/// of 12 would cost 12 wake-ups a second for no news. Instead the pipe of a
/// node in a steady state (`running`, or `drained` as asked) stays in the
/// epoll set without `EPOLLIN`, so it wakes the loop only when it hangs up,
/// and one *sweep* per `report_interval` reads every such pipe at once: an
/// idle swarm costs one wake-up per interval, however many nodes it has.
///
/// A node whose next report the supervisor is waiting on (`starting`,
/// `draining`, resumed, or pausing for a graceful stop) is read the moment it
/// writes, so readiness, drains and stops are as quick as before. Anything
/// that shows reports (status, SIGUSR1) or judges them (the hang deadline)
/// sweeps first, so it never acts on a stale one.
extension Supervisor {
    /// True while the supervisor waits on this node's next report to move on.
    func awaitsReport(_ slot: NodeSlot) -> Bool {
        switch slot.state {
        case .starting, .draining: return true
        case .drained: return !slot.drainRequested  // resumed: waiting for it to say it runs
        case .running: return mode == .pausing  // told to pause: waiting for it to say drained
        case .stopping, .backoff: return false
        }
    }

    /// Watches the report pipes of nodes the supervisor waits on, leaves the
    /// rest to the sweep, and schedules the sweep while any node needs one.
    func updateReportWatches(now: Double) {
        var anySwept = false
        for slot in slots.values {
            guard let p = slot.process, p.reportFd >= 0 else { continue }
            let prompt = awaitsReport(slot)
            if prompt != p.reportsWatched {
                loop.modify(p.reportFd, .report(spawn: p.spawnId), events: prompt ? SWARM_EPOLLIN : 0)
                p.reportsWatched = prompt
            }
            if !prompt { anySwept = true }
        }
        if !anySwept {
            nextSweep = nil
        } else if nextSweep == nil {
            nextSweep = now + config.supervisor.reportInterval
        }
    }

    /// Before a node is called hung: reads what it may have written since the
    /// last sweep. True if a report came in, and the node is not hung.
    func readsFreshReport(_ slot: NodeSlot, process p: NodeProcess, now: Double) -> Bool {
        readReports(spawnId: p.spawnId)
        return slot.process !== p || slot.state == .stopping || p.lastReportAt > now
    }

    /// Reads every node's pending reports.
    func sweepReports() {
        for spawnId in bySpawn.keys.sorted() { readReports(spawnId: spawnId) }
        nextSweep = nil
    }

    /// Reads whatever the node wrote since the last read and acts on the newest report.
    func readReports(spawnId: Int) {
        guard let slot = bySpawn[spawnId], let p = slot.process, p.reportFd >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 8192)
        var lines: [LineBuffer.Item] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(p.reportFd, $0.baseAddress, $0.count) }
            if n > 0 {
                lines += buffer.withUnsafeBytes { p.reportLines.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                if lines.count > 1000 { break }  // a flooding node waits for the next turn
                continue
            }
            if n == 0 {
                // The node closed its report pipe; its pidfd will tell when it exits.
                loop.remove(p.reportFd)
                close(p.reportFd)
                p.reportFd = -1
            } else if errno == EINTR {
                continue
            }
            break
        }
        var latest: NodeReport?
        for item in lines {
            switch item {
            case .overflow:
                malformed(slot, "line longer than \(NodeReport.maxLineLength) bytes")
            case .line(let bytes):
                if bytes.isEmpty { continue }
                do { latest = try NodeReport.parse(bytes) } catch let e as SwarmError { malformed(slot, e.message) } catch {}
            }
        }
        if let report = latest { accept(report, from: slot, process: p) }
    }

    private func malformed(_ slot: NodeSlot, _ why: String) {
        malformedReports += 1
        // A node that writes garbage in a loop must not flood the log.
        if malformedReports <= 20 || malformedReports % 1000 == 0 {
            logger.warning("malformed report ignored: \(why)", metadata: meta(slot).merging(["count": "\(malformedReports)"]) { $1 })
        }
    }

    private func accept(_ report: NodeReport, from slot: NodeSlot, process p: NodeProcess) {
        let now = monotonicNow()
        if let prev = p.lastRateSample, now > prev.time {
            let instant = Double(max(0, report.handled - prev.handled)) / (now - prev.time)
            p.rate = p.rate == 0 ? instant : 0.5 * p.rate + 0.5 * instant
        }
        p.lastRateSample = (now, report.handled)
        p.lastReport = report
        p.lastReportAt = now
        // Read from /proc only when a limit needs it; status reads it fresh when asked.
        if config.supervisor.memoryLimit > 0 { p.rss = residentBytes(pid: p.pid) }

        guard slot.state != .stopping else { return }
        if report.health == .unhealthy {
            logger.error("node reports itself unhealthy: \(UnhealthyReason.describe(report.reason))\(report.detail.isEmpty ? "" : " (\(report.detail))")", metadata: meta(slot))
            stop(slot, reason: .unhealthy(report.reason), signal: SIGTERM, grace: config.supervisor.killTimeout)
            return
        }
        if p.healthySince == nil { p.healthySince = now }
        switch (slot.state, report.state) {
        case (.starting, .drained), (.running, .drained), (.draining, .drained):
            transition(slot, to: .drained, slot.state == .starting ? "first report: drained" : "reports drained")
        case (.starting, _):
            transition(slot, to: .running, "first healthy report")
        case (.drained, .running) where !slot.drainRequested:
            transition(slot, to: .running, "resumed")
        default:
            break
        }
        let limit = config.supervisor.memoryLimit
        if limit > 0, let rss = p.rss, rss > limit, !rollQueue.contains(where: { $0.slot == slot.id }), rollCurrent != slot.id {
            logger.warning("node over memory limit: rss \(rss) > \(limit) bytes; restarting it gracefully", metadata: meta(slot))
            rollQueue.append((slot.id, .overMemory(rss)))
        }
    }
}
