import Foundation
import Shared
@testable import SwarmdKit

/// Drives the pure core with events drawn from a generator, the way the
/// shell would, and checks the core's invariants after every event. Used by
/// `SwarmFuzzTests` with a seeded generator and by the libFuzzer target
/// (`scripts/fuzz core`, Fuzz/) with the fuzzer's own bytes: one driver, so
/// a longer run on demand checks exactly what the suite does.
struct SwarmFuzzDriver {
    static let configs = [
        "[supervisor]\nnodes = 3\nreport_timeout = 5\nkill_timeout = 2\nrestart_backoff_max = 4\ncrash_loop_after = 2\n",
        "[supervisor]\nnodes = 1\n[autoscale]\nenabled = true\nmin = 1\nmax = 6\ntarget_drain_seconds = 5\ncooldown_up = 5\ncooldown_down = 10\n",
        "[supervisor]\nnodes = 4\nmemory_limit = \"64MiB\"\nready_timeout = 3\n[handler]\nkind = \"cpu\"\n",
        "[supervisor]\nnodes = 2\nnode_command = [\"/bin/true\"]\nreport_timeout = 2\n",
        "[supervisor]\nnodes = 5\n",
    ].map { $0 + "[kafka.properties]\n\"bootstrap.servers\" = \"embedded\"\n" }
        + ["[supervisor]\nnodes = 3\n[kafka.properties]\n\"bootstrap.servers\" = \"embedded\"\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n"]

    static func config(_ text: String) -> SwarmConfig { try! ConfigLoader(path: "fuzz.toml").parse(text) }

    /// One session: a swarm from one of `configs`, started, then `events`
    /// events drawn from `rng`, with an in-place upgrade's handover (the
    /// whole state through JSON) now and then. Returns the driver to say
    /// how many events it sent; throws at the first broken invariant.
    /// `renderEvery`: how often every view is rendered from the state
    /// reached (a render of a 1,024-node swarm costs tens of milliseconds
    /// under ASan, so libFuzzer renders once, at the end).
    static func session(_ rng: inout some RandomNumberGenerator, events: Int, renderEvery: Int = 20) throws -> SwarmFuzzDriver {
        var d = SwarmFuzzDriver(swarm: Swarm(config: config(rng.pick(configs)), pid: 42, now: 0))
        d.renderEvery = renderEvery
        try d.send(.start, &rng)
        for _ in 0..<events {
            try d.send(d.randomEvent(&rng), &rng)
            if rng.chance(0.01) {
                let bytes = try JSONValueEncoder().encode(d.swarm)
                d.swarm = try JSONValueDecoder().decode(Swarm.self, from: bytes)
            }
        }
        d.renderViews()
        return d
    }

    var renderEvery = 20
    var swarm: Swarm
    var now = 0.0
    var nextSpawn = 1
    var pendingSpawns: [Int] = []
    var events = 0

