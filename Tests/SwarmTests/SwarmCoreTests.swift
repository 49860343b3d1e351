import Shared
@testable import SwarmdKit
import XCTest

/// The supervisor's decisions, driven with events and a fake clock: no
/// process, no fd, no sleep. Each test reads as the behaviour it checks.
final class SwarmCoreTests: XCTestCase {
    /// A swarm with the shell's part played: every spawn succeeds (or fails,
    /// with `failSpawns`), and time moves only when told.
    struct Harness {
        var swarm: Swarm
        var now = 0.0
        var nextSpawn = 1
        var failSpawns = false
        /// Nodes answer a hold at once (as a node between batches does), with
        /// a report counting it; false leaves the holds unanswered.
        var answerHolds = true
        /// Holds each spawn answered so far (every report the harness sends carries it).
        var holdsAnswered: [Int: Int64] = [:]
        /// Assignments each spawn got (its reports' `rebalances`): `settle` gives every node one.
        var assignments: [Int: Int64] = [:]
        var effects: [SwarmEffect] = []

        init(nodes: Int = 2, _ extra: String = "", builtIn: Bool = true) {
            var text = "[supervisor]\nnodes = \(nodes)\nreport_timeout = 10\nkill_timeout = 10\nshutdown_timeout = 30\nquit_timeout = 2\nrestart_backoff_max = 8\nrestart_reset_after = 10\ncrash_loop_after = 3\n"
            if !builtIn { text += "node_command = [\"/bin/true\"]\n" }
            text += extra
            let config = try! ConfigLoader(path: "test.toml").parse(text)
            swarm = Swarm(config: config, pid: 42, now: 0)
        }

        /// Feeds one event through `SwarmDriver`, swarmd's own loop, playing
        /// the shell's part: a spawn succeeds (or fails), a hold is answered.
        @discardableResult
        mutating func send(_ event: SwarmEvent) -> [SwarmEffect] {
            let now = self.now
            effects = SwarmDriver.feed(event, handle: { swarm.handle($0, now: now) }) { effect in
                if case .tell(let spawn, .hold) = effect, answerHolds, let slot = swarm.slot(ofSpawn: spawn) {
                    holdsAnswered[spawn, default: 0] += 1
                    var r = slot.process?.lastReport ?? NodeReport()
                    r.holds = holdsAnswered[spawn]!
                    return [.report(spawn: spawn, r)]
                }
                if case .spawn(let slot) = effect {
                    if failSpawns { return [.spawnFailed(slot: slot, error: "cannot start /x: No such file")] }
                    nextSpawn += 1
                    return [.spawned(slot: slot, spawn: nextSpawn - 1, pid: Int32(1000 + nextSpawn - 1))]
                }
                return []
            }
            return effects
        }

        @discardableResult
        mutating func at(_ t: Double) -> [SwarmEffect] {
            now = t
            return send(.tick)
        }

        func spawn(_ slot: Int) -> Int? { swarm.slots[slot]?.process?.spawn }
        func phase(_ slot: Int) -> NodeState.Phase? { swarm.slots[slot]?.state.phase }

        mutating func report(_ slot: Int, _ state: NodeReport.State = .running, health: NodeReport.Health = .ok, reason: Int = 0,
                             handled: Int64 = 0, kafka: KafkaCondition? = nil) {
            var r = NodeReport()
            r.state = state
            r.kafka = kafka
            r.health = health
            r.reason = reason
            r.handled = handled
            r.holds = holdsAnswered[spawn(slot)!] ?? 0
            r.rebalances = assignments[spawn(slot)!] ?? 0
            send(.report(spawn: spawn(slot)!, r))
        }

        /// Every live node reports running (healthy).
        mutating func allReport(_ state: NodeReport.State = .running) {
            for id in swarm.slots.keys.sorted() where swarm.slots[id]?.process != nil { report(id, state) }
        }

        mutating func exit(_ slot: Int, _ cause: ExitCause = .exited(1)) {
            send(.exited(spawn: spawn(slot)!, cause: cause))
        }

        mutating func command(_ c: SwarmCommand, signal: String? = nil) -> ControlResponse? {
            send(.command(c, from: signal.map { .signal($0) } ?? .control(uid: 0, pid: 7)))
            for case .reply(let r) in effects { return r }
            return nil
        }

        var spawns: [Int] { effects.compactMap { if case .spawn(let s) = $0 { return s } else { return nil } } }
        var signals: [NodeSignal] { effects.compactMap { if case .signal(_, let s) = $0 { return s } else { return nil } } }
        func signals(to slot: Int) -> [NodeSignal] {
            let s = spawn(slot)
            return effects.compactMap { if case .signal(s, let sig) = $0 { return sig } else { return nil } }
        }
        var told: [NodeCommand] { effects.compactMap { if case .tell(_, let c) = $0 { return c } else { return nil } } }
        var notified: [SystemdMessage] { effects.compactMap { if case .notify(let m) = $0 { return m } else { return nil } } }
        /// What the core logged during the last event, typed (`SwarmLog`).
        var logged: [SwarmLog] { effects.compactMap { if case .log(let event) = $0 { return event } else { return nil } } }
        /// The kind of each, for a test that need not pin its payload.
        var kinds: [String] { logged.map(\.kind) }

        /// Lets the group settle after a change (`SettleGate`): time passes
        /// and every live node reports; the effects of all those reports.
        mutating func settle(_ state: NodeReport.State = .running) {
            now += SettleGate.quiet
            var all: [SwarmEffect] = []
            for id in swarm.slots.keys.sorted() where swarm.slots[id]?.process != nil {
                assignments[spawn(id)!, default: 0] += 1  // the change's rebalance reached it
                report(id, state)
                all += effects
            }
            if all.isEmpty { send(.tick); all = effects }
            effects = all
        }

        /// Starts the swarm and brings every node to running.
        mutating func started() {
            send(.start)
            allReport()
        }
    }

    // MARK: Start and readiness

    func testStartSpawnsEveryNodeAndIsReadyOnlyWhenAllReportHealthy() {
        var h = Harness(nodes: 3)
        h.send(.start)
        XCTAssertEqual(h.spawns, [0, 1, 2])
        XCTAssertEqual((0..<3).map { h.phase($0) }, [.starting, .starting, .starting])
        h.report(0)
        h.report(1)
        XCTAssertFalse(h.swarm.readySent)
        h.report(2)
        XCTAssertEqual(h.notified, [.ready])
        XCTAssertEqual(h.phase(2), .running)
    }

    func testReadyIsSentOnce() {
        var h = Harness(nodes: 1)
        h.started()
        h.report(0)
        XCTAssertEqual(h.notified, [])
        h.exit(0)
        h.report(0)
        XCTAssertEqual(h.notified, [], "a restarted node does not make the swarm ready again")
    }

    func testANodeThatReportsDrainedAtFirstCountsAsUp() {
        var h = Harness(nodes: 1)
        h.send(.start)
        h.report(0, .drained)
        XCTAssertEqual(h.phase(0), .drained)
        XCTAssertTrue(h.swarm.readySent)
    }

