import Shared

/// swarmd's decisions, as one pure state machine: the swarm's state and one
/// entry point, `handle(_:now:)`, that turns an event into effects. No fds,
/// no system calls, no clock reads: the shell (`Supervisor`) turns fds into
/// events and effects into system calls (`SwarmDriver` is the loop between
/// them), and tests drive this with events and a fake clock
/// (`SwarmCoreTests`).
///
/// `Swarm` coordinates; what it coordinates lives in files of its own:
/// - `Swarm+Nodes`: a node's life (spawn, reports, memory, stop, exit,
///   backoff), each move through `NodeState`'s table;
/// - `Swarm+Commands`: what swarmctl and signals ask;
/// - `Swarm+GroupChange`: swarmd's own changes of the group, behind the
///   `SettleGate` and the `CommitBarrier`;
/// - `Swarm+Stop`: the `RollingRestart` and the stop sequence (`Mode`);
/// - `Swarm+Deadlines`: the one timer table (`Deadline`);
/// - `Swarm+Status`: the status view and readiness; `Swarm+Handover`: the
///   state an upgrade hands on.
/// Fields are set only by these files: the sub-machines (`roll`,
/// `autoscaler`, `changes`, each slot's `NodeState`) own their own.
struct Swarm {
    var config: SwarmConfig
    /// swarmd's own pid, for the status.
    let pid: Int32
    var mode = Mode.running
    var slots: [Int: Slot] = [:]
    var wanted: Int
    let startedAt: Double
    var readySent = false
    /// Slots to restart one at a time (rolling restart, reload, memory).
    var roll = RollingRestart()
    var anyKilledWhileStopping = false
    var malformedReports = 0
    var totalRestarts = 0
    /// The slot of each live process, by spawn id.
    var bySpawn: [Int: Int] = [:]
    var effects: [SwarmEffect] = []
    var now = 0.0
    /// In-place upgrades of swarmd so far (the state outlives each: `Supervisor.upgrade`).
    var upgrades = 0
    /// Lag-aware autoscaling (`[autoscale]`); it looks only while that is enabled.
    var autoscaler = Autoscaler()
    /// swarmd's own changes of the group in flight: the settle gate and the commit barrier.
    var changes = GroupChanges()
    /// The group changes waiting for the held nodes' commits, if any.
    var barrier: CommitBarrier? { changes.barrier }
    /// Open while the last group change settles; later changes queue in it.
    var gate: SettleGate? { changes.gate }

    init(config: SwarmConfig, pid: Int32 = 0, now: Double) {
        self.config = config
        self.pid = pid
        self.wanted = config.supervisor.nodes
        self.startedAt = now
    }

    var settings: SupervisorSettings { config.supervisor }

    /// True once the swarm was told to stop and every node is gone.
    var finished: Bool { mode.isStopping && slots.values.allSatisfy { $0.process == nil } }

    func slot(ofSpawn spawn: Int) -> Slot? { bySpawn[spawn].flatMap { slots[$0] } }

    // MARK: The one entry point

    mutating func handle(_ event: SwarmEvent, now: Double) -> [SwarmEffect] {
        effects = []
        self.now = now
        switch event {
        case .start: scale(to: wanted, reason: "start")
        case .spawned(let id, let spawn, let pid): spawned(id, spawn: spawn, pid: pid)
        case .spawnFailed(let id, let error): spawnFailed(id, error)
        case .exited(let spawn, let cause): exited(spawn, cause)
        case .report(let spawn, let report): accept(report, spawn: spawn)
        case .memory(let spawn, let memory): measured(memory, spawn: spawn)
        case .malformedReport(let spawn, let why): malformed(spawn, why)
        case .command(let command, let origin): run(command, from: origin)
        case .tick: checkDeadlines()
        }
        // The multi-step flows advance after every event, in this order.
        advanceGate()
        advanceBarrier()
        advanceRoll()
        advanceStop()
        checkReady()
        autoscale()
        if changes.takeWentOut() { openGate() }
        return effects
    }

    // MARK: Effects

    mutating func log(_ event: SwarmLog) {
        effects.append(.log(event))
    }

    /// A slot as the log names it.
    func node(_ slot: Slot) -> SwarmLog.Node {
        SwarmLog.Node(slot: slot.id, pid: slot.process?.pid)
    }

    /// Moves a slot through the transition table; an illegal move is a
    /// programming error: refused and logged, never applied.
    @discardableResult
    mutating func move(_ id: Int, on event: NodeState.Event, _ reason: String) -> Bool {
        guard var slot = slots[id] else { return false }
        let from = slot.state.phase
        guard let next = slot.state.next(on: event) else {
            log(.illegalMove(node(slot), from: from, event: event.name))
            return false
        }
        slot.state = next
        slots[id] = slot
        if from != next.phase { log(.moved(node(slot), from: from, to: next.phase, reason: reason, event: event.name)) }
        return true
    }
}
