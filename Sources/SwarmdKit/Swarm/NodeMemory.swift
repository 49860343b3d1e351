import Shared

/// What one node's process tree uses, as the core keeps it (the shell reads
/// it from /proc: `ProcessTree`); `memory_limit` is judged on it.
struct NodeMemory: Equatable, Codable {
    /// One process of the tree: what `ProcessTree` reads from /proc.
    struct Process: Equatable, Codable {
        var pid: Int32
        var name: String
        var rss: Int64
        var pss: Int64
    }

    /// The node first, then its handler and whatever that started.
    var processes: [Process]

    /// What the kernel charges the node's own cgroup, where nodes have one (`NodeCgroups`).
    var cgroupBytes: Int64?
    /// False for `quickMemory`'s RSS-only reading.
    var hasPSS = true

    init(processes: [Process], cgroupBytes: Int64? = nil, hasPSS: Bool = true) {
        self.processes = processes
        self.cgroupBytes = cgroupBytes
        self.hasPSS = hasPSS
    }

    /// The tree's PSS (see `ProcessTree`).
    var pss: Int64 { processes.reduce(0) { $0.addingSaturating($1.pss) } }
    /// What `memory_limit` compares: the cgroup's charge where there is one, else the PSS.
    var charged: Int64 { cgroupBytes ?? pss }
    /// Over-counts shared pages; shown because every tool shows it.
    var rss: Int64 { processes.reduce(0) { $0.addingSaturating($1.rss) } }

    /// Which process uses the most, in words: "handler pid 123 (python3) uses 1.0 GiB of 1.1 GiB".
    var largest: String {
        guard let top = processes.max(by: { $0.pss < $1.pss }) else { return "" }
        let role = top.pid == processes.first?.pid ? "node" : "handler"
        return "\(role) pid \(top.pid) (\(top.name)) uses \(Self.text(top.pss)) of \(Self.text(charged))"
    }

    static func text(_ bytes: Int64) -> String {
        let mib = Double(bytes) / 1_048_576
        if mib >= 1024 { return "\((mib / 1024 * 10).rounded() / 10) GiB" }
        return "\((mib * 10).rounded() / 10) MiB"
    }
}