    // MARK: Crashes and backoff

    func testAFirstCrashRestartsAtOnce() {
        var h = Harness(nodes: 1)
        h.started()
        h.exit(0, .signaled("SEGV", coreDumped: true))
        XCTAssertEqual(h.spawns, [0])
        XCTAssertEqual(h.phase(0), .starting)
        XCTAssertEqual(h.swarm.slots[0]?.restarts, 1)
        XCTAssertEqual(h.swarm.slots[0]?.lastExit, "killed by signal SEGV (core dumped)")
    }

    func testRepeatedCrashesBackOffExponentiallyUpToTheCap() {
        var h = Harness(nodes: 1)
        h.send(.start)
        var delays: [Double] = []
        for _ in 0..<7 {
            h.exit(0)
            if case .backoff(let at?) = h.swarm.slots[0]!.state {
                delays.append(at - h.now)
                XCTAssertEqual(h.at(at - 0.01), [], "nothing before the deadline")
                h.at(at)
                XCTAssertEqual(h.spawns, [0])
            } else {
                delays.append(0)
            }
        }
        XCTAssertEqual(delays, [0, 0.5, 1, 2, 4, 8, 8])
    }

    func testASlotIsCrashLoopingAfterQuickFailuresInARow() {
        var h = Harness(nodes: 1)
        h.send(.start)
        for i in 0..<3 {
            h.exit(0)
            if case .backoff(let at?) = h.swarm.slots[0]!.state, i < 2 { h.at(at) }
        }
        XCTAssertEqual(h.swarm.status(now: h.now).nodes[0].state, .crashLooping)
        XCTAssertTrue(h.logged.contains { if case .crashLooping(_, failures: 3, _, _) = $0 { return true } else { return false } }, "\(h.kinds)")
    }

    /// One line when a slot starts crash-looping (not one per failure), one when it recovers.
    func testCrashLoopingIsSaidOnceAndSoIsTheRecovery() {
        var h = Harness(nodes: 1)
        h.send(.start)
        var said: [String] = []
        func events() -> [String] {
            h.kinds.filter { $0 == "crashLooping" || $0 == "recovered" }
        }
        for _ in 0..<5 {
            h.exit(0)
            said += events()
            if case .backoff(let at?) = h.swarm.slots[0]!.state { h.at(at) }
        }
        XCTAssertEqual(said, ["crashLooping"])
        let start = h.now
        h.report(0)
        h.at(start + 5)
        h.report(0)
        XCTAssertEqual(events(), [], "not yet: restart_reset_after is 10 s")
        h.at(start + 10)
        h.report(0)
        XCTAssertEqual(events(), ["recovered"])
        h.at(start + 11)
        h.report(0)
        XCTAssertEqual(events(), [])
        h.exit(0)
        XCTAssertEqual(h.spawns, [0], "recovered: the next crash restarts at once")
    }

    func testAHealthyStretchResetsTheBackoff() {
        var h = Harness(nodes: 1)
        h.send(.start)
        h.exit(0)  // restarts at once
        h.exit(0)  // 0.5 s
        h.at(0.5)
        h.report(0)  // healthy from 0.5
        h.at(11)
        h.report(0)
        h.exit(0)
        XCTAssertEqual(h.spawns, [0], "after restart_reset_after of health, a crash restarts at once again")
    }

    func testASpawnThatFailsIsRetriedAfterHalfASecondAtLeast() {
        var h = Harness(nodes: 1)
        h.failSpawns = true
        h.send(.start)
        guard case .backoff(let at?) = h.swarm.slots[0]!.state else { return XCTFail("not in backoff") }
        XCTAssertEqual(at, 0.5)
        XCTAssertTrue(h.logged.contains { if case .spawnFailed(_, let error, _) = $0 { return error.hasPrefix("cannot start /x") } else { return false } })
        h.failSpawns = false
        h.at(0.5)
        XCTAssertEqual(h.phase(0), .starting)
    }

    // MARK: Hung, unhealthy, memory

    func testAHungNodeGetsTermThenKillAtTheDeadline() {
        var h = Harness(nodes: 1)
        h.started()
        XCTAssertEqual(h.swarm.hangSuspects(now: 9.9), [])
        XCTAssertEqual(h.swarm.hangSuspects(now: 10), [h.spawn(0)!], "the shell reads these pipes before the tick")
        h.at(10)
        XCTAssertEqual(h.signals(to: 0), [.term])
        XCTAssertEqual(h.phase(0), .stopping)
        XCTAssertEqual(h.swarm.nextDeadline(), 20)
        h.at(20)
        XCTAssertEqual(h.signals(to: 0), [.kill])
        h.at(25)
        XCTAssertEqual(h.signals, [], "KILL once")
        h.exit(0, .signaled("KILL", coreDumped: false))
        XCTAssertEqual(h.swarm.slots[0]?.lastExit, "killed by signal KILL after stop: hung (no report)")
    }

    func testAReportBeforeTheDeadlineKeepsTheNodeAlive() {
        var h = Harness(nodes: 1)
        h.started()
        h.now = 9
        h.report(0)
        h.at(15)
        XCTAssertEqual(h.signals, [])
        XCTAssertEqual(h.swarm.nextDeadline(), 19)
    }

    func testANodeReportingItselfUnhealthyIsStoppedAsAFailure() {
        var h = Harness(nodes: 1)
        h.started()
        h.report(0, health: .unhealthy, reason: UnhealthyReason.handlerStuck.rawValue)
        XCTAssertEqual(h.signals(to: 0), [.term])
        h.exit(0, .exited(0))
        h.exit(0, .exited(0))
        guard case .backoff(let at?) = h.swarm.slots[0]!.state else { return XCTFail("a failure backs off") }
        XCTAssertEqual(at, 0.5)
    }

    static func memory(node pid: Int32, nodePSS: Int64, handlerPSS: Int64) -> NodeMemory {
        NodeMemory(processes: [.init(pid: pid, name: "swarmd-node", rss: 15 << 20, pss: nodePSS),
                               .init(pid: pid + 1, name: "python3", rss: handlerPSS + (1 << 20), pss: handlerPSS)])
    }

    func testNodesOverTheMemoryLimitAreRestartedGracefullyOneAtATimeNamingTheProcessThatGrew() {
        var h = Harness(nodes: 2, "memory_limit = \"100MiB\"\n")
        h.started()
        h.send(.memory(spawn: h.spawn(0)!, Self.memory(node: 1001, nodePSS: 2 << 20, handlerPSS: 200 << 20)))
        XCTAssertEqual(h.signals(to: 0), [.term])
        XCTAssertEqual(h.logged.filter { $0.kind == "overMemory" },
                       [.overMemory(.init(slot: 0, pid: 1001), detail: "handler pid 1002 (python3) uses 200.0 MiB of 202.0 MiB; the limit is 100.0 MiB")])
        h.send(.memory(spawn: h.spawn(1)!, Self.memory(node: 1002, nodePSS: 2 << 20, handlerPSS: 200 << 20)))
        XCTAssertEqual(h.signals, [], "one at a time")
        h.exit(0, .exited(0))
        XCTAssertEqual(h.swarm.slots[0]?.lastExit?.hasPrefix("exited with status 0 after stop: over memory limit: handler pid 1002"), true)
        XCTAssertEqual(h.signals, [])
        h.settle()
        XCTAssertEqual(h.signals(to: 1), [.term], "the next once the first replacement is healthy")
    }

