#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux

/// `nodes = "auto"`: as many nodes as CPUs swarmd may use, which is its
/// affinity mask (taskset, systemd's CPUAffinity=, a container's cpuset)
/// capped by its cgroup's CPU quota (systemd's CPUQuota=, a Kubernetes CPU
/// limit), not the host's core count: nginx's `worker_processes auto`
/// counts every core of the host and over-subscribes a container.
///
/// A fractional quota rounds up (1.5 CPUs give 2 nodes, each throttled to
/// its share): rounding down would leave the half CPU unused by CPU-bound
/// work, which is what a swarm is for.
public struct CPUBudget: Equatable, Sendable {
    public var nodes: Int
    /// How the number was found, for the start-up log and `--check`.
    public var derivation: String

    /// Decides from what was read; pure, so tests give it any machine.
    public static func decide(affinity: Int, quota: Double?) -> CPUBudget {
        let cpus = max(1, affinity)
        let mask = "\(cpus) CPU\(cpus == 1 ? "" : "s") in swarmd's affinity mask"
        guard let quota, quota > 0 else { return CPUBudget(nodes: min(cpus, SupervisorSettings.maxNodes), derivation: "\(mask), no cgroup CPU quota") }
        let byQuota = max(1, Int(saturating: quota.rounded(.up)))
        let n = min(cpus, byQuota, SupervisorSettings.maxNodes)
        let q = (quota * 100).rounded() / 100
        return CPUBudget(nodes: n, derivation: "\(mask), cgroup CPU quota \(q) CPU\(q == 1 ? "" : "s")")
    }

    /// Reads this machine: the affinity mask, and the tightest quota of swarmd's cgroup and its ancestors.
    public static func current() -> CPUBudget {
        decide(affinity: Int(swarm_affinity_cpus()), quota: currentQuota())
    }

    /// cgroup v2 `cpu.max` ("max 100000" or "150000 100000") in CPUs; nil for no limit.
    public static func parseCPUMax(_ text: String) -> Double? {
        let f = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard f.count == 2, f[0] != "max", let quota = Double(f[0]), let period = Double(f[1]), period > 0 else { return nil }
        return quota / period
    }

    /// cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` in CPUs; nil for no limit (-1).
    public static func parseCFS(quota: String, period: String) -> Double? {
        guard let q = Double(quota.filter { $0 != "\n" }), q > 0,
              let p = Double(period.filter { $0 != "\n" }), p > 0 else { return nil }
        return q / p
    }

    /// The cgroup path of this process for a v1 controller ("cpu") or v2 (nil), from /proc/self/cgroup.
    public static func cgroupPath(_ procSelfCgroup: String, controller: String?) -> String? {
        for line in procSelfCgroup.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if let controller {
                if parts[1].split(separator: ",").contains(Substring(controller)) { return String(parts[2]) }
            } else if parts[0] == "0" && parts[1].isEmpty {
                return String(parts[2])
            }
        }
        return nil
    }

    private static func currentQuota() -> Double? {
        guard let cgroups = try? readTextFile("/proc/self/cgroup") else { return nil }
        var tightest: Double?
        func consider(_ q: Double?) { if let q { tightest = min(tightest ?? q, q) } }
        func ancestors(_ path: String) -> [String] {
            var out: [String] = []
            var p = path
            while true {
                out.append(p)
                guard let slash = p.lastIndex(of: "/"), p != "/" else { break }
                p = slash == p.startIndex ? "/" : String(p[..<slash])
            }
            return out
        }
        if let v2 = cgroupPath(cgroups, controller: nil) {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                for dir in ancestors(v2) {
                    consider((try? readTextFile(root + (dir == "/" ? "" : dir) + "/cpu.max")).flatMap(parseCPUMax))
                }
            }
        }
        if let v1 = cgroupPath(cgroups, controller: "cpu") {
            for dir in ancestors(v1) {
                let base = "/sys/fs/cgroup/cpu" + (dir == "/" ? "" : dir)
                if let q = try? readTextFile(base + "/cpu.cfs_quota_us"), let p = try? readTextFile(base + "/cpu.cfs_period_us") {
                    consider(parseCFS(quota: q, period: p))
                }
            }
        }
        return tightest
    }
}
