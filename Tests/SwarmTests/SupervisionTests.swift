import Foundation
import Shared
import XCTest

/// swarmd supervising real node processes (the shell node in Fixtures),
/// with real signals: one test per path through the shell's system calls
/// (spawn, pidfd reap, signalfd, report pipes, /proc, the timer). What the
/// core decides on those paths (backoff, crash-looping, a second TERM, an
/// unhealthy report) is proved in `SwarmCoreTests`, with a fake clock.
final class SupervisionTests: XCTestCase {
    func testSpawnsNodesThatReportWithStableSlots() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 3))
        swarmd.waitForHealthy(3)
        let s = try XCTUnwrap(swarmd.status())
        XCTAssertEqual(s.nodes.map(\.slot), [0, 1, 2])
        XCTAssertEqual(Set(s.nodes.compactMap(\.pid)).count, 3)
        XCTAssertEqual(s.wanted, 3)
    }

    func testNodesGetOnlyTheirOwnFdsACleanSignalMaskAndTheirOwnProcessGroup() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1))
        swarmd.waitForHealthy(1)
        let pid = try XCTUnwrap(swarmd.nodePids().first)
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
        for fd in fds {
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")) ?? ""
            XCTAssertFalse(target.contains("eventpoll") || target.contains("signalfd") || target.contains("pidfd")
                           || target.contains("timerfd") || target.hasPrefix("socket:"),
                           "fd \(fd) of the node is swarmd's \(target)")
        }
        XCTAssertTrue(fds.contains("3"), "the report pipe is fd 3")
        XCTAssertTrue(fds.contains("4"), "the control pipe is fd 4")
        // swarmd blocks its signals and ignores PIPE; none of that may reach a node.
        // (bash blocks CHLD by itself now and then, so only swarmd's signals are checked.)
        func mask(_ field: String) throws -> UInt64 { UInt64(try procStatusField(pid, field), radix: 16) ?? .max }
        for sig in [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU] {
            XCTAssertEqual(try mask("SigBlk") & (1 << UInt64(sig - 1)), 0, "signal \(sig) is blocked in the node")
        }
        XCTAssertEqual(try mask("SigIgn") & (1 << UInt64(SIGPIPE - 1)), 0, "PIPE is ignored in the node")
        XCTAssertEqual(getpgid(pid), pid, "each node leads its own process group")
    }

    func testALowSoftFileLimitDoesNotCapTheSwarm() throws {
        // 40 nodes need about 130 fds; swarmd starts with a soft limit of 64.
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 40, extra: "report_timeout = 10"),
                                         launcher: ["/usr/bin/prlimit", "--nofile=64:4096", "--"])
        swarmd.waitForHealthy(40, timeout: 60)
        XCTAssertFalse(swarmd.log.contains("cannot spawn"), "spawning failed for want of fds")
    }

    func testAnIdleSwarmWakesTheSupervisorOncePerReportIntervalNotOncePerNode() throws {
        // 10 nodes each report every 0.2 s: 50 reports a second. Read as they
        // come, that is dozens of wake-ups a second; swept, about 5.
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 10))
        swarmd.waitForHealthy(10)
        let window = 4.0
        let before = try voluntaryContextSwitches(swarmd.pid)
        Thread.sleep(forTimeInterval: window)  // the measurement window: nothing may talk to swarmd
        let wakeUps = try voluntaryContextSwitches(swarmd.pid) - before
        let sweeps = Int(window / 0.2)
        XCTAssertLessThan(wakeUps, 2 * sweeps, "\(wakeUps) wake-ups in \(window) s for \(sweeps) sweeps")
        XCTAssertGreaterThan(wakeUps, sweeps / 2, "reports were not read at all")
        // Whoever asks still sees fresh reports, and no node was taken for hung.
        let s = try XCTUnwrap(swarmd.status())
        XCTAssertEqual(s.healthy, 10)
        XCTAssertTrue(s.nodes.allSatisfy { ($0.reportAgeMs ?? .max) < 1000 }, "\(s.nodes.map(\.reportAgeMs))")
        XCTAssertFalse(swarmd.log.contains("node hung"))
    }

    func testKilledNodeIsReplacedInItsSlotAndTheExitIsLogged() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2))
        swarmd.waitForHealthy(2)
        let victim = try XCTUnwrap(swarmd.status()?.nodes.first { $0.slot == 1 }?.pid)
        kill(victim, SIGKILL)
        swarmd.waitForLog("node exited: killed by signal KILL")
        eventually("slot 1 to run a new process") {
            guard let n = swarmd.status()?.nodes.first(where: { $0.slot == 1 }) else { return false }
            return n.pid != nil && n.pid != victim && n.state == .running && n.restarts == 1
        }
        XCTAssertEqual(swarmd.status()?.nodes.first { $0.slot == 1 }?.lastExit, "killed by signal KILL")
    }

    func testStoppedNodeIsDeclaredHungKilledAndReplaced() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1))
        swarmd.waitForHealthy(1)
        let victim = try XCTUnwrap(swarmd.nodePids().first)
        kill(victim, SIGSTOP)
        swarmd.waitForLog("node hung: no report")
        swarmd.waitForLog("node did not stop in time: KILL")
        eventually("the hung node to be replaced") {
            guard let n = swarmd.status()?.nodes.first else { return false }
            return n.pid != victim && n.state == .running
        }
        XCTAssertFalse(alive(victim))
        XCTAssertTrue(swarmd.log.contains("after stop: hung (no report)"))
    }

    func testTTINAddsANodeAndTTOURemovesTheHighestButNeverTheLast() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2))
        swarmd.waitForHealthy(2)
        swarmd.signal(SIGTTIN)
        swarmd.waitForHealthy(3)
        swarmd.signal(SIGTTOU)
        swarmd.waitForHealthy(2)
        XCTAssertEqual(swarmd.status()?.nodes.map(\.slot), [0, 1])
        swarmd.signal(SIGTTOU)
        swarmd.waitForHealthy(1)
        swarmd.signal(SIGTTOU)
        swarmd.waitForLog("TTOU ignored")
        XCTAssertEqual(swarmd.status()?.wanted, 1)
    }

    func testTermStopsEveryNodeGracefullyAndExitsZero() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 3))
        swarmd.waitForHealthy(3)
        let pids = swarmd.nodePids()
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        for pid in pids { XCTAssertFalse(alive(pid)) }
        XCTAssertEqual(swarmd.logCount("after stop: swarm stopping"), 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: swarmd.socket), "the socket file is removed on exit")
    }

    func testStragglersAreKilledAtTheShutdownTimeoutAndTheExitStatusSaysSo() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2, extra: "shutdown_timeout = 1"),
                                         environment: ["TEST_NODE_MODE": "stubborn"])
        swarmd.waitForHealthy(2)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 1)
        XCTAssertTrue(swarmd.log.contains("node did not stop in time: KILL"))
    }

    func testQuitStopsAtOnce() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2, extra: "shutdown_timeout = 60"),
                                         environment: ["TEST_NODE_MODE": "stubborn"])
        swarmd.waitForHealthy(2)
        let pids = swarmd.nodePids()
        swarmd.signal(SIGQUIT)
        XCTAssertNotNil(swarmd.waitForExit(timeout: 10))
        XCTAssertTrue(swarmd.log.contains("immediate stop requested"))
        for pid in pids { XCTAssertFalse(alive(pid)) }
    }

    func testKillingTheSupervisorTakesEveryNodeWithIt() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 3))
        swarmd.waitForHealthy(3)
        let pids = swarmd.nodePids()
        swarmd.signal(SIGKILL)
        eventually("every node to be gone", timeout: 5) { pids.allSatisfy { !alive($0) } }
    }

    func testHupAppliesAValidFileByRollingAndKeepsRunningOnAnInvalidOne() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2))
        swarmd.waitForHealthy(2)
        let before = Set(swarmd.nodePids())
        // A change the nodes see (their report interval) rolls them; nodes = 3 scales as well.
        try testNodeConfig(nodes: 3, extra: "report_interval = 0.3").write(toFile: swarmd.configPath, atomically: true, encoding: .utf8)
        swarmd.signal(SIGHUP)
        swarmd.waitForLog("reload complete")
        swarmd.waitForHealthy(3)
        let after = Set(swarmd.nodePids())
        XCTAssertTrue(after.isDisjoint(with: before), "every node was replaced")

        try "[supervisor]\nnodes = \"many\"\n".write(toFile: swarmd.configPath, atomically: true, encoding: .utf8)
        swarmd.signal(SIGHUP)
        swarmd.waitForLog("reload refused, keeping the running configuration")
        XCTAssertTrue(swarmd.log.contains("nodes must be an integer"))
        swarmd.waitForHealthy(3)
        XCTAssertEqual(Set(swarmd.nodePids()), after, "nothing was restarted")
    }

    func testMalformedReportsAreCountedAndLoggedNeverFatal() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1), environment: ["TEST_NODE_MODE": "garbage"])
        swarmd.waitForHealthy(1)
        eventually("malformed reports to be counted") { (swarmd.status()?.malformedReports ?? 0) >= 3 }
        XCTAssertTrue(swarmd.log.contains("malformed report ignored"))
        XCTAssertEqual(swarmd.status()?.nodes.first?.restarts, 0)
    }

    func testNodeOverTheMemoryLimitIsRestartedGracefully() throws {
        // A shell's resident set is well over 64 KiB.
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2, extra: "memory_limit = \"64k\""))
        swarmd.waitForLog("node over memory limit")
        swarmd.waitForLog("after stop: over memory limit")
        XCTAssertFalse(swarmd.log.contains("killed by signal KILL"), "the restart is graceful")
    }

    func testUsr1LogsAFullStatusReport() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2))
        swarmd.waitForHealthy(2)
        swarmd.signal(SIGUSR1)
        swarmd.waitForLog("status: node", count: 2)
        XCTAssertTrue(swarmd.log.contains("status: 2/2 nodes consuming"))
    }

    func testUnknownSignalIsLoggedAndIgnored() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1))
        swarmd.waitForHealthy(1)
        swarmd.signal(SIGPWR)
        swarmd.waitForLog("signal ignored")
        swarmd.waitForHealthy(1)
    }
}