    func testTheLimitComparesTheWholeTreesPSSNotTheNodesRSS() {
        var h = Harness(nodes: 1, "memory_limit = \"100MiB\"\n")
        h.started()
        h.send(.memory(spawn: h.spawn(0)!, Self.memory(node: 1001, nodePSS: 60 << 20, handlerPSS: 30 << 20)))
        XCTAssertEqual(h.signals, [], "90 MiB in all: under")
        h.send(.memory(spawn: h.spawn(0)!, Self.memory(node: 1001, nodePSS: 60 << 20, handlerPSS: 50 << 20)))
        XCTAssertEqual(h.signals, [.term], "110 MiB in all: over, though neither process is")
    }

    // MARK: Size

    func testTTINAndTTOUAddAndRemoveOneNodeTheHighestSlotFirst() {
        var h = Harness(nodes: 2)
        h.started()
        XCTAssertNil(h.command(.scale(.relative(1)), signal: "TTIN"), "a signal gets no reply")
        XCTAssertEqual(h.spawns, [2])
        h.settle()
        _ = h.command(.scale(.relative(-1)), signal: "TTOU")
        XCTAssertEqual(h.signals(to: 2), [.term])
        h.exit(2, .exited(0))
        XCTAssertNil(h.swarm.slots[2], "removed, not restarted")
        XCTAssertEqual(h.spawns, [])
    }

    func testTheSwarmNeverGoesBelowOneNode() {
        var h = Harness(nodes: 1)
        h.started()
        _ = h.command(.scale(.relative(-1)), signal: "TTOU")
        XCTAssertTrue(h.logged.contains { if case .commandIgnored("TTOU", let why) = $0 { return why.hasPrefix("the swarm size must be between 1 and 1024, not 0") } else { return false } }, "\(h.logged)")
        XCTAssertEqual(h.command(.scale(.absolute(0)))?.error?.code, "bad-argument")
        XCTAssertEqual(h.command(.scale(.absolute(1025)))?.error?.code, "bad-argument")
        XCTAssertEqual(h.swarm.wanted, 1)
    }

    func testScaleToNAndByDelta() {
        var h = Harness(nodes: 2)
        h.started()
        XCTAssertEqual(h.command(.scale(.absolute(5)))?.message, "scaling to 5 nodes")
        XCTAssertEqual(h.spawns, [2, 3, 4])
        h.settle()
        XCTAssertEqual(h.command(.scale(.relative(-3)))?.message, "scaling to 2 nodes")
        XCTAssertEqual(h.effects.compactMap { if case .signal(let s, .term) = $0 { return s } else { return nil } }.count, 3)
    }

    func testAScaledDownSlotScaledBackUpBeforeItLeftIsKept() {
        var h = Harness(nodes: 2)
        h.started()
        _ = h.command(.scale(.absolute(1)))
        _ = h.command(.scale(.absolute(2)))
        XCTAssertEqual(h.spawns, [], "slot 1 still has its (stopping) process")
        h.exit(1, .exited(0))
        XCTAssertEqual(h.spawns, [1], "wanted again: replaced")
    }

    // MARK: Drain and resume

    func testDrainTellsTheNodeAndWaitsForItToReportDrained() {
        var h = Harness(nodes: 2)
        h.started()
        XCTAssertEqual(h.command(.drain(slots: [1]))?.message, "draining 1 node(s)")
        XCTAssertEqual(h.told, [.hold, .drain], "the other node commits first: the drain starts a rebalance")
        XCTAssertEqual(h.phase(1), .draining)
        XCTAssertTrue(h.swarm.awaitsReport(h.swarm.slots[1]!))
        h.report(1, .drained)
        XCTAssertEqual(h.phase(1), .drained)
        XCTAssertFalse(h.swarm.awaitsReport(h.swarm.slots[1]!), "drained as asked: left to the sweep")
    }

    func testADrainedSlotsReplacementIsDrainedToo() {
        var h = Harness(nodes: 1)
        h.started()
        _ = h.command(.drain(slots: nil))
        h.report(0, .drained)
        h.exit(0)
        XCTAssertEqual(h.spawns, [0])
        XCTAssertEqual(h.told, [.drain])
    }

    func testResumeTellsTheNodeAndItRunsWhenItSaysSo() {
        var h = Harness(nodes: 1)
        h.started()
        _ = h.command(.drain(slots: nil))
        h.settle(.drained)
        XCTAssertEqual(h.command(.resume(slots: [0]))?.message, "resuming 1 node(s)")
        XCTAssertEqual(h.told, [.resume])
        XCTAssertEqual(h.phase(0), .drained)
        h.report(0, .running)
        XCTAssertEqual(h.phase(0), .running)
    }

    func testCommandsOnASlotThatDoesNotExistAreRefused() {
        var h = Harness(nodes: 2)
        h.started()
        let r = h.command(.drain(slots: [7]))
        XCTAssertEqual(r?.error?.code, "bad-argument")
        XCTAssertEqual(r?.error?.message, "there is no node in slot 7 (slots 0…1)")
        XCTAssertEqual(h.told, [])
    }

    // MARK: Rolling restarts and reload

    func testARollingRestartNeverHasTwoSlotsDownAtOnce() {
        var h = Harness(nodes: 3)
        h.started()
        XCTAssertEqual(h.command(.restart(slots: nil))?.message, "restarting 3 node(s), one at a time")
        var order: [Int] = []
        for _ in 0..<3 {
            let down = (0..<3).filter { h.phase($0) != .running }
            XCTAssertEqual(down.count, 1, "exactly one slot down: \(down)")
            order.append(down[0])
            h.exit(down[0], .exited(0))
            XCTAssertEqual(h.signals, [], "the next waits for the replacement")
            h.report(down[0])
        }
        XCTAssertEqual(order, [0, 1, 2])
        XCTAssertTrue((0..<3).allSatisfy { h.phase($0) == .running })
        XCTAssertEqual((0..<3).map { h.swarm.slots[$0]!.restarts }, [1, 1, 1])
    }

    func testAReloadRollsEveryNodeOntoTheNewConfigurationThenIsReadyAgain() throws {
        var h = Harness(nodes: 2)
        h.started()
        var next = h.swarm.config
        next.handler.batchSize = 7
        XCTAssertEqual(h.command(.reload(next))?.message, "reloading: replacing 2 node(s) one at a time")
        XCTAssertEqual(Array(h.notified.prefix(1)), [.reloading])
        XCTAssertTrue(h.effects.contains(.useConfig(next)))
        XCTAssertEqual(h.swarm.mode, .reloading)
        for slot in 0..<2 {
            h.exit(slot, .exited(0))
            h.report(slot)
        }
        XCTAssertEqual(h.notified, [.ready])
        XCTAssertTrue(h.logged.contains(.reloadComplete))
        XCTAssertEqual(h.swarm.mode, .running)
    }

