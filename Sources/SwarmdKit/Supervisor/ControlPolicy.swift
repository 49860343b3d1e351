import Shared

/// The control decisions that need no I/O, out of the shell so that tests
/// call them directly (`ControlPolicyTests`): who may ask for what, and when
/// a reload or an upgrade is refused. The shell does the I/O around them
/// (reading the file, checking the new binary) and logs what they decide.
enum ControlPolicy {
    /// Commands a read-only peer (`socket_read_group`) may use: looking, not acting.
    static let readOnlyCommands: Set<String> = [ControlCommand.status.rawValue, ControlCommand.metrics.rawValue]

    /// Why a peer may not use `command`, if it may not.
    static func refusal(of command: String, access: ControlServer.Access, uid: UInt32) -> ControlFailure? {
        guard access == .read, !readOnlyCommands.contains(command) else { return nil }
        return ControlFailure(.permissionDenied, "permission denied: uid \(uid) may only use status and metrics here (socket_read_group); \(command.prefix(64)) needs root, swarmd's user or socket_group")
    }

    /// Why a reload to `next` is refused while `running` runs, if it is:
    /// the embedded broker lives inside swarmd, so it cannot come or go
    /// without a restart.
    static func reloadRefusal(running: SwarmConfig, next: SwarmConfig) -> SwarmError? {
        guard next.usesEmbeddedBroker != running.usesEmbeddedBroker else { return nil }
        return SwarmError(.config, "switching the embedded broker on or off needs a restart of swarmd")
    }

    /// What a reload to `next` applies only later, said as a warning: the
    /// link to the cluster's status topic is made at start.
    static func reloadDeferred(running: SwarmConfig, next: SwarmConfig) -> String? {
        guard next.cluster != running.cluster else { return nil }
        return "[cluster] changed: it takes effect at swarmd's next start or swarmctl upgrade; everything else applies now"
    }

    /// Why an upgrade is refused now, if it is (before the new binary is
    /// even looked at): a stopping swarmd, one upgrade at a time, and never
    /// with the embedded broker, which lives in swarmd's memory and would
    /// not survive the exec.
    static func upgradeRefusal(stopping: Bool, upgradePending: Bool, embeddedBroker: Bool) -> ControlFailure? {
        if stopping { return ControlFailure(.shuttingDown, "swarmd is stopping") }
        if upgradePending { return ControlFailure(.busy, "an upgrade is already under way") }
        if embeddedBroker {
            return ControlFailure(.badArgument, "the embedded development broker lives inside swarmd and would not survive it; upgrade with an external broker (or swarmd broker), or restart")
        }
        return nil
    }
}
