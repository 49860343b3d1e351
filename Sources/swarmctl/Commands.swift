import ArgumentParser
import Shared
#if canImport(Glibc)
import Glibc
#endif

extension ScaleTarget: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

/// Every command names itself (`commandName:`): left out, ArgumentParser
/// derives each name with `String(describing:)` at every start, and the Swift
/// runtime scans all of the binary's protocol conformances for each one, a
/// millisecond of every `swarmctl` run (BENCHMARKS.md, "Figures behind the
/// code").
extension SwarmCtl {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Show every node of the swarm.")
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Print JSON (the schema is in swarmctl(1)).") var json = false
        @Flag(help: "Refresh every second until interrupted.") var watch = false
        @Flag(help: "Every swarm of the group, from the status topic ([cluster]); needs no swarmd here (runs swarmd cluster).") var cluster = false

        func run() throws {
            if cluster { try runCluster() }
            var healthy = true
            repeat {
                let text: String
                if json, let raw = try? connection.client.statusJSON() {
                    // Passed on as swarmd wrote it (sorted keys, snake case); the exit status
                    // needs a look at it: parsed here only as far as health goes.
                    text = String(decoding: raw, as: UTF8.self) + "\n"
                    healthy = (try? JSONValue.parse(raw)).map { StatusTable.allHealthy(json: $0) } ?? false
                } else {
                    let status = try connection.send(ControlRequest(cmd: .status)).status!
                    text = json ? try ControlProtocol.encoder.encode(status).text + "\n" : StatusTable.render(status)
                    healthy = StatusTable.allHealthy(status)
                }
                writeAll(1, (watch ? "\u{1B}[H\u{1B}[2J" : "") + text)
                if watch { sleepSeconds(1) }
            } while watch
            if !healthy { throw ExitCode(ExitStatus.degraded) }
        }
    }

    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "metrics",
            abstract: "Print the swarm's Prometheus metrics (what GET /metrics serves).",
            discussion: "For node_exporter's textfile collector where no HTTP port is wanted: swarmctl metrics > /var/lib/node_exporter/swarm.prom.tmp && mv …"
        )
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let response = try connection.send(ControlRequest(cmd: .metrics))
            writeAll(1, response.message ?? "")
        }
    }

    struct Autoscale: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "autoscale",
            abstract: "Turn lag-aware autoscaling on or off ([autoscale] in swarmd.toml).",
            discussion: "A manual `scale` turns it off too; `autoscale on` gives the swarm's size back to swarmd."
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: ArgumentHelp("on or off.", valueName: "on|off")) var state: String

        func validate() throws {
            guard state == "on" || state == "off" else { throw ValidationError("autoscale takes on or off, not \"\(state)\"") }
        }

        func run() throws {
            let response = try connection.send(ControlRequest(cmd: .autoscale, on: state == "on"))
            print(response.message ?? "autoscaling \(state)")
        }
    }

    struct Scale: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "scale",
            abstract: "Set the number of nodes: N, +N or -N.",
            discussion: "Waits until the new nodes report healthy and the removed ones are gone, unless --no-wait."
        )
        @OptionGroup var connection: ConnectionOptions
        /// `.allUnrecognized` takes "-2" as a value, not as an option: it reads naturally.
        @Argument(parsing: .allUnrecognized, help: ArgumentHelp("N (absolute), +N or -N (relative).", valueName: "count"))
        var count: [ScaleTarget] = []
        @Flag(help: "Return once swarmd accepted the change.") var noWait = false

        func validate() throws {
            guard count.count == 1 else { throw ValidationError("scale takes one count: N, +N or -N") }
        }

        func run() throws {
            let request: ControlRequest
            switch count[0] {
            case .relative(let delta): request = ControlRequest(cmd: .scale, delta: delta)
            case .absolute(let n): request = ControlRequest(cmd: .scale, nodes: n)
            }
            _ = try connection.send(request)
            let target = try connection.send(ControlRequest(cmd: .status)).status!.wanted
            if !noWait {
                try connection.wait(for: "\(target) healthy nodes") { s in
                    s.nodes.count == target && s.nodes.allSatisfy { $0.state.isUp }
                }
            }
            print("swarm at \(target) node\(target == 1 ? "" : "s")\(noWait ? " (requested)" : "")")
        }
    }

    struct Drain: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "drain",
            abstract: "Stop fetching, finish in-flight work and commit; all nodes, or the given slots.",
            discussion: "Drained nodes stay up, idle, until resumed. Waits until they report drained, unless --no-wait."
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Slots to drain (default: all).") var slot: [Int] = []
        @Flag(help: "Return once swarmd accepted the request.") var noWait = false

        func run() throws {
            let response = try connection.send(ControlRequest(cmd: .drain, slots: slots(slot)))
            if !noWait {
                try connection.wait(for: "the nodes to drain") { s in
                    s.nodes.filter { slot.isEmpty || slot.contains($0.slot) }.allSatisfy { $0.state == .drained }
                }
            }
            print(noWait ? response.message ?? "draining" : "drained")
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "resume",
            abstract: "Resume drained nodes: all, or the given slots.",
            discussion: "Waits until they run again, unless --no-wait."
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Slots to resume (default: all).") var slot: [Int] = []
        @Flag(help: "Return once swarmd accepted the request.") var noWait = false

        func run() throws {
            let response = try connection.send(ControlRequest(cmd: .resume, slots: slots(slot)))
            if !noWait {
                try connection.wait(for: "the nodes to resume") { s in
                    s.nodes.filter { slot.isEmpty || slot.contains($0.slot) }.allSatisfy { $0.state == .running }
                }
            }
            print(noWait ? response.message ?? "resuming" : "resumed")
        }
    }

    struct Restart: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restart",
            abstract: "Gracefully restart the given slots, or all nodes one at a time (rolling).",
            discussion: "Waits until every restarted node's replacement reports healthy, unless --no-wait."
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Slots to restart (default: all, one at a time).") var slot: [Int] = []
        @Flag(help: "Return once swarmd accepted the request.") var noWait = false

        func run() throws {
            let before = try connection.send(ControlRequest(cmd: .status)).status!
            let targets = Set(slot.isEmpty ? before.nodes.map(\.slot) : slot)
            let oldPids = Dictionary(uniqueKeysWithValues: before.nodes.compactMap { n in n.pid.map { (n.slot, $0) } })
            let response = try connection.send(ControlRequest(cmd: .restart, slots: slots(slot)))
            if !noWait {
                try connection.wait(for: "the restarted nodes to report healthy") { s in
                    s.nodes.filter { targets.contains($0.slot) }.allSatisfy { n in
                        n.pid != nil && n.pid != oldPids[n.slot] && (n.state == .running || n.state == .drained)
                    }
                }
            }
            print(noWait ? response.message ?? "restarting" : "restarted \(targets.count) node\(targets.count == 1 ? "" : "s")")
        }
    }

    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reload",
            abstract: "Re-read the configuration file and apply what changed (as SIGHUP).",
            discussion: """
            An unchanged file changes nothing; settings only swarmd reads apply in place; a change the nodes \
            see replaces them one at a time, and this waits until the last replacement runs (unless --no-wait). The swarm keeps a size set with `scale` unless the file's nodes \
            changed. An invalid file changes nothing: swarmd keeps running as before and this prints why (exit 1).
            """
        )
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Return once swarmd accepted the new configuration.") var noWait = false

        func run() throws {
            let response = try connection.send(ControlRequest(cmd: .reload))
            if !noWait {
                try connection.wait(for: "the reload to finish") { s in
                    s.state != .reloading && s.nodes.count == s.wanted
                        && s.nodes.allSatisfy { $0.state.isUp }
                }
            }
            print(response.message ?? "reloading")
        }
    }

    struct Upgrade: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "upgrade",
            abstract: "Re-execute swarmd in place: same pid, every node kept, no rebalance (as SIGUSR2).",
            discussion: """
            The new binary (default: the path swarmd was started from, where a package puts the new version) \
            must run and accept the running configuration (--check), or nothing changes. Waits until the new \
            swarmd answers and prints both versions.
            """
        )
        @OptionGroup var connection: ConnectionOptions
        @Option(help: ArgumentHelp("The new swarmd binary (an absolute path).", valueName: "path")) var binary: String?

        func run() throws {
            let before = try connection.send(ControlRequest(cmd: .status)).status!
            _ = try connection.send(ControlRequest(cmd: .upgrade, binary: binary))
            // While swarmd execs, a request may find nobody answering for a moment.
            let deadline = monotonicNow() + connection.timeout
            while true {
                if let s = try? connection.client.send(ControlRequest(cmd: .status)).status,
                   s.pid == before.pid, (s.upgrades ?? 0) > (before.upgrades ?? 0) {
                    print("swarmd (pid \(s.pid)) upgraded in place: \(before.version ?? "?") -> \(s.version ?? "?"); \(s.nodes.count) node(s) kept")
                    return
                }
                if !processExists(before.pid) {
                    printError("swarmctl: swarmd (pid \(before.pid)) is gone: the new binary did not take over; see its log")
                    throw ExitCode(ExitStatus.failure)
                }
                if monotonicNow() >= deadline {
                    printError("swarmctl: swarmd did not come back as the new binary within \(connection.timeout) s; see its log")
                    throw ExitCode(ExitStatus.failure)
                }
                sleepSeconds(0.02)
            }
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stop",
            abstract: "Stop the swarm gracefully (as SIGTERM), or at once with --now (as SIGQUIT).",
            discussion: "Waits until swarmd has exited, unless --no-wait."
        )
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Stop at once: in-flight work is abandoned (and redelivered later).") var now = false
        @Flag(help: "Return once swarmd accepted the request.") var noWait = false

        func run() throws {
            let pid = try connection.send(ControlRequest(cmd: .status)).status!.pid
            _ = try connection.send(ControlRequest(cmd: .stop, now: now))
            if !noWait {
                let deadline = monotonicNow() + connection.timeout
                while processExists(pid) {
                    if monotonicNow() >= deadline {
                        printError("swarmctl: swarmd (pid \(pid)) still running after \(connection.timeout) s")
                        throw ExitCode(ExitStatus.failure)
                    }
                    sleepSeconds(0.05)
                }
            }
            print(noWait ? "swarmd (pid \(pid)) stopping" : "swarmd (pid \(pid)) stopped")
        }
    }
}