    // MARK: Kafka-true health

    func testReadyWaitsUntilEveryNodeConsumesNotUntilItReports() {
        var h = Harness(nodes: 3)
        h.send(.start)
        for slot in 0..<3 { h.report(slot, kafka: .joining) }
        XCTAssertFalse(h.swarm.readySent, "reporting is not consuming: nobody has joined the group yet")
        XCTAssertEqual(h.swarm.statusLine(), "0/3 nodes consuming (3 joining), 0 msg/s, 0 restarts")
        h.report(0, kafka: .consuming)
        h.report(1, kafka: .idle)
        XCTAssertFalse(h.swarm.readySent)
        h.report(2, kafka: .waiting)
        XCTAssertEqual(h.notified, [.ready], "a node beyond the partition count waits, and the swarm is ready")
    }

    func testReadyGoesOutAtTheReadyTimeoutSayingWhatIsMissing() {
        var h = Harness(nodes: 2, "ready_timeout = 20\n")
        h.send(.start)
        h.report(0, kafka: .consuming)
        h.report(1, kafka: .disconnected)
        XCTAssertEqual(h.swarm.nextDeadline(), 10, "the report deadline comes first")
        for t in [9.0, 18.0] {
            h.now = t
            h.report(0, kafka: .consuming)
            h.report(1, kafka: .disconnected)
        }
        XCTAssertEqual(h.swarm.nextDeadline(), 20, "then the ready timeout")
        h.at(19.9)
        XCTAssertFalse(h.swarm.readySent)
        h.at(20)
        XCTAssertEqual(h.signals, [], "nobody is restarted for it")
        XCTAssertEqual(h.notified, [.ready], "systemd must not kill a swarm waiting for its broker")
        XCTAssertTrue(h.logged.contains { if case .readyByTimeout(20, let missing) = $0 { return missing.contains("1 disconnected") } else { return false } }, "\(h.logged)")
    }

    func testABrokerOutageDegradesTheSwarmAndRestartsNothing() {
        var h = Harness(nodes: 2)
        h.send(.start)
        h.report(0, kafka: .disconnected)
        h.report(1, kafka: .rebalancingTooLong)
        XCTAssertEqual(h.signals, [], "restarting consumers brings no broker back")
        let s = h.swarm.status(now: 1)
        XCTAssertEqual(s.nodes.map(\.health), [.degraded, .degraded])
        XCTAssertEqual(s.nodes.map(\.reason), ["disconnected", "rebalancing-too-long"])
        XCTAssertEqual(s.healthy, 0)
        XCTAssertFalse(StatusTable.allHealthy(s), "swarmctl status exits 3")
        h.report(0, kafka: .idle)
        h.report(1, kafka: .rebalancing)
        XCTAssertTrue(StatusTable.allHealthy(h.swarm.status(now: 2)), "a rebalance in progress is normal, not degraded")
    }

    func testOnlyAWedgedProcessIsRestarted() {
        var h = Harness(nodes: 1)
        h.started()
        h.report(0, health: .unhealthy, reason: UnhealthyReason.handlerStuck.rawValue, kafka: .consuming)
        XCTAssertEqual(h.signals, [.term])
        XCTAssertEqual(h.swarm.status(now: 1).nodes[0].reason, "handler stuck on one batch")
    }

    func testARollingStepWaitsUntilTheReplacementIsAssigned() {
        var h = Harness(nodes: 2, "ready_timeout = 30\n")
        h.send(.start)
        h.report(0, kafka: .consuming)
        h.report(1, kafka: .consuming)
        _ = h.command(.restart(slots: nil))
        h.exit(0, .exited(0))
        h.report(0, kafka: .joining)
        XCTAssertEqual(h.signals, [], "the replacement has no partitions yet: slot 1 keeps its")
        h.now = SettleGate.quiet
        h.assignments[h.spawn(1)!, default: 0] += 1
        h.report(1, kafka: .consuming)
        h.report(0, kafka: .consuming)
        XCTAssertEqual(h.signals(to: 1), [.term], "assigned, and the group settled: the next slot goes")
        XCTAssertFalse(h.told.contains(.leave), "a restarted slot keeps its static membership for its replacement")
        h.exit(1, .exited(0))
        h.report(1, kafka: .joining)
        h.at(40)
        XCTAssertTrue(h.kinds.contains("rollingOn"), "\(h.kinds)")
    }

    /// On a real broker a replacement back under the same static member id
    /// gets its partitions without a rebalance: nothing else would end the
    /// others' holds before their 10 s limit.
    func testTheOthersHoldsEndWhenTheRolledNodesReplacementConsumes() {
        var h = Harness(nodes: 3, "ready_timeout = 30\n")
        h.send(.start)
        for id in 0..<3 { h.report(id, kafka: .consuming) }
        _ = h.command(.restart(slots: [1]))
        XCTAssertEqual(h.told, [.hold, .hold], "slots 0 and 2 hold before slot 1 goes")
        h.exit(1, .exited(0))
        XCTAssertEqual(h.told, [.hold, .hold], "its replacement joins: they hold (and commit) again first")
        h.report(1, kafka: .joining)
        XCTAssertFalse(h.told.contains(.release), "not assigned yet: the change is not over")
        h.report(1, kafka: .consuming)
        XCTAssertEqual(h.effects.filter { if case .tell(_, .release) = $0 { return true } else { return false } },
                       [.tell(spawn: h.spawn(0)!, .release), .tell(spawn: h.spawn(2)!, .release)])
    }

    func testEveryMembershipChangeSwarmdMakesIsPrecededByACommitOfTheOthers() throws {
        var h = Harness(nodes: 3)
        h.started()
        _ = h.command(.scale(.absolute(4)))
        let firstCommit = h.effects.firstIndex(of: .tell(spawn: h.spawn(0)!, .hold))
        let spawn = h.effects.firstIndex(of: .spawn(slot: 3))
        XCTAssertLessThan(try XCTUnwrap(firstCommit), try XCTUnwrap(spawn), "commits go out before the new node is spawned")
        XCTAssertEqual(h.told, [.hold, .hold, .hold])
        h.settle()
        _ = h.command(.restart(slots: [1]))
        XCTAssertEqual(h.told, [.hold, .hold, .hold], "a rolling step: the three others commit before slot 1 goes")
        var custom = Harness(nodes: 2, builtIn: false)
        custom.started()
        _ = custom.command(.scale(.absolute(3)))
        XCTAssertEqual(custom.told, [], "a node program of the operator's own is not sent commands it may not know")
    }

