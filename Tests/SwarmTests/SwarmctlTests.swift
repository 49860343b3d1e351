import CSwarmLinux
import Foundation
import Shared
import XCTest

/// The real swarmctl against a real swarmd: what it prints and its exit status.
final class SwarmctlTests: XCTestCase {
    func testStatusPrintsATableAndStableJSON() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2))
        swarmd.waitForHealthy(2)
        let table = try swarmctl(["status"], socket: swarmd.socket)
        XCTAssertEqual(table.status, 0, table.stderr)
        let lines = table.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(lines[0].hasPrefix("swarmd pid \(swarmd.pid), running, up "), String(lines[0]))
        XCTAssertTrue(lines[0].contains("2/2 nodes running, 2 healthy"), String(lines[0]))
        XCTAssertEqual(lines[1].split(separator: " ").map(String.init),
                       ["SLOT", "PID", "STATE", "HEALTH", "KAFKA", "UPTIME", "RESTARTS", "RSS", "HANDLED", "MSG/S", "PARTS", "LAG", "REPORT", "LAST", "EXIT"])
        XCTAssertTrue(lines[2].hasPrefix("0 "))
        XCTAssertTrue(lines[3].hasPrefix("1 "))
        XCTAssertTrue(lines[2].contains(" running "))

        let json = try swarmctl(["status", "--json"], socket: swarmd.socket)
        XCTAssertEqual(json.status, 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(Set(object.keys), ["pid", "state", "wanted", "running", "healthy", "uptime_s", "restarts",
                                         "handled", "failed", "rate", "malformed_reports", "version", "upgrades", "client", "config", "nodes"])
        XCTAssertEqual(object["upgrades"] as? Int, 0)
        let node = (object["nodes"] as! [[String: Any]])[0]
        for key in ["slot", "pid", "state", "uptime_s", "restarts", "rss_bytes", "processes", "handled", "failed", "rate",
                    "partitions", "report_age_ms", "health"] {
            XCTAssertNotNil(node[key], "node JSON lacks \(key)")
        }
        XCTAssertEqual(object["pid"] as? Int, Int(swarmd.pid))
    }

    func testScaleWaitsUpAndDownAbsoluteAndRelative() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1))
        swarmd.waitForHealthy(1)
        var r = try swarmctl(["scale", "4"], socket: swarmd.socket)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "swarm at 4 nodes\n")
        XCTAssertEqual(swarmd.status()?.nodes.filter { $0.state == .running }.count, 4, "scale returned before the nodes were healthy")

        r = try swarmctl(["scale", "-2"], socket: swarmd.socket)
        XCTAssertEqual(r.stdout, "swarm at 2 nodes\n")
        XCTAssertEqual(swarmd.status()?.nodes.map(\.slot), [0, 1], "the highest slots went first")

        r = try swarmctl(["scale", "+1", "--no-wait"], socket: swarmd.socket)
        XCTAssertEqual(r.stdout, "swarm at 3 nodes (requested)\n")
        swarmd.waitForHealthy(3)

        r = try swarmctl(["scale", "0"], socket: swarmd.socket)
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "swarmctl: the swarm size must be between 1 and 1024, not 0 (to stop the swarm, use swarmctl stop) (bad-argument)\n")

        r = try swarmctl(["scale", "lots"], socket: swarmd.socket)
        XCTAssertEqual(r.status, 64)
    }

    func testDrainAndResumeOneNodeAndAll() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 3))
        swarmd.waitForHealthy(3)
        var r = try swarmctl(["drain", "1"], socket: swarmd.socket)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "drained\n")
        XCTAssertEqual(swarmd.status()?.nodes.map(\.state), [.running, .drained, .running])
        XCTAssertTrue(try swarmctl(["status"], socket: swarmd.socket).stdout.contains(" drained "))

        r = try swarmctl(["resume", "1"], socket: swarmd.socket)
        XCTAssertEqual(r.stdout, "resumed\n", "resume waits, as every changing command does")
        XCTAssertEqual(swarmd.status()?.nodes.map(\.state), [.running, .running, .running])
        r = try swarmctl(["drain", "1"], socket: swarmd.socket)
        r = try swarmctl(["resume", "1", "--no-wait"], socket: swarmd.socket)
        XCTAssertEqual(r.stdout, "resuming 1 node(s)\n")
        swarmd.waitForHealthy(3)

        r = try swarmctl(["drain"], socket: swarmd.socket)
        XCTAssertEqual(r.stdout, "drained\n")
        XCTAssertEqual(swarmd.status()?.nodes.map(\.state), [.drained, .drained, .drained])
        _ = try swarmctl(["resume"], socket: swarmd.socket)
        swarmd.waitForHealthy(3)

        r = try swarmctl(["drain", "7"], socket: swarmd.socket)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("there is no node in slot 7"), r.stderr)
    }

    func testRestartReplacesTheGivenSlotsOrRollsThroughAll() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 3))
        swarmd.waitForHealthy(3)
        let before = try XCTUnwrap(swarmd.status()).nodes
        var r = try swarmctl(["restart", "2"], socket: swarmd.socket)
        XCTAssertEqual(r.stdout, "restarted 1 node\n", r.stderr)
        var after = try XCTUnwrap(swarmd.status()).nodes
        XCTAssertEqual(after[0].pid, before[0].pid)
        XCTAssertNotEqual(after[2].pid, before[2].pid)
        XCTAssertEqual(after[2].lastExit, "exited with status 0 after stop: restart requested")

        r = try swarmctl(["restart"], socket: swarmd.socket)
        XCTAssertEqual(r.stdout, "restarted 3 nodes\n", r.stderr)
        after = try XCTUnwrap(swarmd.status()).nodes
        XCTAssertTrue(zip(before, after).allSatisfy { $0.pid != $1.pid })
        // One at a time: after the first restart, each stop comes only after the
        // previous replacement's first healthy report.
        let events = swarmd.log.split(separator: "\n").compactMap { line -> String? in
            if line.contains("running -> stopping") && line.contains("reason=\"restart requested\"") { return "stop" }
            if line.contains("reason=\"first healthy report\"") { return "healthy" }
            return nil
        }
        let rolling = events.drop { $0 != "stop" }.dropFirst(2)  // skip the single restart of slot 2
        XCTAssertEqual(Array(rolling.filter { _ in true }), ["stop", "healthy", "stop", "healthy", "stop", "healthy"])
    }

    func testReloadAppliesAValidFileAndRefusesAnInvalidOne() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1))
        swarmd.waitForHealthy(1)
        try testNodeConfig(nodes: 2, extra: "report_interval = 0.3").write(toFile: swarmd.configPath, atomically: true, encoding: .utf8)
        var r = try swarmctl(["reload"], socket: swarmd.socket)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("reloading: replacing"), r.stdout)
        let after = try XCTUnwrap(swarmd.status())
        XCTAssertEqual(after.nodes.map(\.state), [.running, .running], "reload returned when the replacements ran")
        XCTAssertNotEqual(after.state, .reloading)
        swarmd.waitForLog("reload complete")

        try "[supervisor]\nnodes = -1\n".write(toFile: swarmd.configPath, atomically: true, encoding: .utf8)
        r = try swarmctl(["reload"], socket: swarmd.socket)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("swarmd.toml:2: [supervisor] nodes must be between 1 and 1024, not -1"), r.stderr)
        XCTAssertEqual(swarmd.status()?.wanted, 2)
    }

    func testStopWaitsForSwarmdToExit() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2))
        swarmd.waitForHealthy(2)
        let r = try swarmctl(["stop"], socket: swarmd.socket)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "swarmd (pid \(swarmd.pid)) stopped\n")
        XCTAssertEqual(swarmd.waitForExit(timeout: 5), 0)
    }

    func testNoDaemonExits69() throws {
        let dir = makeTempDir()
        let r = try swarmctl(["status"], socket: dir.appendingPathComponent("none.sock").path)
        XCTAssertEqual(r.status, 69)
        XCTAssertTrue(r.stderr.contains("is swarmd running?"), r.stderr)
    }

    /// `--instance NAME` is swarmd@NAME.service's socket; a name that is not
    /// one path component is refused before anything is tried.
    func testInstanceNamesTheTemplateUnitsSocket() throws {
        var env = ProcessInfo.processInfo.environment
        env["SWARMD_SOCKET"] = nil
        let none = try runCommand(swarmctlPath, ["--instance", "swarm-test-none", "status"], environment: env)
        XCTAssertEqual(none.status, 69, none.stderr)
        XCTAssertTrue(none.stderr.contains("/run/swarmd/swarm-test-none.sock"), none.stderr)
        let bad = try runCommand(swarmctlPath, ["-i", "../etc", "status"], environment: env)
        XCTAssertEqual(bad.status, 64, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--instance ../etc is not an instance name"), bad.stderr)
    }

    func testSecondSwarmdOnTheSameSocketIsRefusedWithThePidOfTheFirst() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1))
        swarmd.waitForHealthy(1)
        let second = try runCommand(swarmdPath, ["--socket", swarmd.socket, "--nodes", "1", "--", "/bin/true"])
        XCTAssertEqual(second.status, 69)
        XCTAssertTrue(second.stderr.contains("another swarmd (pid \(swarmd.pid)) is already serving \(swarmd.socket)"), second.stderr)
        swarmd.waitForHealthy(1)
    }

    func testAnotherUidIsRefused() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser") else {
            throw XCTSkip("needs root and runuser to act as nobody")
        }
        // The socket open to everyone, so that the daemon's own SO_PEERCRED check is what refuses.
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1, extra: "socket_mode = \"0666\""))
        swarmd.waitForHealthy(1)
        chmod(swarmd.dir.path, 0o755)
        let r = try runCommand("/usr/sbin/runuser", ["-u", "nobody", "--", swarmctlPath, "status", "--socket", swarmd.socket])
        XCTAssertEqual(r.status, 77, r.stderr)
        XCTAssertTrue(r.stderr.contains("permission denied: uid 65534 may not use this swarmd"), r.stderr)
        swarmd.waitForLog("connection refused: permission denied")
    }

    /// `socket_read_group`: monitoring without the right to stop the swarm.
    /// The peer's groups are its process's (SO_PEERGROUPS): setpriv gives
    /// nobody group 4242 without touching /etc/group.
    func testTheReadGroupMayLookButNotAct() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            throw XCTSkip("needs root and setpriv to act as nobody with a group")
        }
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1, extra: "socket_read_group = \"4242\""))
        swarmd.waitForHealthy(1)
        chmod(swarmd.dir.path, 0o755)
        func asNobody(groups: String, _ args: [String]) throws -> CommandResult {
            try runCommand("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", groups, swarmctlPath] + args + ["--socket", swarmd.socket])
        }
        let look = try asNobody(groups: "--groups=4242", ["status"])
        XCTAssertEqual(look.status, 0, look.stderr)
        XCTAssertTrue(look.stdout.contains("running"), look.stdout)
        XCTAssertEqual(try asNobody(groups: "--groups=4242", ["metrics"]).status, 0)
        let act = try asNobody(groups: "--groups=4242", ["stop"])
        XCTAssertEqual(act.status, 77, act.stderr)
        XCTAssertTrue(act.stderr.contains("uid 65534 may only use status and metrics here (socket_read_group); stop needs root"), act.stderr)
        swarmd.waitForLog("control: stop refused: the peer may only look")
        XCTAssertTrue(swarmd.log.contains("peer_comm=swarmctl"), "the log names the program that asked")
        let stranger = try asNobody(groups: "--clear-groups", ["status"])
        XCTAssertEqual(stranger.status, 77, stranger.stderr)
        XCTAssertEqual(swarmd.status()?.nodes.count, 1, "still running")
    }

    /// `swarmctl --socket PATH status`, as `systemctl -H`, `docker -H`,
    /// `git -C`; and `--config FILE` finds the socket the file names.
    func testGlobalOptionsBeforeTheCommandAndTheSocketFromTheConfiguration() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1))
        swarmd.waitForHealthy(1)
        for args in [["--socket", swarmd.socket, "status"], ["--socket=\(swarmd.socket)", "--timeout", "5", "status", "--json"],
                     ["--timeout=5", "--socket", swarmd.socket, "scale", "1"]] {
            let r = try runCommand(swarmctlPath, args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
        }
        let file = swarmd.dir.appendingPathComponent("other.toml").path
        try "[supervisor]\nsocket = \"\(swarmd.socket)\"\n".write(toFile: file, atomically: true, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        env["SWARMD_SOCKET"] = nil
        let viaConfig = try runCommand(swarmctlPath, ["--config", file, "status"], environment: env)
        XCTAssertEqual(viaConfig.status, 0, viaConfig.stderr)
        env["SWARMD_CONFIG"] = file
        XCTAssertEqual(try runCommand(swarmctlPath, ["status"], environment: env).status, 0, "$SWARMD_CONFIG as swarmd reads it")
        let missing = try runCommand(swarmctlPath, ["--config", "/nonexistent/swarmd.toml", "status"], environment: env)
        XCTAssertEqual(missing.status, 78)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/swarmd.toml: cannot open"), missing.stderr)
    }

    /// Raw clients that misbehave, then proof that swarmd still answers and leaked nothing.
    func testGarbageOversizedSilentAndFloodingClientsNeverHurtTheDaemon() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1, extra: "control_timeout = 0.5"))
        swarmd.waitForHealthy(1)
        let socketsBefore = idleSockets(swarmd.pid)

        func exchange(_ bytes: [UInt8], thenShutdown: Bool = false) -> String {
            let fd = swarm_unix_connect(swarmd.socket)
            XCTAssertGreaterThanOrEqual(fd, 0)
            defer { close(fd) }
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            _ = writeAll(fd, bytes)
            if thenShutdown { shutdown(fd, Int32(SHUT_WR)) }
            var out = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                out += buffer[0..<n]
                if out.last == 10 { break }
            }
            return String(decoding: out, as: UTF8.self)
        }
        XCTAssertTrue(exchange(Array("garbage\n".utf8)).contains("\"code\":\"bad-request\""))
        XCTAssertTrue(exchange(Array("{\"v\":1,\"cmd\":\"status\",}\n".utf8)).contains("invalid JSON at byte 22"),
                      "a syntax error says where it is")
        XCTAssertTrue(exchange(Array("{\"v\":1,\"cmd\":\"scale\",\"nodes\":1e40}\n".utf8))
                        .contains("\"message\":\"\\\"nodes\\\": 1e40 does not fit in Int\""), "an out-of-range number names its field")
        XCTAssertTrue(exchange(Array("{\"v\":1,\"cmd\":\"launch\"}\n".utf8)).contains("\"code\":\"unknown-command\""))
        XCTAssertTrue(exchange(Array("{\"v\":1,\"cmd\":\"scale\",\"nodes\":\"x\"}\n".utf8)).contains("\"code\":\"bad-argument\""))
        XCTAssertTrue(exchange(Array("{\"v\":9,\"cmd\":\"status\"}\n".utf8)).contains("is not supported"))
        XCTAssertTrue(exchange([UInt8](repeating: 65, count: 70_000)).contains("\"code\":\"too-large\""))
        XCTAssertTrue(exchange([0xff, 0xfe, 0, 10]).contains("\"code\":\"bad-request\""))
        XCTAssertTrue(exchange(Array("{\"v\":1,\"cmd\":\"status\"}".utf8), thenShutdown: true).contains("\"ok\":true"),
                      "a last request without its newline is answered")

        // Silent clients and a flood of connections: each is closed after control_timeout.
        var silent: [Int32] = []
        for _ in 0..<300 {
            let fd = swarm_unix_connect(swarmd.socket)
            if fd >= 0 { silent.append(fd) }
        }
        XCTAssertNotNil(swarmd.status(), "status answers during the flood")
        eventually("swarmd to hang up on every silent client", timeout: 20) {
            silent.allSatisfy { fd in
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                return poll(&pfd, 1, 0) == 1
            }
        }
        for fd in silent { close(fd) }
        eventually("swarmd's sockets to return to \(socketsBefore): \(openFiles(swarmd.pid))") {
            openSockets(swarmd.pid) == socketsBefore
        }
        swarmd.waitForHealthy(1)
    }
}
