#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared
import SwarmKafka

/// The in-place upgrade: checked, then carried out at the end of a turn by
/// exec of the new binary with the state handed over (`Handover`).
extension Supervisor {
    // MARK: Upgrades

    /// Checks an upgrade and schedules it for the end of this turn (after the
    /// requester's reply went out), or refuses it while everything runs on.
    func prepareUpgrade(binary: String, origin: String) -> ControlResponse {
        let refuse = { (failure: ControlFailure) -> ControlResponse in
            self.logger.error("upgrade refused: \(failure.message); swarmd keeps running", metadata: ["asked_by": "\(origin)"])
            return ControlResponse(ok: false, error: failure)
        }
        if let refusal = ControlPolicy.upgradeRefusal(stopping: swarm.mode.isStopping, upgradePending: pendingUpgrade != nil,
                                                      embeddedBroker: broker != nil) {
            return refuse(refusal)
        }
        if let problem = Handover.check(binary, configPath: configPath) { return refuse(ControlFailure(.badArgument, problem)) }
        pendingUpgrade = binary
        logger.notice("upgrade checked: re-executing in place", metadata: ["binary": "\(binary)", "asked_by": "\(origin)", "from": "\(version)"])
        return ControlResponse(ok: true, message: "upgrading swarmd (pid \(getpid()), \(version)) to \(binary)")
    }

    /// Re-executes swarmd in place: same pid, same children, every fd the
    /// nodes are watched through kept open across exec. Returns only if the
    /// exec failed, with everything as it was.
    func upgrade(to binary: String) {
        pendingUpgrade = nil
        notifier.reloading()
        guard let control else { return }
        let listen = control.handOver()
        var kept = [listen]
        let httpFd = http?.handOver()
        if let httpFd { kept.append(httpFd) }
        var handed: [Handover.Node] = []
        for (spawn, fds) in nodes.sorted(by: { $0.key < $1.key }) {
            handed.append(Handover.Node(spawn: spawn, pid: fds.pid, pidfd: fds.pidfd, reportFd: fds.reportFd, controlFd: fds.controlFd, watched: fds.watched))
            for fd in [fds.pidfd, fds.reportFd, fds.controlFd] where fd >= 0 {
                _ = swarm_set_inheritable(fd)
                kept.append(fd)
            }
        }
        var state = swarm
        state.upgrades += 1
        var h = Handover(swarm: state, nodes: handed, nextSpawnId: nextSpawnId, listenFd: listen, socketPath: socketPath,
                         configPath: configPath, overridesNodes: overrides.nodes, overridesCommand: overrides.nodeCommand,
                         executable: executable, previousVersion: version)
        h.httpFd = httpFd
        var why: String
        do {
            let fd = try h.write()
            let argv = [binary, "run", "--handover", String(fd)]
            _ = withCStringArray(argv) { execv(binary, $0) }
            why = "cannot execute \(binary): \(errnoText())"
            close(fd)
        } catch {
            why = "\(error)"
        }
        for fd in kept { _ = swarm_set_cloexec(fd) }
        logger.error("upgrade failed: \(why); swarmd keeps running")
        notifier.ready()
    }
}