    func testTheGroupChangesOnlyOnceEveryHeldNodeSaysItCommitted() {
        var h = Harness(nodes: 3)
        h.started()
        h.answerHolds = false
        _ = h.command(.scale(.absolute(4)))
        XCTAssertEqual(h.told, [.hold, .hold, .hold])
        XCTAssertEqual(h.spawns, [], "the new node waits: it would start a rebalance in which commits are refused")
        XCTAssertTrue(h.swarm.awaitsReport(h.swarm.slots[0]!), "an answer awaited is read at once, not at the next sweep")
        h.holdsAnswered[h.spawn(0)!] = 1
        h.holdsAnswered[h.spawn(1)!] = 1
        h.report(0)
        h.report(1)
        XCTAssertEqual(h.spawns, [], "slot 2 has not answered")
        h.report(2)
        XCTAssertEqual(h.spawns, [], "a report without the answer (an interval report from mid-batch) is not one")
        h.holdsAnswered[h.spawn(2)!] = 1
        h.report(2)
        XCTAssertEqual(h.spawns, [3], "every node committed: now the group changes")
        XCTAssertFalse(h.swarm.awaitsReport(h.swarm.slots[0]!), "back to the sweep")
        XCTAssertTrue(h.kinds.contains("barrierPassed"), "\(h.kinds)")
    }

    func testWithCooperativeAssignmentTheOthersHoldButTheChangeDoesNotWaitForThem() {
        var h = Harness(nodes: 3, "[kafka.properties]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n")
        h.started()
        h.answerHolds = false
        _ = h.command(.scale(.absolute(4)))
        XCTAssertEqual(h.told, [.hold, .hold, .hold])
        XCTAssertEqual(h.spawns, [3], "a cooperative hold's commit waits out any rebalance in progress: not waited for")
        XCTAssertNil(h.swarm.barrier)
    }

    // MARK: Back-to-back changes (SettleGate)

    func testAChangeWhileThePreviousStillRebalancesWaitsForItThenGoesOutWithItsHolds() {
        var h = Harness(nodes: 3)
        h.started()
        _ = h.command(.drain(slots: [0]))
        XCTAssertEqual(h.told, [.hold, .hold, .drain], "the first change goes out at once")
        h.now = 1.5
        for id in [1, 2] { h.report(id, kafka: .rebalancing) }
        XCTAssertEqual(h.command(.drain(slots: [1]))?.message, "draining 1 node(s)")
        XCTAssertEqual(h.told, [], "the group still rebalances: no hold, no drain yet")
        XCTAssertEqual(h.phase(1), .draining, "the swarm's own view moves at once")
        h.now = 4
        h.report(2, kafka: .rebalancing)
        XCTAssertEqual(h.told, [], "still rebalancing after the quiet time")
        h.report(2, kafka: .consuming)
        XCTAssertEqual(h.told, [], "says consuming, but has not been assigned since the change: it may not have heard of the rebalance yet")
        h.assignments[h.spawn(2)!] = 1
        h.report(2, kafka: .consuming)
        XCTAssertEqual(h.told, [.hold, .drain], "assigned again and settled: slot 2 holds (slot 0 drained, slot 1 drains), then the drain")
        XCTAssertTrue(h.logged.contains { if case .groupSettled(queued: 1, _) = $0 { return true } else { return false } }, "\(h.logged)")
    }

    func testTheStepsOfOneCommandGoOutTogetherAndASpawnWaitingInTheQueueIsNotWaitedFor() {
        var h = Harness(nodes: 2, "[kafka.properties]\n\"group.protocol\" = \"consumer\"\n")
        h.started()
        _ = h.command(.scale(.absolute(4)))
        XCTAssertEqual(h.spawns, [2, 3], "one command, one change: both nodes join together")
        XCTAssertEqual(h.told, [], "KIP-848: no holds, the coordinator moves only what must move")
        _ = h.command(.scale(.absolute(5)))
        XCTAssertEqual(h.spawns, [], "the previous change still settles")
        h.settle()
        XCTAssertEqual(h.spawns, [4], "settled once the nodes that run said so, not waiting for the queued one itself")
    }

    /// Found by the chaos on Tansu: `swarmctl resume` with no slot told every
    /// node, the consuming ones too; nothing rebalanced, and the settle gate
    /// held the next change for its whole limit, then said the group had not settled.
    func testAResumeOfNodesThatConsumeAndADrainOfADrainedOneChangeNothing() {
        var h = Harness(nodes: 2)
        h.started()
        XCTAssertEqual(h.command(.resume(slots: nil))?.message, "nothing to resume: no node asked is drained")
        XCTAssertEqual(h.told, [], "no hold, no resume")
        XCTAssertNil(h.swarm.gate, "no settling to wait for")
        XCTAssertEqual(h.command(.drain(slots: [1]))?.message, "draining 1 node(s)")
        h.now += SettleGate.limit
        h.report(0)
        h.report(1, .drained)
        XCTAssertNil(h.swarm.gate, "the drain's settling is over")
        XCTAssertEqual(h.phase(1), .drained)
        XCTAssertEqual(h.command(.drain(slots: [1]))?.message, "nothing to drain: every node asked is drained already")
        XCTAssertEqual(h.told, [])
        XCTAssertNil(h.swarm.gate)
        XCTAssertEqual(h.command(.resume(slots: nil))?.message, "resuming 1 node(s)", "only the drained one")
        XCTAssertEqual(h.told, [.hold, .resume])
    }

    func testADrainAndAResumeOfTheSameNodeThatMeetInTheQueueCancelOut() {
        var h = Harness(nodes: 2)
        h.started()
        _ = h.command(.scale(.absolute(3)))
        _ = h.command(.drain(slots: [1]))
        _ = h.command(.resume(slots: [1]))
        XCTAssertEqual(h.swarm.gate?.queued, [], "nothing left to do for slot 1")
        h.settle()
        XCTAssertFalse(h.told.contains(.drain) || h.told.contains(.resume), "\(h.told)")
    }

    func testQueuedChangesGoOutAtTheLimitIfTheGroupNeverSettlesAndSaySo() {
        var h = Harness(nodes: 2)
        h.started()
        _ = h.command(.scale(.absolute(3)))
        _ = h.command(.drain(slots: [0]))
        XCTAssertEqual(h.swarm.nextDeadline().map { $0 <= SettleGate.quiet }, true, "the shell wakes to look again")
        h.now = SettleGate.limit - 1
        for id in [0, 1, 2] { h.report(id, kafka: .joining) }
        XCTAssertFalse(h.told.contains(.drain))
        h.at(SettleGate.limit)
        XCTAssertTrue(h.kinds.contains("changesUnsettled"), "\(h.kinds)")
        XCTAssertTrue(h.told.contains(.hold), "\(h.told)")
    }