extension SwarmCtl.Status {
    /// `status --cluster` is `swarmd cluster`: reading Kafka takes
    /// librdkafka, which swarmctl does not load (it cost 8 of its 10 ms per
    /// start); swarmd, installed beside it, does. Exec'd, so its output and
    /// exit status (0, 3 degraded, 69, 78) are swarmctl's.
    func runCluster() throws -> Never {
        let beside = String(((try? readLink("/proc/self/exe")) ?? "").reversed().drop { $0 != "/" }.reversed()) + "swarmd"
        let swarmd = access(beside, X_OK) == 0 ? beside
            : (currentEnvironment()["PATH"] ?? "/usr/local/bin:/usr/bin").split(separator: ":").map { "\($0)/swarmd" }.first { access($0, X_OK) == 0 }
        guard let swarmd else {
            printError("swarmctl: status --cluster runs swarmd cluster, and no swarmd was found beside swarmctl or on PATH")
            throw ExitCode(ExitStatus.unavailable)
        }
        var args = [swarmd, "cluster"]
        if let config = clusterConfig() { args += ["--config", config] }
        if json { args.append("--json") }
        args += ["--timeout", "\(min(connection.timeout, 30))"]
        let argv = args.map { strdup($0) } + [nil]
        execv(swarmd, argv)
        printError("swarmctl: cannot run \(swarmd): \(errnoText())")
        throw ExitCode(ExitStatus.unavailable)
    }

    /// The file that names the status topic and the brokers: `--config` or
    /// `$SWARMD_CONFIG` if given; else the file the swarmd on the socket runs
    /// (it says in its status), so `status --cluster` next to a running swarm
    /// needs nothing more; else the instance's or the package's file. nil
    /// leaves it to `swarmd cluster` (and its `--topic`).
    func clusterConfig() -> String? {
        if let config = connection.config ?? currentEnvironment()["SWARMD_CONFIG"] { return config }
        if let status = try? ControlClient(path: connection.socketPath, timeout: 2).send(ControlRequest(cmd: .status)).status,
           let config = status.config { return config }
        if let instance = connection.instance, InstallPaths.validInstance(instance) { return InstallPaths.config(instance: instance) }
        return InstallPaths.existingDefaultConfig()
    }
}
