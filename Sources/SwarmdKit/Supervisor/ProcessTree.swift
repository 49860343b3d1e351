#if canImport(Glibc)
import Glibc
#endif
import Shared

/// A node is its whole process tree: the node and everything its handler
/// started. This reads what each tree costs in memory, for all nodes in one
/// pass over /proc.
///
/// Why PSS is what `memory_limit` compares: RSS counts every shared page in
/// full in every process that maps it, so a swarm of statically linked
/// nodes would each be charged the whole 12 MB binary (a built-in node's RSS
/// is ~14.6 MB while its PSS is ~2.2 MB), and a handler that forks workers
/// sharing pages copy-on-write would be charged them once per worker (the
/// misfire of Puma's worker killer, PM2 #2391, Gunicorn #3581). PSS splits
/// each shared page among the processes that share it, so the PSS of all
/// nodes adds up to what the swarm really uses. USS (private pages only)
/// would miss what a leaking handler shares with its own children.
enum ProcessTree {
    /// One process of a node's tree, as read here (the core's type: `NodeMemory`).
    typealias Process = NodeMemory.Process

    /// The numeric entries of a /proc directory (process or thread ids); nil if it cannot be opened.
    private static func ids(in directory: String) -> [Int32]? {
        guard let dir = opendir(directory) else { return nil }
        defer { closedir(dir) }
        var out: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let id = Int32(name) { out.append(id) }
        }
        return out
    }

    /// The ppid and name of every process, from /proc/PID/stat.
    static func table() -> [Int32: (ppid: Int32, name: String)] {
        var out: [Int32: (ppid: Int32, name: String)] = [:]
        for pid in ids(in: "/proc") ?? [] { out[pid] = readStat(pid) }
        return out
    }

    /// A process's parent, from /proc/PID/stat; nil once it is gone.
    static func parent(of pid: Int32) -> Int32? { readStat(pid)?.ppid }

    /// The ppid and name in /proc/PID/stat, "pid (comm) state ppid …": comm
    /// may hold spaces and parentheses, so the fields are split after the last ')'.
    private static func readStat(_ pid: Int32) -> (ppid: Int32, name: String)? {
        guard let stat = try? readTextFile("/proc/\(pid)/stat"),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        guard rest.count > 1, let ppid = Int32(rest[1]) else { return nil }
        return (ppid, String(stat[stat.index(after: open)..<close]))
    }

    /// The direct children of `pid`, from /proc/PID/task/TID/children (one
    /// short read per thread, where `table()` reads every process on the
    /// machine: about a millisecond on a quiet one, and swarmd reaps on every
    /// SIGCHLD, a node's death included). nil where the kernel does not
    /// offer the file (CONFIG_PROC_CHILDREN), so the caller falls back.
    static func children(of pid: Int32) -> [Int32]? {
        guard let threads = ids(in: "/proc/\(pid)/task") else { return nil }
        var out: [Int32] = []
        for tid in threads {
            guard let text = try? readTextFile("/proc/\(pid)/task/\(tid)/children") else { return nil }
            out += text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        }
        return out
    }

    /// A process's name, from /proc/PID/comm; "?" once it is gone.
    static func name(of pid: Int32) -> String {
        (try? readTextFile("/proc/\(pid)/comm")).flatMap { $0.split(separator: "\n").first.map(String.init) } ?? "?"
    }

    /// Every process below `root` (not `root` itself), parents before children.
    static func descendants(of root: Int32, in table: [Int32: (ppid: Int32, name: String)]) -> [Int32] {
        var children: [Int32: [Int32]] = [:]
        for (pid, entry) in table { children[entry.ppid, default: []].append(pid) }
        var out: [Int32] = []
        var queue = (children[root] ?? []).sorted()
        while !queue.isEmpty {
            let pid = queue.removeFirst()
            out.append(pid)
            queue += (children[pid] ?? []).sorted()
        }
        return out
    }

    /// RSS and PSS of one process, from /proc/PID/smaps_rollup (one page-table
    /// walk by the kernel); nil if it is gone.
    static func usage(_ pid: Int32) -> (rss: Int64, pss: Int64)? {
        guard let text = try? readTextFile("/proc/\(pid)/smaps_rollup") else { return nil }
        var rss: Int64?, pss: Int64?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("Rss:") { rss = kilobytes(line) }
            if line.hasPrefix("Pss:") { pss = kilobytes(line) }
            if rss != nil && pss != nil { break }
        }
        guard let rss, let pss else { return nil }
        return (rss, pss)
    }

    private static func kilobytes(_ line: Substring) -> Int64? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        return fields.count >= 2 ? Int64(fields[1]).map { Int64(saturating: Double($0) * 1024) } : nil
    }

    /// The memory of each node's tree, node first, for the given node pids.
    static func memory(of roots: [Int32]) -> [Int32: NodeMemory] {
        let t = table()
        var out: [Int32: NodeMemory] = [:]
        for root in roots {
            var processes: [Process] = []
            for pid in [root] + descendants(of: root, in: t) {
                guard let u = usage(pid) else { continue }
                processes.append(Process(pid: pid, name: t[pid]?.name ?? "?", rss: u.rss, pss: u.pss))
            }
            if !processes.isEmpty { out[root] = NodeMemory(processes: processes, hasPSS: true) }
        }
        return out
    }

    /// A cheaper look for `swarmctl status` when no limit needs PSS: each
    /// process's children from its main thread's `children` file (a handler
    /// is started by the node's main thread) and its RSS from `statm`, a few
    /// small reads per process instead of a pass over /proc and a page-table
    /// walk each. The full pass is several times slower per status
    /// (BENCHMARKS.md, "Figures behind the code"), so it is kept for the
    /// memory limit, which needs PSS.
    static func quickMemory(of roots: [Int32]) -> [Int32: NodeMemory] {
        var out: [Int32: NodeMemory] = [:]
        for root in roots {
            var processes: [Process] = []
            var queue = [root]
            while !queue.isEmpty, processes.count < 1000 {
                let pid = queue.removeFirst()
                guard let rss = residentBytes(pid: pid) else { continue }
                let name = (try? readTextFile("/proc/\(pid)/comm"))?.filter { $0 != "\n" } ?? "?"
                processes.append(Process(pid: pid, name: name, rss: rss, pss: 0))
                if let children = try? readTextFile("/proc/\(pid)/task/\(pid)/children") {
                    queue += children.split(separator: " ").compactMap { Int32($0.filter { $0 != "\n" }) }
                }
            }
            if !processes.isEmpty { out[root] = NodeMemory(processes: processes, hasPSS: false) }
        }
        return out
    }

    /// KILL for every process below a node (after the node itself was
    /// killed): a handler that ignores EOF must not outlive its node.
    static func killDescendants(of root: Int32) {
        for pid in descendants(of: root, in: table()) { kill(pid, SIGKILL) }
    }
}