    /// Found by the churn benchmark: scale 2 → 3, then 4, 3 and 4 again
    /// while the group settled, queued slot 3's spawn twice; both went out
    /// together and two processes ran as slot 3, one of them unseen by the
    /// core. Now a slot's spawn is queued once, and a process no slot waits
    /// for is killed at once.
    func testASpawnQueuedTwiceWhileTheGroupSettlesStartsOneProcess() {
        var h = Harness(nodes: 2)
        h.started()
        _ = h.command(.scale(.absolute(3)))
        XCTAssertEqual(h.spawns, [2])
        for n in [4, 3, 4] { _ = h.command(.scale(.absolute(n))) }
        h.settle()
        var started = h.effects.filter { if case .spawn(3) = $0 { return true } else { return false } }.count
        for _ in 0..<3 { h.settle(); started += h.effects.filter { if case .spawn(3) = $0 { return true } else { return false } }.count }
        XCTAssertEqual(started, 1, "one process for slot 3")
        XCTAssertEqual(h.swarm.slots.count, 4)
        // A spawn answer no slot waits for (the shell started one anyway): killed, not left to consume unseen.
        let stray = h.send(.spawned(slot: 3, spawn: 999, pid: 4242))
        XCTAssertTrue(stray.contains(.signal(spawn: 999, .kill)), "\(stray)")
        XCTAssertNotEqual(h.spawn(3), 999, "slot 3 keeps its own node")
    }

    func testACrashReplacementNeverWaitsForTheGroupToSettle() {
        var h = Harness(nodes: 2)
        h.started()
        _ = h.command(.scale(.absolute(3)))
        XCTAssertNotNil(h.swarm.gate)
        h.exit(0, .signaled("KILL", coreDumped: false))
        XCTAssertEqual(h.spawns, [0], "restarted at once, gate or not")
    }

    func testABarrierNobodyAnswersLetsTheChangeOutAtItsDeadlineAndSaysWho() {
        var h = Harness(nodes: 3)
        h.started()
        h.answerHolds = false
        _ = h.command(.drain(slots: [1]))
        XCTAssertEqual(h.told, [.hold, .hold], "slots 0 and 2 hold; slot 1 is the one that drains")
        XCTAssertEqual(h.phase(1), .draining, "the swarm's own view moves at once")
        XCTAssertEqual(h.swarm.nextDeadline(), CommitBarrier.limit, "the barrier's deadline is one the shell wakes for")
        h.holdsAnswered[h.spawn(0)!] = 1
        h.report(0)
        h.at(CommitBarrier.limit - 0.1)
        XCTAssertEqual(h.told, [])
        h.at(CommitBarrier.limit)
        XCTAssertEqual(h.told, [.drain])
        XCTAssertTrue(h.logged.contains(.barrierLate(slots: [2])), "\(h.logged)")
    }

    func testANodeThatExitsOrStopsIsNotWaitedFor() {
        var h = Harness(nodes: 3)
        h.started()
        h.answerHolds = false
        _ = h.command(.drain(slots: [2]))
        XCTAssertEqual(h.told, [.hold, .hold])
        h.exit(0, .signaled("KILL", coreDumped: false))
        XCTAssertEqual(h.spawns, [], "a crashed node's replacement is a change too: it waits behind the barrier")
        h.holdsAnswered[h.spawn(1)!] = 1
        h.report(1)
        XCTAssertEqual(h.told, [.drain], "slot 0 is gone, slot 1 answered")
        XCTAssertEqual(h.spawns, [0], "and slot 0's replacement goes with it")
    }

    func testAChangeUndoneBeforeTheBarrierPassesIsNotMade() {
        var h = Harness(nodes: 2)
        h.started()
        h.answerHolds = false
        _ = h.command(.scale(.absolute(3)))
        _ = h.command(.scale(.absolute(2)))
        XCTAssertNil(h.swarm.slots[2], "slot 2 never had a process: removed at once")
        h.at(CommitBarrier.limit)
        XCTAssertEqual(h.spawns, [], "nothing to spawn for a slot scaled away")
    }

    func testAStopWhileABarrierWaitsPausesEveryNodeAndDropsTheDrain() {
        var h = Harness(nodes: 3)
        h.started()
        h.answerHolds = false
        _ = h.command(.drain(slots: [0]))
        _ = h.command(.stop(now: false))
        XCTAssertEqual(h.told, [.pause, .pause, .pause], "the stop's own barrier (pause) takes over; the drain is not sent")
        XCTAssertNil(h.swarm.barrier)
    }

    func testAScaleDownBehindTheBarrierGetsItsWholeGraceAfterIt() {
        var h = Harness(nodes: 3)
        h.started()
        h.answerHolds = false
        _ = h.command(.scale(.absolute(2)))
        XCTAssertEqual(h.signals, [], "TERM waits behind the barrier")
        XCTAssertEqual(h.swarm.slots[2]?.state.stopOrder?.killAt, CommitBarrier.limit + 10, "kill_timeout counts from the TERM")
        h.at(CommitBarrier.limit)
        XCTAssertEqual(h.told, [.leave])
        XCTAssertEqual(h.signals(to: 2), [.term])
    }

    func testNodesLeavingForGoodLeaveTheGroupExplicitly() {
        var h = Harness(nodes: 3)
        h.started()
        _ = h.command(.scale(.absolute(2)))
        XCTAssertEqual(h.told, [.hold, .hold, .hold, .leave], "every node commits, the leaving one too, then slot 2 leaves: nobody comes back for its membership")
        XCTAssertEqual(h.signals(to: 2), [.term], "told first, then TERM")
        h.exit(2, .exited(0))
        _ = h.command(.stop(now: false))
        h.allReport(.drained)
        XCTAssertEqual(h.told, [.leave, .leave], "a stopping swarm hands its partitions over at once")
    }

    func testAnUnchangedReloadReplacesNothing() {
        var h = Harness(nodes: 2)
        h.started()
        XCTAssertEqual(h.command(.reload(h.swarm.config))?.message, "configuration unchanged: nothing to do")
        XCTAssertEqual(h.signals, [])
        XCTAssertEqual(h.notified, [])
        XCTAssertEqual(h.swarm.mode, .running)
    }

    func testAReloadOfSwarmdsOwnSettingsAppliesInPlace() {
        var h = Harness(nodes: 2)
        h.started()
        var next = h.swarm.config
        next.supervisor.killTimeout = 3
        next.supervisor.memoryLimit = 1 << 30
        XCTAssertEqual(h.command(.reload(next))?.message, "reloaded: swarmd's own settings applied; no node replaced")
        XCTAssertEqual(h.signals, [])
        XCTAssertTrue(h.effects.contains(.useConfig(next)))
        XCTAssertEqual(h.swarm.config.supervisor.killTimeout, 3)
    }

    /// The upgrade handover (format 2) carries a roll in progress under the
    /// keys its fields had as `Swarm`'s own: a build of the same format reads it.
    func testARollInProgressSurvivesTheHandoverUnderTheKeysOfFormatTwo() throws {
        var h = Harness(nodes: 3)
        h.started()
        h.allReport()
        _ = h.command(.restart(slots: nil))
        XCTAssertEqual(h.swarm.roll.current, 0)
        XCTAssertEqual(h.swarm.roll.queue.map(\.slot), [1, 2])
        let json = try JSONValueEncoder().encode(h.swarm)
        for key in ["rollQueue", "rollCurrent", "rollStartedAt"] { XCTAssertNotNil(json[key], key) }
        XCTAssertNil(json["roll"])
        let back = try JSONValueDecoder().decode(Swarm.self, from: json)
        XCTAssertEqual(back.roll, h.swarm.roll)
        XCTAssertEqual(try JSONValueEncoder().encode(back), json, "nothing lost or added on the way")
    }

