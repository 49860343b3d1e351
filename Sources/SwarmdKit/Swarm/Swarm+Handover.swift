import Shared

/// What an upgrade hands to the new swarmd (`Handover`): the whole core but
/// the effects being built. Written out by hand so that the keys stay
/// handover format 2's whatever shape the sub-machines take: an upgrade
/// between builds of that format touches no node (`SwarmCoreTests` pins
/// the keys).
extension Swarm: Codable {
    /// What an upgrade hands to the new swarmd: everything but the effects
    /// being built. The keys are handover format 2's (`Handover`): the
    /// rolling restart's fields keep the names they had as `Swarm`'s own, so
    /// an upgrade between builds of that format touches no node.
    private enum CodingKeys: String, CodingKey {
        case config, pid, mode, slots, wanted, startedAt, readySent, rollQueue, rollCurrent, stopDeadline, pauseDeadline
        case anyKilledWhileStopping, malformedReports, totalRestarts, bySpawn, now, upgrades, rollStartedAt, autoscaler
        case barrier, gate
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        config = try c.decode(SwarmConfig.self, forKey: .config)
        pid = try c.decode(Int32.self, forKey: .pid)
        let stopBy = try c.decodeIfPresent(Double.self, forKey: .stopDeadline)
        let pauseUntil = try c.decodeIfPresent(Double.self, forKey: .pauseDeadline)
        switch try c.decode(Mode.Name.self, forKey: .mode) {
        case .running: mode = .running
        case .reloading: mode = .reloading
        case .pausing:
            guard let pauseUntil, let stopBy else {
                throw DecodingError.dataCorruptedError(forKey: .pauseDeadline, in: c, debugDescription: "a pausing swarm without its deadlines")
            }
            mode = .pausing(until: pauseUntil, stopBy: stopBy)
        case .stopping: mode = .stopping
        case .quitting: mode = .quitting
        }
        slots = try c.decode([Int: Slot].self, forKey: .slots)
        wanted = try c.decode(Int.self, forKey: .wanted)
        startedAt = try c.decode(Double.self, forKey: .startedAt)
        readySent = try c.decode(Bool.self, forKey: .readySent)
        roll = RollingRestart(queue: try c.decode([RollingRestart.Step].self, forKey: .rollQueue),
                              current: try c.decodeIfPresent(Int.self, forKey: .rollCurrent),
                              startedAt: try c.decodeIfPresent(Double.self, forKey: .rollStartedAt))
        anyKilledWhileStopping = try c.decode(Bool.self, forKey: .anyKilledWhileStopping)
        malformedReports = try c.decode(Int.self, forKey: .malformedReports)
        totalRestarts = try c.decode(Int.self, forKey: .totalRestarts)
        bySpawn = try c.decode([Int: Int].self, forKey: .bySpawn)
        now = try c.decode(Double.self, forKey: .now)
        upgrades = try c.decode(Int.self, forKey: .upgrades)
        // Absent from a swarm that never autoscaled, in builds before the autoscaler was always there.
        autoscaler = try c.decodeIfPresent(Autoscaler.self, forKey: .autoscaler) ?? Autoscaler()
        changes = GroupChanges(gate: try c.decodeIfPresent(SettleGate.self, forKey: .gate),
                               barrier: try c.decodeIfPresent(CommitBarrier.self, forKey: .barrier))
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(config, forKey: .config)
        try c.encode(pid, forKey: .pid)
        try c.encode(mode.name, forKey: .mode)
        if case .pausing(let until, let stopBy) = mode {
            try c.encode(until, forKey: .pauseDeadline)
            try c.encode(stopBy, forKey: .stopDeadline)
        }
        try c.encode(slots, forKey: .slots)
        try c.encode(wanted, forKey: .wanted)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(readySent, forKey: .readySent)
        try c.encode(roll.queue, forKey: .rollQueue)
        try c.encodeIfPresent(roll.current, forKey: .rollCurrent)
        try c.encodeIfPresent(roll.startedAt, forKey: .rollStartedAt)
        try c.encode(anyKilledWhileStopping, forKey: .anyKilledWhileStopping)
        try c.encode(malformedReports, forKey: .malformedReports)
        try c.encode(totalRestarts, forKey: .totalRestarts)
        try c.encode(bySpawn, forKey: .bySpawn)
        try c.encode(now, forKey: .now)
        try c.encode(upgrades, forKey: .upgrades)
        try c.encode(autoscaler, forKey: .autoscaler)
        try c.encodeIfPresent(changes.barrier, forKey: .barrier)
        try c.encodeIfPresent(changes.gate, forKey: .gate)
    }
}
