#if canImport(Glibc)
import Glibc
#endif
import Logging
import Shared

/// One cgroup v2 child per node, where swarmd runs in a delegated cgroup v2
/// subtree (systemd `Delegate=yes`): the kernel then accounts each node's
/// whole tree (`memory.current`), enforces `memory_high`/`memory_max` per
/// node, and says when it OOM-killed one (`memory.events`).
///
/// Without a delegated v2 subtree (cgroup v1 or hybrid hosts, as the
/// machines these tests run on, or no write access), swarmd says why once
/// and accounts from /proc instead (`ProcessTree`); nothing else changes.
///
/// Layout, as cgroup v2's "no internal processes" rule requires: swarmd
/// moves itself into `<its cgroup>/supervisor`, enables the memory
/// controller for its children, and puts node `n` in `<its cgroup>/node-n`.
final class NodeCgroups {
    let root: String
    private var oomBefore: [Int: Int] = [:]

    /// Sets the subtree up, or returns nil and the reason it cannot.
    static func make(procSelfCgroup: String?, mountRoot: String = "/sys/fs/cgroup") -> (NodeCgroups?, String) {
        guard let text = procSelfCgroup, let path = CPUBudget.cgroupPath(text, controller: nil) else {
            return (nil, "no cgroup v2 entry in /proc/self/cgroup")
        }
        let dir = mountRoot + (path == "/" ? "" : path)
        guard let controllers = try? readTextFile(dir + "/cgroup.controllers") else {
            return (nil, "\(mountRoot) is not a cgroup v2 hierarchy (cgroup v1 or hybrid host)")
        }
        guard controllers.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("memory") else {
            return (nil, "the memory controller is not available in \(dir) (not delegated: systemd's Delegate=yes gives it)")
        }
        guard access(dir, W_OK) == 0 else { return (nil, "\(dir) is not writable by swarmd (Delegate=yes makes it so)") }
        mkdir(dir + "/supervisor", 0o755)
        guard Self.write(dir + "/supervisor/cgroup.procs", "\(getpid())") else {
            return (nil, "cannot move swarmd into \(dir)/supervisor: \(errnoText())")
        }
        guard Self.write(dir + "/cgroup.subtree_control", "+memory") else {
            return (nil, "cannot enable the memory controller below \(dir): \(errnoText())")
        }
        return (NodeCgroups(root: dir), "each node in its own cgroup under \(dir)")
    }

    private init(root: String) { self.root = root }

    private func dir(_ slot: Int) -> String { "\(root)/node-\(slot)" }

    /// Puts a freshly spawned node in its slot's cgroup, with the slot's limits.
    func adopt(pid: Int32, slot: Int, high: Int64, max: Int64) -> String? {
        let d = dir(slot)
        mkdir(d, 0o755)
        guard Self.write(d + "/cgroup.procs", "\(pid)") else { return "cannot move node \(pid) into \(d): \(errnoText())" }
        _ = Self.write(d + "/memory.high", high > 0 ? "\(high)" : "max")
        _ = Self.write(d + "/memory.max", max > 0 ? "\(max)" : "max")
        oomBefore[slot] = oomKills(slot: slot) ?? 0
        return nil
    }

    /// What the kernel charges the slot's cgroup now.
    func current(slot: Int) -> Int64? {
        (try? readTextFile(dir(slot) + "/memory.current")).flatMap { Int64($0.filter { $0 != "\n" }) }
    }

    func oomKills(slot: Int) -> Int? {
        (try? readTextFile(dir(slot) + "/memory.events")).flatMap { Self.parseEvents($0)["oom_kill"] }
    }

    /// True when the kernel OOM-killed something in the slot's cgroup since its node was adopted.
    func wasOOMKilled(slot: Int) -> Bool {
        (oomKills(slot: slot) ?? 0) > (oomBefore[slot] ?? 0)
    }

    /// `memory.events`: "low 0\nhigh 3\nmax 1\noom 1\noom_kill 1\n".
    static func parseEvents(_ text: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let n = Int(f[1]) { out[String(f[0])] = n }
        }
        return out
    }

    @discardableResult
    static func write(_ path: String, _ text: String) -> Bool {
        // O_CREAT changes nothing on cgroupfs, where these files always exist.
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return writeAll(fd, text)
    }
}