    /// A graceful stop's pause carries its two deadlines in `Mode`; the
    /// handover writes them under format 2's keys (`mode` as the payload-free
    /// name, `pauseDeadline`, `stopDeadline`), and the new swarmd keeps both.
    func testAPauseInProgressSurvivesTheHandoverWithItsDeadlines() throws {
        var h = Harness(nodes: 1)
        h.started()
        h.now = 5
        _ = h.command(.stop(now: false))
        XCTAssertEqual(h.swarm.mode, .pausing(until: 15, stopBy: 35))
        h.now = 6
        h.report(0)  // still working, not paused
        let json = try JSONValueEncoder().encode(h.swarm)
        func number(_ key: String) -> Double? { if case .number(let n)? = json[key] { return Double(n) } else { return nil } }
        XCTAssertEqual(number("pauseDeadline"), 15)
        XCTAssertEqual(number("stopDeadline"), 35)
        XCTAssertEqual(json["mode"], .object(["pausing": .object([:])]), "the payload-free enum format 2 wrote")
        var back = try JSONValueDecoder().decode(Swarm.self, from: json)
        XCTAssertEqual(back.mode, h.swarm.mode)
        XCTAssertEqual(back.nextDeadline(), 15)
        h.swarm = back
        h.at(15)
        XCTAssertEqual(h.signals, [.term], "the pause ended at its deadline after the handover")
        h.at(35)
        XCTAssertEqual(h.signals, [.kill], "and KILL at the stop's")
        back = try JSONValueDecoder().decode(Swarm.self, from: try JSONValueEncoder().encode(h.swarm))
        XCTAssertEqual(back.mode, .stopping)
    }

    func testARuntimeScaleSurvivesAReloadUnlessTheFilesNodesChanged() {
        var h = Harness(nodes: 2)
        h.started()
        _ = h.command(.scale(.absolute(3)))
        h.allReport()
        var next = h.swarm.config
        next.handler.batchSize = 9
        _ = h.command(.reload(next))
        XCTAssertEqual(h.swarm.wanted, 3, "the file's nodes did not change: swarmctl scale 3 stands")
        XCTAssertEqual(h.swarm.roll.queue.count + (h.swarm.roll.current == nil ? 0 : 1), 3, "all three roll onto the new handler settings")
        next.supervisor.nodes = 4
        _ = h.command(.reload(next))
        XCTAssertEqual(h.swarm.wanted, 4, "the file's nodes changed: the file wins")
    }

    // MARK: The log

    /// The shell renders each typed event to one line: the level follows
    /// what happened (an exit swarmd ordered is info, any other an error),
    /// and the metadata keys log pipelines filter on (`slot`, `pid`,
    /// `reason`, `event`, `uptime_s`, `waited_ms`) are there.
    func testLogEventsRenderToTheLinesOperatorsRead() {
        let node = SwarmLog.Node(slot: 3, pid: 4242)
        let crash = SwarmLog.crashLooping(node, failures: 3, healthyAfter: 10, last: "exited with status 1")
        XCTAssertEqual(crash.level, .error)
        XCTAssertEqual(crash.message, "slot 3 is crash-looping: 3 failures without 10 s of health; last: exited with status 1")
        XCTAssertEqual(crash.metadata, ["slot": "3", "pid": "4242", "event": "crash-loop", "failures": "3"])
        XCTAssertEqual(SwarmLog.exited(node, cause: "killed by KILL", ordered: false, uptime: 7).level, .error)
        XCTAssertEqual(SwarmLog.exited(node, cause: "exited with status 0 after stop: scaled down", ordered: true, uptime: 7).level, .info)
        XCTAssertEqual(SwarmLog.exited(node, cause: "x", ordered: true, uptime: 7).metadata["uptime_s"], "7")
        let moved = SwarmLog.moved(.init(slot: 0, pid: nil), from: .running, to: .stopping, reason: "hung", event: "stop")
        XCTAssertEqual(moved.message, "node running -> stopping")
        XCTAssertEqual(moved.metadata, ["slot": "0", "from": "running", "to": "stopping", "reason": "hung", "event": "stop"])
        XCTAssertEqual(SwarmLog.barrierLate(slots: [1, 2]).message,
                       "changing the group without every commit: slot(s) 1,2 did not confirm theirs within 5 s; what they handle meanwhile may be delivered again")
        XCTAssertEqual(SwarmLog.groupSettled(queued: 2, waitedMs: 1500).metadata, ["waited_ms": "1500"])
        XCTAssertEqual(SwarmLog.control(command: "scale", uid: 0, pid: 9, comm: "").metadata, ["peer_uid": "0", "peer_pid": "9"])
        XCTAssertEqual(SwarmLog.illegalMove(node, from: .backoff, event: "drain").level, .critical)
    }

    // MARK: Stopping

    func testAGracefulStopPausesEveryBuiltInNodeBeforeAnyTerm() {
        var h = Harness(nodes: 2)
        h.started()
        XCTAssertEqual(h.command(.stop(now: false))?.message, "stopping gracefully")
        XCTAssertEqual(h.notified, [.stopping])
        XCTAssertEqual(h.told, [.pause, .pause])
        XCTAssertEqual(h.signals, [])
        h.report(0, .drained)
        XCTAssertEqual(h.signals, [], "one paused, one still working")
        h.report(1, .drained)
        XCTAssertEqual(h.signals, [.term, .term])
        h.exit(0, .exited(0))
        h.exit(1, .exited(0))
        XCTAssertTrue(h.swarm.finished)
        XCTAssertFalse(h.swarm.anyKilledWhileStopping)
    }

    func testNodesThatDoNotPauseInTimeAreStoppedAnywayAndKilledAtTheShutdownDeadline() {
        var h = Harness(nodes: 1)
        h.started()
        _ = h.command(.stop(now: false))
        h.now = 5
        h.report(0)  // still working, not paused
        XCTAssertEqual(h.swarm.nextDeadline(), 10, "pause deadline: min(shutdown/2, 10)")
        h.at(10)
        XCTAssertTrue(h.logged.contains(.notPausedInTime))
        XCTAssertEqual(h.signals, [.term])
        h.at(30)
        XCTAssertEqual(h.signals, [.kill], "KILL at the shutdown deadline")
        h.exit(0, .signaled("KILL", coreDumped: false))
        XCTAssertTrue(h.swarm.finished)
        XCTAssertTrue(h.swarm.anyKilledWhileStopping, "swarmd exits 1")
    }

    func testNodeProgramsGetTermAtOnce() {
        var h = Harness(nodes: 2, builtIn: false)
        h.started()
        _ = h.command(.stop(now: false))
        XCTAssertEqual(h.told, [])
        XCTAssertEqual(h.signals, [.term, .term])
    }

