import Logging
import Shared

/// What the core has to say to the log, as typed events: the shell renders
/// each to one line (`level`, `message`, `metadata`); tests and anything
/// else that reads them match the case, never the wording.
///
/// The wording is for operators and may change; the metadata keys (`slot`,
/// `pid`, `reason`, `event`, ...) are what log pipelines filter on, and stay.
enum SwarmLog: Equatable {
    /// A node, as the log names it: its slot, and its pid while it has a process.
    struct Node: Equatable {
        var slot: Int
        var pid: Int32?
    }

    // Commands
    case commandIgnored(signal: String, why: String)
    case control(command: String, uid: UInt32, pid: Int32, comm: String)
    case secondStopSignal
    case autoscaleSuspended(nodes: Int)
    case autoscaleSwitched(on: Bool)
    case reloadUnchanged
    case reloadedInPlace(nodes: Int)
    case reloadRolling(nodes: Int)
    case reloadComplete
    case autoscaled(from: Int, to: Int, reason: String)
    case sizeChanged(from: Int, to: Int, reason: String)

    // A node's life
    case moved(Node, from: NodeState.Phase, to: NodeState.Phase, reason: String, event: String)
    case illegalMove(Node, from: NodeState.Phase, event: String)
    case strangerKilled(slot: Int, pid: Int32, spawn: Int)
    case spawnFailed(Node, error: String, retryIn: Double)
    case exited(Node, cause: String, ordered: Bool, uptime: Int)
    case slotRemoved(slot: Int, swarmStopping: Bool)
    case crashLooping(Node, failures: Int, healthyAfter: Double, last: String)
    case recovered(Node, healthyFor: Double)
    case malformedReport(Node?, why: String, count: Int)
    case unhealthy(Node, reason: Int, detail: String)
    case overMemory(Node, detail: String)
    case hung(Node, after: Double)
    case killedAtDeadline(Node)

    // Group changes
    case changeWaits
    case changesUnsettled(missing: String)
    case groupSettled(queued: Int, waitedMs: Int)
    case barrierLate(slots: [Int])
    case barrierPassed(waitedMs: Int)
    case rollingOn(Node, readyTimeout: Double)

    // Readiness and stop
    case ready(nodes: Int)
    case readyByTimeout(readyTimeout: Double, missing: String)
    case pausing
    case notPausedInTime

    var level: Logger.Level {
        switch self {
        case .control, .secondStopSignal, .autoscaleSuspended, .autoscaleSwitched, .reloadUnchanged, .reloadedInPlace,
             .reloadRolling, .reloadComplete, .autoscaled, .sizeChanged, .recovered, .ready:
            return .notice
        case .moved, .slotRemoved, .changeWaits, .groupSettled, .barrierPassed, .pausing:
            return .info
        case .exited(_, _, let ordered, _):
            return ordered ? .info : .error
        case .commandIgnored, .malformedReport, .overMemory, .killedAtDeadline, .changesUnsettled, .barrierLate,
             .rollingOn, .readyByTimeout, .notPausedInTime:
            return .warning
        case .strangerKilled, .spawnFailed, .crashLooping, .unhealthy, .hung:
            return .error
        case .illegalMove:
            return .critical
        }
    }