    /// Feeds one event through `SwarmDriver`, swarmd's own loop, and checks
    /// the invariants after each event it handles; the shell's answer to a
    /// spawn is drawn from `rng`.
    mutating func send(_ event: SwarmEvent, _ rng: inout some RandomNumberGenerator) throws {
        var failure: Error?
        let trace = ProcessInfo.processInfo.environment["SWARM_FUZZ_TRACE"] == "2"
        let now = self.now
        SwarmDriver.feed(event, handle: { e in
            events += 1
            if trace { FileHandle.standardError.write("\(now) \(String(describing: e).prefix(300))\n".data(using: .utf8)!) }
            let effects = swarm.handle(e, now: now)
            guard failure == nil else { return [] }
            // A process the shell started is the core's node, or the core kills it:
            // never one running unseen under a slot's name.
            if case .spawned(let slot, let spawn, _) = e, swarm.slot(ofSpawn: spawn)?.process?.spawn != spawn,
               !effects.contains(.signal(spawn: spawn, .kill)) {
                failure = FuzzFailure("spawn \(spawn) for slot \(slot) started, and the core neither tracks nor kills it")
            }
            do { try checkInvariants(after: e) } catch { failure = failure ?? error }
            return effects
        }, carryOut: { effect in
            guard case .spawn(let slot) = effect else { return [] }
            // The shell answers a spawn at once, fails it, or (rarely) late.
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: return [.spawnFailed(slot: slot, error: "cannot start: fuzz")]
            case 1: pendingSpawns.append(slot); return []
            default:
                nextSpawn += 1
                return [.spawned(slot: slot, spawn: nextSpawn - 1, pid: Int32(1000 + nextSpawn - 1))]
            }
        })
        if let failure { throw failure }
    }

    func checkInvariants(after event: SwarmEvent) throws {
        let s = swarm
        guard s.wanted >= 0 && s.wanted <= SupervisorSettings.maxNodes else {
            throw FuzzFailure("wanted \(s.wanted) out of bounds after \(event)")
        }
        var spawns: Set<Int> = []
        for (id, slot) in s.slots {
            guard slot.id == id else { throw FuzzFailure("slot \(id) holds id \(slot.id)") }
            guard id >= 0 && id < SupervisorSettings.maxNodes else { throw FuzzFailure("slot id \(id) out of range") }
            if let p = slot.process {
                guard spawns.insert(p.spawn).inserted else { throw FuzzFailure("spawn \(p.spawn) in two slots after \(event)") }
                guard s.slot(ofSpawn: p.spawn)?.id == id else { throw FuzzFailure("spawn \(p.spawn) does not map back to slot \(id)") }
            }
        }
        if case .tick = event, let next = s.nextDeadline(), next <= now, !s.finished {
            throw FuzzFailure("after a tick at \(now) the next deadline is \(next), not in the future: the shell would spin; mode \(s.mode), "
                          + "barrier \(String(describing: s.barrier)), gate \(String(describing: s.gate)), roll \(String(describing: s.roll.current)), "
                          + "ready \(s.readySent), slots \(s.slots.values.map { "\($0.id): \($0.state)" })")
        }
        // Every view renders, from any state: after every 20th event (each
        // render costs about a millisecond in a debug build; the states
        // between two looks are what the invariants above are for).
        if events % renderEvery == 0 { renderViews() }
    }

    /// Status, its table and JSON, /metrics, the page and the status line.
    func renderViews() {
        let status = swarm.status(now: now)
        _ = StatusTable.render(status)
        _ = StatusJSON.document(status)
        _ = Metrics.exposition(swarm: swarm, status: status)
        _ = WebPage.summary(status)
        _ = swarm.statusLine()
    }

    /// A report within the range the parser admits (NodeReport.parse), biased to its edges.
    static func report(_ rng: inout some RandomNumberGenerator) -> NodeReport {
        var r = NodeReport()
        let max = NodeReport.maxCount
        r.health = rng.chance(0.05) ? .unhealthy : .ok
        r.reason = Int(rng.edgy(0, 5))
        r.state = rng.pick([.starting, .running, .running, .running, .draining, .drained, .stopping])
        r.kafka = rng.chance(0.1) ? nil : rng.pick(KafkaCondition.allCases)
        r.handled = rng.edgy(0, max)
        r.failed = rng.edgy(0, max)
        r.inflight = rng.edgy(0, max)
        r.inflightAgeMs = rng.edgy(0, max)
        r.partitions = rng.edgy(0, 300)
        r.pollAgeMs = rng.edgy(0, max)
        r.lag = rng.edgy(-1, max)
        r.retried = rng.edgy(0, max)
        r.deadLettered = rng.edgy(0, max)
        r.rebalances = rng.edgy(0, max)
        r.holds = rng.edgy(0, 50)
        if rng.chance(0.5) {
            r.batchBuckets = (0...NodeReport.batchBucketsMs.count).map { _ in rng.edgy(0, max) }
            r.batchSumMs = rng.edgy(0, max)
        }
        for p in 0..<Int32(rng.edgy(0, 12)) {
            r.partitionLag[TopicPartition(topic: rng.pick(["a", "b"]), partition: p)] = rng.edgy(-1, max)
        }
        if rng.chance(0.1) { r.stuck = [TopicPartition(topic: "a", partition: 0)] }
        return r
    }

    mutating func randomEvent(_ rng: inout some RandomNumberGenerator) -> SwarmEvent {
        // Sorted: a dictionary's order changes from process to process, and a seed must replay.
        let live = swarm.slots.values.compactMap(\.process?.spawn).sorted()
        let spawn = live.isEmpty || rng.chance(0.05) ? Int(rng.edgy(0, 10_000)) : rng.pick(live)
        let slotIds = swarm.slots.keys.sorted()
        func someSlots() -> [Int]? {
            rng.chance(0.3) ? nil : (0..<Int.random(in: 1...3, using: &rng)).map { _ in
                slotIds.isEmpty || rng.chance(0.1) ? Int(rng.edgy(-2, 2000)) : rng.pick(slotIds)
            }
        }
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<40: return .report(spawn: spawn, Self.report(&rng))
        case 40..<52:
            // Time: a little, a report interval, a timeout, or far ahead (a suspended machine).
            now += rng.pick([0, 0.001, 0.2, 1, 1, 1, 5, 11, 60, 3600, 86_400 * 30])
            return .tick
        case 52..<60:
            return .exited(spawn: spawn, cause: rng.pick([.exited(0), .exited(1), .exited(78), .signaled("KILL", coreDumped: false),
                                                          .signaled("SEGV", coreDumped: true), .other(code: 9, status: 9), .oomKilled]))
        case 60..<63:
            let m = NodeMemory(processes: [ProcessTree.Process(pid: 1, name: "n", rss: rng.edgy(0, Int64.max / 4), pss: rng.edgy(0, Int64.max / 4)),
                                           ProcessTree.Process(pid: 2, name: "h", rss: rng.edgy(0, Int64.max / 4), pss: rng.edgy(0, Int64.max / 4))],
                               cgroupBytes: rng.chance(0.5) ? nil : rng.edgy(0, Int64.max))
            return .memory(spawn: spawn, m)
        case 63..<65: return .malformedReport(spawn: spawn, why: "fuzz")
        case 65..<67:
            if !pendingSpawns.isEmpty {
                let slot = pendingSpawns.removeFirst()
                nextSpawn += 1
                return .spawned(slot: slot, spawn: nextSpawn - 1, pid: Int32(1000 + nextSpawn))
            }
            // A spawn answer for a slot that asked for none.
            nextSpawn += 1
            return .spawned(slot: Int(rng.edgy(0, 20)), spawn: nextSpawn - 1, pid: 7)
        case 67..<69: return .start
        default:
            let origin: CommandOrigin = rng.chance(0.5) ? .signal(rng.pick(["TTIN", "TTOU", "HUP", "USR1"])) : .control(uid: 0, pid: 1)
            let command: SwarmCommand
            switch Int.random(in: 0..<11, using: &rng) {
            case 0: command = .status
            // Mostly small swarms; now and then the bounds (1,024 is the most).
            case 1: command = .scale(.absolute(rng.chance(0.02) ? rng.pick([0, 1024, 1025]) : Int(rng.edgy(-5, 24))))
            case 2: command = .scale(.relative(rng.pick([1, -1, 3, -3, Int.max, Int.min + 1])))
            case 3: command = .drain(slots: someSlots())
            case 4: command = .resume(slots: someSlots())
            case 5: command = .restart(slots: someSlots())
            case 6:
                command = .reload(Self.config(rng.pick(Self.configs)))
            case 7: command = .autoscale(on: rng.chance(0.5))
            case 8 where rng.chance(0.3): command = .stop(now: rng.chance(0.5))
            default: command = .scale(.relative(rng.chance(0.5) ? 1 : -1))
            }
            return .command(command, from: origin)
        }
    }
}

/// A broken invariant or property, with what broke it.
struct FuzzFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