    func testASecondStopSignalStopsNow() {
        var h = Harness(nodes: 1)
        h.started()
        _ = h.command(.stop(now: false), signal: "TERM")
        _ = h.command(.stop(now: false), signal: "TERM")
        XCTAssertTrue(h.logged.contains(.secondStopSignal))
        XCTAssertEqual(h.signals, [.quit])
        XCTAssertEqual(h.swarm.mode, .quitting)
    }

    func testQuitSendsQuitAndKillsAfterTheQuitTimeout() {
        var h = Harness(nodes: 2)
        h.started()
        _ = h.command(.stop(now: true))
        XCTAssertEqual(h.signals, [.quit, .quit])
        XCTAssertEqual(h.notified, [.stopping])
        h.at(2)
        XCTAssertEqual(h.signals, [.kill, .kill])
    }

    func testAStoppingSwarmTakesNoMoreCommandsButStillAnswersStatus() {
        var h = Harness(nodes: 1)
        h.started()
        _ = h.command(.stop(now: false))
        XCTAssertEqual(h.command(.scale(.absolute(3)))?.error?.code, "shutting-down")
        XCTAssertEqual(h.command(.stop(now: false))?.error?.code, "shutting-down")
        XCTAssertEqual(h.command(.status)?.status?.state, .stopping)
        XCTAssertEqual(h.spawns, [])
    }

    func testACrashWhileStoppingIsNotRestarted() {
        var h = Harness(nodes: 2)
        h.started()
        _ = h.command(.stop(now: false))
        h.exit(1, .signaled("SEGV", coreDumped: false))
        XCTAssertEqual(h.spawns, [])
        XCTAssertNil(h.swarm.slots[1])
    }

    // MARK: The table and the bookkeeping

    func testTheTransitionTableAllowsOnlyTheDrawnMovesAndDecidesTheNextState() {
        let p = NodeProcess(spawn: 1, pid: 10, now: 0)
        let term = StopOrder(reason: .restart, killAt: 5)
        let quit = StopOrder(reason: .quit, killAt: 3)
        let idle = NodeState.backoff(respawnAt: nil)
        XCTAssertEqual(idle.next(on: .spawned(p)), .starting(p))
        XCTAssertNil(idle.next(on: .stop(term)), "nothing to stop")
        XCTAssertNil(idle.next(on: .reportedRunning))
        XCTAssertNil(idle.next(on: .killed), "nothing to kill")
        XCTAssertNil(NodeState.stopping(p, term).next(on: .reportedRunning), "a stopping node stays stopping")
        XCTAssertNil(NodeState.running(p).next(on: .spawned(p)))
        XCTAssertNil(NodeState.running(p).next(on: .spawnAsked), "a slot with a process is never asked for another")
        XCTAssertEqual(NodeState.stopping(p, term).next(on: .stop(quit)), .stopping(p, quit), "TERM then QUIT")
        XCTAssertEqual(NodeState.stopping(p, term).next(on: .killed),
                       .stopping(p, StopOrder(reason: .restart, killAt: 5, killed: true)), "the KILL is remembered, once")
        XCTAssertEqual(NodeState.drained(p).next(on: .reportedRunning), .running(p), "resumed")
        XCTAssertEqual(NodeState.draining(p).next(on: .resume), .running(p))
        XCTAssertEqual(NodeState.backoff(respawnAt: 4).next(on: .spawnAsked), idle)
        XCTAssertEqual(idle.next(on: .spawnFailed(retryAt: 2)), .backoff(respawnAt: 2))
        for state: NodeState in [.starting(p), .running(p), .draining(p), .drained(p), .stopping(p, term)] {
            XCTAssertEqual(state.next(on: .exited(respawnAt: 7)), .backoff(respawnAt: 7), "\(state.phase)")
            XCTAssertEqual(state.next(on: .exited(respawnAt: 7))?.process, nil, "no process after an exit")
        }
    }

    func testEventsOfAReplacedProcessAreIgnored() {
        var h = Harness(nodes: 1)
        h.started()
        let old = h.spawn(0)!
        h.exit(0)
        h.send(.exited(spawn: old, cause: .exited(1)))
        XCTAssertEqual(h.spawns, [], "the old process's exit again: nothing")
        h.send(.report(spawn: old, NodeReport()))
        XCTAssertEqual(h.phase(0), .starting, "its report does not make the new one running")
    }

    func testMalformedReportsAreCountedAndTheirLogIsRateLimited() {
        var h = Harness(nodes: 1)
        h.started()
        var logged = 0
        for _ in 0..<100 {
            h.send(.malformedReport(spawn: h.spawn(0)!, why: "garbage"))
            logged += h.kinds.filter { $0 == "malformedReport" }.count
        }
        XCTAssertEqual(h.swarm.malformedReports, 100)
        XCTAssertEqual(logged, 20)
    }

    func testCountersSurviveRestarts() {
        var h = Harness(nodes: 1)
        h.started()
        h.report(0, handled: 40)
        h.exit(0)
        h.report(0, handled: 2)
        XCTAssertEqual(h.swarm.status(now: h.now).handled, 42)
    }

    /// One timer table: what the shell waits for and what a tick fires are the same list.
    func testTheTimerTableNamesEachDeadlineAndATickFiresOnlyTheDueOnes() {
        var h = Harness(nodes: 2)
        h.started()
        var table = Dictionary(uniqueKeysWithValues: h.swarm.deadlines())
        XCTAssertEqual(table[.report(slot: 0)], 10)
        XCTAssertEqual(table[.report(slot: 1)], 10)
        h.now = 9
        h.report(1)
        h.at(10)
        XCTAssertEqual(h.signals(to: 0), [.term], "slot 0's report deadline was due: hung")
        XCTAssertEqual(h.signals(to: 1), [], "slot 1's was not")
        table = Dictionary(uniqueKeysWithValues: h.swarm.deadlines())
        XCTAssertNil(table[.report(slot: 0)])
        XCTAssertEqual(table[.kill(slot: 0)], 20, "a stopping node waits for its KILL, not its report")
        XCTAssertEqual(table[.report(slot: 1)], 19)
        XCTAssertEqual(h.swarm.nextDeadline(), table.values.min())
        h.exit(0)
        table = Dictionary(uniqueKeysWithValues: h.swarm.deadlines())
        XCTAssertNil(table[.kill(slot: 0)], "it exited: nothing left to kill")
    }

    func testTheNextDeadlineIsTheEarliestOfRespawnsKillsAndReports() {
        var h = Harness(nodes: 2)
        h.started()
        XCTAssertEqual(h.swarm.nextDeadline(), 10, "report deadlines")
        h.exit(0)
        h.exit(0)
        XCTAssertEqual(h.swarm.nextDeadline(), 0.5, "a respawn")
    }
}

extension SwarmLog {
    /// The event's case name: what a test matches when the payload is not its point.
    var kind: String { Mirror(reflecting: self).children.first?.label ?? "\(self)" }
}

