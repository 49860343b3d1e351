import Foundation
import Shared
import XCTest

/// swarmd re-executes itself in place (swarmctl upgrade, USR2): same pid,
/// every node kept, nothing redelivered.
final class UpgradeTests: XCTestCase {
    let topic = "up"

    func testTwentyUpgradesUnderLoadKeepEveryNodeAndLoseNothing() throws {
        let broker = try BrokerUnderTest(topics: [topic: 4])
        let keys = (0..<3000).map { "u\($0)" }
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic),
                                         environment: ["RECORD_FILE": record.path, "SLOW_MS": "2"])
        eventually("both nodes hold partitions", timeout: 60) { swarmd.status()?.nodes.map(\.partitions) == [2, 2] }
        let producer = try broker.produceInBackground(topic, keys: keys, dir: makeTempDir())
        eventually("the swarm to be busy", timeout: 60) { record.entries.count >= 100 }
        let nodePids = swarmd.nodePids()
        let assignments = swarmd.logCount("assignment changed")
        var last = try XCTUnwrap(swarmd.status())
        for i in 1...20 {
            let r = try swarmctl(["upgrade"], socket: swarmd.socket)
            XCTAssertEqual(r.status, 0, "upgrade \(i): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("upgraded in place"), r.stdout)
            let s = try XCTUnwrap(swarmd.status())
            XCTAssertEqual(s.pid, swarmd.pid, "the same process")
            XCTAssertEqual(s.upgrades, i)
            XCTAssertEqual(swarmd.nodePids(), nodePids, "every node kept")
            XCTAssertEqual(s.nodes.map(\.restarts), [0, 0])
            XCTAssertGreaterThanOrEqual(s.handled, last.handled, "counters carried over")
            XCTAssertGreaterThan(s.uptimeS, last.uptimeS - 0.001, "uptime carried over")
            last = s
        }
        producer.waitUntilExit()
        eventually("every message handled", timeout: 120) { record.okKeys.count == keys.count }
        XCTAssertEqual(record.entries.count, keys.count, "nothing was delivered twice")
        XCTAssertEqual(swarmd.logCount("assignment changed"), assignments, "no node's assignment changed")
        XCTAssertEqual(swarmd.logCount("swarmd upgraded in place"), 20)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        let offsets = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 4)
        XCTAssertEqual(offsets.committed, offsets.end)
    }

    func testAnUpgradeToACopyWorksAndABinaryThatCannotRunOrRefusesIsRefused() throws {
        let broker = try BrokerUnderTest(topics: [topic: 1])
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: topic),
                                         environment: ["RECORD_FILE": Record.fresh().path])
        swarmd.waitForHealthy(1)
        let before = try XCTUnwrap(swarmd.status())
        let dir = makeTempDir()

        let notExecutable = dir.appendingPathComponent("plain-file").path
        try "not a program".write(toFile: notExecutable, atomically: true, encoding: .utf8)
        var r = try swarmctl(["upgrade", "--binary", notExecutable], socket: swarmd.socket)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("is not an executable file"), r.stderr)

        let refusing = dir.appendingPathComponent("refusing").path
        try "#!/bin/sh\necho 'swarmd: configuration is not what I expect' >&2\nexit 78\n".write(toFile: refusing, atomically: true, encoding: .utf8)
        chmod(refusing, 0o755)
        r = try swarmctl(["upgrade", "--binary", refusing], socket: swarmd.socket)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("refused the running configuration (exit 78): swarmd: configuration is not what I expect"), r.stderr)
        XCTAssertEqual(swarmd.status()?.upgrades, 0, "nothing changed")
        XCTAssertEqual(swarmd.nodePids(), before.nodes.compactMap(\.pid))

        let copy = dir.appendingPathComponent("swarmd-new").path
        try FileManager.default.copyItem(atPath: swarmdPath, toPath: copy)
        r = try swarmctl(["upgrade", "--binary", copy], socket: swarmd.socket)
        XCTAssertEqual(r.status, 0, r.stderr)
        let after = try XCTUnwrap(swarmd.status())
        XCTAssertEqual(after.pid, before.pid)
        XCTAssertEqual(after.upgrades, 1)
        XCTAssertEqual(try String(contentsOfFile: "/proc/\(swarmd.pid)/exe".replacingOccurrences(of: "/exe", with: "/cmdline"), encoding: .utf8)
            .split(separator: "\0").first.map(String.init), copy, "the copy runs now")
        XCTAssertEqual(swarmd.nodePids(), before.nodes.compactMap(\.pid))
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testANodeThatDiesDuringAnUpgradeIsReplacedByTheNewSwarmdAndUSR2Upgrades() throws {
        let broker = try BrokerUnderTest(topics: [topic: 2])
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic),
                                         environment: ["RECORD_FILE": Record.fresh().path])
        swarmd.waitForHealthy(2)
        let victim = try XCTUnwrap(swarmd.status()?.nodes.first?.pid)
        kill(victim, SIGKILL)
        swarmd.signal(SIGUSR2)
        swarmd.waitForLog("swarmd upgraded in place")
        eventually("slot 0 replaced", timeout: 30) {
            guard let n = swarmd.status()?.nodes.first else { return false }
            return n.pid != nil && n.pid != victim && n.restarts == 1 && n.state == .running
        }
        XCTAssertEqual(swarmd.status()?.upgrades, 1)
        XCTAssertEqual(swarmd.status()?.pid, swarmd.pid)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testTheEmbeddedBrokerCannotBeUpgradedAcrossAndSaysSo() throws {
        let swarmd = try SwarmdUnderTest(config: "[supervisor]\nnodes = 1\n[kafka.properties]\n\"bootstrap.servers\" = \"embedded\"\n\"session.timeout.ms\" = 6000\n")
        swarmd.waitForHealthy(1)
        let r = try swarmctl(["upgrade"], socket: swarmd.socket)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("the embedded development broker lives inside swarmd"), r.stderr)
    }

    func testVersions() throws {
        let d = try runCommand(swarmdPath, ["--version"])
        XCTAssertEqual(d.status, 0)
        XCTAssertTrue(d.stdout.hasPrefix("swarmd \(SwarmVersion.number) (build "), d.stdout)
        XCTAssertTrue(d.stdout.contains(", librdkafka 2."), d.stdout)
        let c = try runCommand(swarmctlPath, ["--version"])
        XCTAssertTrue(c.stdout.hasPrefix("swarmctl \(SwarmVersion.number) (build "), c.stdout)
    }
}
