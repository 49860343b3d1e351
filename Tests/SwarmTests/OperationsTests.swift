import Foundation
import Shared
import XCTest

/// What an operator lives with: a handler's stderr, a handler that will not
/// stop, log formats and journald fields, librdkafka's own lines, swarmd as a
/// container's PID 1.
final class OperationsTests: XCTestCase {
    let topic = "ops"

    /// A python handler that answers every message ok; `setup` runs once at
    /// start and `atEOF` when its input ends.
    func handler(_ dir: URL, setup: String = "", atEOF: String = "") throws -> String {
        let path = dir.appendingPathComponent("handler.py")
        try """
        import os, signal, subprocess, sys, time
        inp, out = sys.stdin.buffer, sys.stdout
        \(setup)
        while line := inp.readline():
            n = int(line.split()[1])
            for _ in range(n):
                f = inp.readline().split()
                inp.read(max(int(f[5]), 0) + max(int(f[6]), 0) + 1)
            out.write(f"ok {n}\\n")
            out.flush()
        \(atEOF)
        """.write(to: path, atomically: true, encoding: .utf8)
        return path.path
    }

    func config(_ broker: BrokerUnderTest, handler: String, killTimeout: Int = 10, extraHandler: String = "", extraSupervisor: String = "") -> String {
        kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic, batchSize: 5, extraHandler: extraHandler, extraSupervisor: extraSupervisor)
            .replacingOccurrences(of: "command = [\"/usr/bin/python3\", \"\(recordHandler)\"]", with: "command = [\"/usr/bin/python3\", \"\(handler)\"]")
            .replacingOccurrences(of: "kill_timeout = 10", with: "kill_timeout = \(killTimeout)")
    }

    // MARK: Handler stderr

    func testHandlerStderrIsLoggedAtInfoAndRateLimitedWithACountOfWhatWasHeldBack() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        try broker.produce(topic, keys: ["a", "b"])
        let dir = makeTempDir()
        let chatty = try handler(dir, setup: """
        for i in range(1000):
            print(f"note {i}", file=sys.stderr)
        sys.stderr.flush()
        """)
        let swarmd = try SwarmdUnderTest(config: config(broker, handler: chatty, extraHandler: "stderr_rate = 5"))
        swarmd.waitForLog("INFO [swarmd-node] handler: note 0 ")
        swarmd.waitForHealthy(1, timeout: 60)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        let log = swarmd.log
        let shown = log.components(separatedBy: "] handler: note ").count - 1
        let counts = log.split(separator: "\n").compactMap { line -> Int? in
            guard let r = line.range(of: "handler stderr: suppressed ") else { return nil }
            return Int(line[r.upperBound...].prefix { $0.isNumber })
        }
        XCTAssertGreaterThanOrEqual(shown, 50, "the burst (10 × stderr_rate) gets through")
        XCTAssertLessThan(shown, 100, "the rest is held back")
        XCTAssertEqual(shown + counts.reduce(0, +), 1000, "every line is either logged or counted:\n\(log.suffix(2000))")
        XCTAssertFalse(log.contains("WARNING [swarmd-node] handler: note"), "a handler's stderr is not a warning")
    }

    // MARK: A handler that will not stop

    func testAHandlerThatIgnoresEOFGetsTermThenKillWithItsWholeProcessGroup() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        try broker.produce(topic, keys: (0..<20).map { "k\($0)" })
        let dir = makeTempDir()
        let pidFile = dir.appendingPathComponent("sleep.pid").path
        // It starts a helper (a `sleep` in its process group), ignores EOF and TERM.
        let stubborn = try handler(dir, setup: """
        helper = subprocess.Popen(["sleep", "1000"])
        open("\(pidFile)", "w").write(str(helper.pid))
        """, atEOF: """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
        """)
        let swarmd = try SwarmdUnderTest(config: config(broker, handler: stubborn, killTimeout: 4))
        swarmd.waitForHealthy(1, timeout: 60)
        eventually("the handler's helper to start") { FileManager.default.fileExists(atPath: pidFile) && ((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "") != "" }
        let helper = try XCTUnwrap(Int32(try String(contentsOfFile: pidFile, encoding: .utf8)))
        eventually("everything committed", timeout: 60) {
            (try? broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 1)).map { $0.committed == $0.end } ?? false
        }
        let started = Date()
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(timeout: 30), 0, swarmd.log.suffix(3000).description)
        let took = Date().timeIntervalSince(started)
        let log = swarmd.log
        XCTAssertTrue(log.contains("handler still running 2.0 s after the end of its input: TERM"), log.suffix(3000).description)
        XCTAssertTrue(log.contains("handler ignored TERM for 1.0 s: KILL"), log.suffix(3000).description)
        XCTAssertTrue(log.contains("node stopped: everything handled is committed"), "the node itself was not killed: \(log.suffix(3000))")
        XCTAssertFalse(log.contains("did not stop in time"), log.suffix(3000).description)
        XCTAssertLessThan(took, 20, "the stop took kill_timeout's share, not shutdown_timeout")
        eventually("the handler's helper gone with its group", timeout: 5) { !alive(helper) }
    }

    // MARK: Log formats

    func testLogFormatJSONWritesOneObjectPerLine() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2, extra: "log_format = \"json\""))
        swarmd.waitForHealthy(2)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        let lines = swarmd.log.split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 5)
        var transitions = 0
        for line in lines {
            let object = try XCTUnwrap(try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String], "not a JSON object: \(line)")
            XCTAssertNotNil(object["time"], String(line))
            XCTAssertNotNil(object["level"], String(line))
            XCTAssertEqual(object["logger"], "swarmd")
            if object["msg"] == "node starting -> running" {
                transitions += 1
                XCTAssertNotNil(object["slot"])
                XCTAssertEqual(object["reason"], "first healthy report", String(line))
            }
        }
        XCTAssertEqual(transitions, 2)
    }

    func testABadLogEnvironmentValueIsRefused() throws {
        let path = makeTempDir().appendingPathComponent("s.toml").path
        try testNodeConfig(nodes: 1).write(toFile: path, atomically: true, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        env["SWARM_LOG_FORMAT"] = "xml"
        let r = try runCommand(swarmdPath, ["--check", "--config", path], environment: env)
        XCTAssertEqual(r.status, 78)
        XCTAssertEqual(r.stderr, "swarmd: SWARM_LOG_FORMAT must be one of logfmt, json, not \"xml\"\n")
        env["SWARM_LOG_FORMAT"] = nil
        env["SWARM_LOG_LEVEL"] = "verbose"
        let level = try runCommand(swarmdPath, ["--check", "--config", path], environment: env)
        XCTAssertEqual(level.status, 78)
        XCTAssertTrue(level.stderr.contains("SWARM_LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical, not \"verbose\""), level.stderr)
    }

    // MARK: journald

    /// A datagram socket where journald's would be: the entries swarmd sends, parsed as journald does.
    final class JournalReceiver {
        let fd: Int32
        let path: String
        init(dir: URL) throws {
            path = dir.appendingPathComponent("journal.sock").path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in path.utf8.enumerated() { raw[i] = b }
            }
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            guard rc == 0 else { throw POSIXError(.EADDRINUSE) }
        }
        deinit { close(fd) }

        /// Every entry received so far (KEY=value fields; the binary form for values with line breaks).
        func entries() -> [[String: String]] {
            var out: [[String: String]] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if n <= 0 { return out }
                var fields: [String: String] = [:]
                var i = 0
                let bytes = Array(buffer[0..<n])
                while i < bytes.count {
                    let end = bytes[i...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
                    let line = bytes[i..<end]
                    if let eq = line.firstIndex(of: UInt8(ascii: "=")) {
                        fields[String(decoding: bytes[i..<eq], as: UTF8.self)] = String(decoding: bytes[(eq + 1)..<end], as: UTF8.self)
                        i = end + 1
                    } else {
                        let key = String(decoding: line, as: UTF8.self)
                        let length = bytes[(end + 1)..<(end + 9)].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
                        fields[key] = String(decoding: bytes[(end + 9)..<(end + 9 + length)], as: UTF8.self)
                        i = end + 9 + length + 1
                    }
                }
                out.append(fields)
            }
        }
    }

    func testUnderJournaldEntriesCarrySwarmFieldsSoAJournalctlFilterFindsOneSlot() throws {
        let dir = makeTempDir()
        let journal = try JournalReceiver(dir: dir)
        // JOURNAL_STREAM set, but stderr is not that stream (a shell started from a unit, say):
        // priority-prefixed lines on stderr, nothing sent natively.
        let elsewhere = try SwarmdUnderTest(config: testNodeConfig(nodes: 1), environment: ["SWARM_JOURNAL_SOCKET": journal.path, "JOURNAL_STREAM": "1:1"])
        elsewhere.waitForHealthy(1)
        elsewhere.signal(SIGTERM)
        XCTAssertEqual(elsewhere.waitForExit(), 0)
        XCTAssertTrue(elsewhere.log.contains("<6>[swarmd] swarmd started"), elsewhere.log.prefix(500).description)
        XCTAssertTrue(journal.entries().isEmpty)

        // stderr is the stream JOURNAL_STREAM names, as under systemd: native entries with fields.
        let native = try SwarmdUnderTest(config: testNodeConfig(nodes: 2), environment: ["SWARM_JOURNAL_SOCKET": journal.path], stderrIsJournal: true)
        native.waitForHealthy(2)
        var all: [[String: String]] = []
        eventually("slot 1's transition in the journal") {
            all += journal.entries()
            return all.contains { ($0["MESSAGE"] ?? "").hasPrefix("[swarmd] node starting -> running ") && $0["SWARM_SLOT"] == "1" }
        }
        let entry = try XCTUnwrap(all.first { ($0["MESSAGE"] ?? "").hasPrefix("[swarmd] node starting -> running ") && $0["SWARM_SLOT"] == "1" })
        XCTAssertEqual(entry["PRIORITY"], "6")
        XCTAssertEqual(entry["SYSLOG_IDENTIFIER"], "swarmd")
        XCTAssertEqual(entry["SWARM_NODE_PID"], native.status()?.nodes.first { $0.slot == 1 }?.pid.map { String($0) })
        XCTAssertEqual(entry["SWARM_EVENT"], "reportedRunning")
        XCTAssertEqual(entry["SWARM_REASON"], "first healthy report")
        XCTAssertTrue(entry["MESSAGE"]!.contains(" reason=\"first healthy report\" slot=1"), "the message reads as the stderr line did: \(entry)")
        XCTAssertFalse(native.log.contains("node starting -> running"), "sent to the journal, not written twice")
        native.signal(SIGTERM)
        XCTAssertEqual(native.waitForExit(), 0)
        all += journal.entries()
        XCTAssertTrue(all.contains { $0["MESSAGE"] == "[swarmd] swarmd stopped exit_status=0" && $0["PRIORITY"] == "6" })
    }

    // MARK: librdkafka's own lines

    func testLibrdkafkaLinesGoThroughSwarmsLoggerWithTheirSeverityAndSlot() throws {
        let config = """
        [supervisor]
        nodes = 1
        report_interval = 0.2
        [kafka]
        topics = ["t"]
        [kafka.properties]
        "bootstrap.servers" = "127.0.0.1:9"
        "log_level" = 7
        "debug" = "broker"
        """
        let swarmd = try SwarmdUnderTest(config: config)
        // swarmd's own client (the group's lag, asked of the broker) logs
        // too, and may do so first: wait for the node's line itself.
        eventually("a node's librdkafka line at DEBUG with its slot\n\(swarmd.log.suffix(2000))") {
            swarmd.log.split(separator: "\n").contains { $0.contains("DEBUG [swarmd-node] librdkafka:") && $0.contains(" slot=0") && $0.contains("kafka_facility=") }
        }
        eventually("swarmd's own client logs under its own name, with no slot") {
            swarmd.log.split(separator: "\n").contains { $0.contains("DEBUG [swarmd] librdkafka:") && !$0.contains(" slot=") }
        }
        XCTAssertFalse(swarmd.log.split(separator: "\n").contains { $0.hasPrefix("%") }, "no raw librdkafka line:\n\(swarmd.log.prefix(2000))")
        swarmd.signal(SIGTERM)
        XCTAssertNotNil(swarmd.waitForExit())
    }

    /// swarmd adopts what any node double-forks, but kills only what a node
    /// that is gone left behind: a running node's own is not touched when
    /// another node dies (`Orphans`).
    func testARunningNodesOrphanIsLeftAloneWhileADeadNodesIsKilled() throws {
        let dir = makeTempDir()
        // Each node double-forks a long sleep and writes its pid to orphan.<node pid>.
        let node = dir.appendingPathComponent("orphaning-node.sh").path
        try "#!/bin/bash\n( sleep 300 & echo $! > \(dir.path)/orphan.$$ )\nexec /bin/bash \(testNode)\n"
            .write(toFile: node, atomically: true, encoding: .utf8)
        chmod(node, 0o755)
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2, command: [node]))
        func orphan(of nodePid: Int32) -> Int32? {
            (try? String(contentsOfFile: "\(dir.path)/orphan.\(nodePid)", encoding: .utf8))
                .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        var pids: [Int32] = []
        eventually("2 running nodes, each with its orphan adopted by swarmd") {
            pids = swarmd.status()?.nodes.filter { $0.state == .running }.compactMap(\.pid) ?? []
            return pids.count == 2 && pids.allSatisfy { orphan(of: $0).map { childPids(of: swarmd.pid).contains($0) } ?? false }
        }
        let (dying, running) = (pids[0], pids[1])
        let (dyingOrphan, runningOrphan) = (orphan(of: dying)!, orphan(of: running)!)
        kill(dying, SIGKILL)
        eventually("the dead node's orphan killed", timeout: 15) { !alive(dyingOrphan) }
        eventually("its replacement running", timeout: 15) {
            swarmd.status()?.nodes.filter { $0.state == .running && $0.pid != dying }.count == 2
        }
        XCTAssertTrue(alive(runningOrphan), "the running node's orphan is left alone")
        XCTAssertTrue(childPids(of: swarmd.pid).contains(runningOrphan))
        swarmd.signal(SIGTERM)
        XCTAssertNotNil(swarmd.waitForExit())
        eventually("nothing a node left behind outlives swarmd", timeout: 10) { !alive(runningOrphan) }
    }

    // MARK: PID 1

    /// swarmd as a container's init (no tini): in a PID namespace of its own
    /// it reaps what its nodes orphan, and a TERM from outside (`docker stop`)
    /// stops it gracefully: signals swarmd blocks for signalfd are not
    /// dropped the way the kernel drops an init's default-action signals.
    func testAsPID1ItReapsOrphansAndStopsOnTERM() throws {
        guard (try? runCommand("/usr/bin/unshare", ["--pid", "--fork", "--mount-proc", "/bin/true"]))?.status == 0 else {
            throw XCTSkip("PID namespaces are not allowed here (unshare --pid --fork --mount-proc)")
        }
        let dir = makeTempDir()
        let socket = dir.appendingPathComponent("s.sock").path
        let path = dir.appendingPathComponent("s.toml").path
        // Each node leaves an orphan behind (a double fork) before it starts.
        let node = dir.appendingPathComponent("orphaning-node.sh").path
        try "#!/bin/bash\n( sleep 1.5 & )\nexec /bin/bash \(testNode)\n".write(toFile: node, atomically: true, encoding: .utf8)
        chmod(node, 0o755)
        try testNodeConfig(nodes: 2, command: [node]).write(toFile: path, atomically: true, encoding: .utf8)
        let log = dir.appendingPathComponent("log").path
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let unshare = Process()
        unshare.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        unshare.arguments = ["--pid", "--fork", "--mount-proc", swarmdPath, "--socket", socket, "--config", path]
        unshare.standardError = FileHandle(forWritingAtPath: log)
        unshare.standardOutput = FileHandle.nullDevice
        try unshare.run()
        defer { if unshare.isRunning { unshare.terminate() } }
        var swarmdPid: Int32 = 0
        eventually("swarmd as PID 1 of its namespace") {
            swarmdPid = childPids(of: unshare.processIdentifier).first ?? 0
            return swarmdPid > 0 && ((try? procStatusField(swarmdPid, "NSpid")) ?? "").hasSuffix("\t1") || ((try? String(contentsOfFile: "/proc/\(swarmdPid)/status", encoding: .utf8)) ?? "").contains("NSpid:\t\(swarmdPid)\t1")
        }
        eventually("2 healthy nodes") {
            guard let s = try? ControlClient(path: socket, timeout: 5).send(ControlRequest(cmd: .status)).status else { return false }
            return s.pid == 1 && s.nodes.count == 2 && s.nodes.allSatisfy { $0.state == .running }
        }
        func children() -> [Int32] { childPids(of: swarmdPid) }
        XCTAssertEqual(try swarmctl(["restart"], socket: socket).status, 0, "two more orphans")
        eventually("the orphans adopted by swarmd", timeout: 10) { children().count > 2 }
        eventually("every orphan reaped once it ended: only the 2 nodes left, no zombie", timeout: 10) {
            let pids = children()
            return pids.count == 2 && pids.allSatisfy { !((try? procStatusField($0, "State")) ?? "").hasPrefix("Z") }
        }
        kill(swarmdPid, SIGTERM)
        eventually("swarmd (PID 1) to stop on TERM from outside", timeout: 30) { !unshare.isRunning }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        XCTAssertTrue(text.contains("graceful stop requested"), text.suffix(2000).description)
        XCTAssertTrue(text.contains("swarmd stopped"), text.suffix(2000).description)
    }
}