    var message: String {
        switch self {
        case .commandIgnored(let signal, let why): return "\(signal) ignored: \(why)"
        case .control(let command, _, _, _): return "control: \(command)"
        case .secondStopSignal: return "second stop signal: stopping now"
        case .autoscaleSuspended: return "autoscaling suspended by a manual scale"
        case .autoscaleSwitched(let on): return on ? "autoscaling resumed" : "autoscaling turned off by the operator"
        case .reloadUnchanged: return "configuration reloaded: unchanged, nothing to do"
        case .reloadedInPlace: return "configuration reloaded: only swarmd's own settings changed; no node replaced"
        case .reloadRolling: return "configuration reloaded; replacing nodes one at a time"
        case .reloadComplete: return "reload complete: every node runs the new configuration"
        case .autoscaled(let from, let to, let reason): return "autoscale \(from) -> \(to): \(reason)"
        case .sizeChanged(let from, let to, _): return "swarm size \(from) -> \(to)"
        case .moved(_, let from, let to, _, _): return "node \(from.rawValue) -> \(to.rawValue)"
        case .illegalMove(_, let from, let event): return "refused illegal node transition from \(from.rawValue) on \(event)"
        case .strangerKilled: return "a node started that no slot waits for: killed"
        case .spawnFailed(_, let error, let delay): return "cannot spawn node: \(error); retrying in \(delay) s"
        case .exited(_, let cause, _, _): return "node exited: \(cause)"
        case .slotRemoved: return "node slot removed"
        case .crashLooping(let n, let failures, let healthyAfter, let last):
            return "slot \(n.slot) is crash-looping: \(failures) failures without \(Autoscaler.seconds(healthyAfter)) of health; last: \(last)"
        case .recovered(let n, let healthyFor):
            return "slot \(n.slot) recovered: healthy for \(Autoscaler.seconds(healthyFor)) after crash-looping"
        case .malformedReport(_, let why, _): return "malformed report ignored: \(why)"
        case .unhealthy(_, let reason, let detail):
            return "node reports itself unhealthy: \(UnhealthyReason.describe(reason))\(detail.isEmpty ? "" : " (\(detail))")"
        case .overMemory(_, let detail): return "node over memory limit: \(detail); restarting it gracefully"
        case .hung(_, let after): return "node hung: no report for \(after) s"
        case .killedAtDeadline: return "node did not stop in time: KILL"
        case .changeWaits: return "group change waits for the previous one to settle"
        case .changesUnsettled(let missing):
            return "group changes go out before the group settled: it still rebalances after \(Autoscaler.seconds(SettleGate.limit)) (\(missing))"
        case .groupSettled(let queued, _): return "group settled: \(queued) queued change(s) go out together"
        case .barrierLate(let slots):
            return "changing the group without every commit: slot(s) \(slots.map(String.init).joined(separator: ",")) did not confirm theirs "
                + "within \(Autoscaler.seconds(CommitBarrier.limit)); what they handle meanwhile may be delivered again"
        case .barrierPassed: return "commit barrier passed: the group changes now"
        case .rollingOn(_, let t): return "rolling on: the replacement did not consume within ready_timeout (\(t) s)"
        case .ready(let nodes): return "swarm ready: all \(nodes) nodes consume (joined the group and assigned)"
        case .readyByTimeout(let t, let missing): return "swarm ready by ready_timeout (\(t) s), not consuming: \(missing)"
        case .pausing: return "stopping: pausing every node so all commit before any leaves the group"
        case .notPausedInTime: return "not every node paused in time; stopping them anyway"
        }
    }

    var metadata: [String: String] {
        func node(_ n: Node?) -> [String: String] {
            guard let n else { return [:] }
            var m = ["slot": "\(n.slot)"]
            if let pid = n.pid { m["pid"] = "\(pid)" }
            return m
        }
        switch self {
        case .control(_, let uid, let pid, let comm):
            var m = ["peer_uid": "\(uid)", "peer_pid": "\(pid)"]
            if !comm.isEmpty { m["peer_comm"] = comm }
            return m
        case .autoscaleSuspended(let nodes), .reloadedInPlace(let nodes), .reloadRolling(let nodes):
            return ["nodes": "\(nodes)"]
        case .sizeChanged(_, _, let reason):
            return ["reason": reason]
        case .moved(let n, let from, let to, let reason, let event):
            return node(n).merging(["from": from.rawValue, "to": to.rawValue, "reason": reason, "event": event]) { $1 }
        case .strangerKilled(let slot, let pid, let spawn):
            return ["slot": "\(slot)", "pid": "\(pid)", "spawn": "\(spawn)"]
        case .exited(let n, _, _, let uptime):
            return node(n).merging(["uptime_s": "\(uptime)"]) { $1 }
        case .slotRemoved(let slot, let stopping):
            return ["slot": "\(slot)", "reason": stopping ? "swarm stopping" : "scaled down"]
        case .crashLooping(let n, let failures, _, _):
            return node(n).merging(["event": "crash-loop", "failures": "\(failures)"]) { $1 }
        case .recovered(let n, _):
            return node(n).merging(["event": "crash-loop-recovered"]) { $1 }
        case .malformedReport(let n, _, let count):
            return node(n).merging(["count": "\(count)"]) { $1 }
        case .illegalMove(let n, _, _), .spawnFailed(let n, _, _), .unhealthy(let n, _, _), .overMemory(let n, _),
             .hung(let n, _), .killedAtDeadline(let n), .rollingOn(let n, _):
            return node(n)
        case .changeWaits:
            return ["limit_s": "\(SettleGate.limit)"]
        case .groupSettled(_, let ms), .barrierPassed(let ms):
            return ["waited_ms": "\(ms)"]
        case .commandIgnored, .secondStopSignal, .autoscaleSwitched, .reloadUnchanged, .reloadComplete, .autoscaled,
             .changesUnsettled, .barrierLate, .ready, .readyByTimeout, .pausing, .notPausedInTime:
            return [:]
        }
    }
}
