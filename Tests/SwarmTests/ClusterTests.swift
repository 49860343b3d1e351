import Foundation
import Shared
import XCTest

/// Many swarms in one consumer group, seen as one cluster through a Kafka
/// status topic: the view itself (pure), then real swarmds on loopback, then
/// (where the machine allows) hosts in network namespaces of their own.
final class ClusterTests: XCTestCase {
    // MARK: The view, from records

    func record(_ prefix: String, host: String, at: Double, partitions: [Int32], healthy: Int = 2) -> ClusterRecord {
        let nodes = partitions.enumerated().map { i, p in
            ClusterRecord.Node(slot: i, pid: 100 + Int32(i), state: "running", health: "ok", rate: 10, lag: 5,
                               partitions: [PartitionLag(topic: "events", partition: p, lag: 5)])
        }
        return ClusterRecord(prefix: prefix, host: host, group: "g", pid: 42, version: "0.3.0", at: at, interval: 1, state: "running",
                             wanted: nodes.count, running: nodes.count, healthy: healthy, rate: 20, lag: 10, nodes: nodes)
    }

    func testTheViewNamesOwnersMarksStaleSwarmsAndListsUnownedPartitions() {
        let a = record("host-a", host: "a", at: 100, partitions: [0, 1])
        let b = record("host-b", host: "b", at: 70, partitions: [2, 3])  // 30 s old: stale
        let view = ClusterView(group: "g", records: [a, b], topics: ["events": 4], now: 100.5, staleAfter: 4)
        XCTAssertEqual(view.swarms.map(\.record.prefix), ["host-a", "host-b"])
        XCTAssertEqual(view.swarms.map(\.stale), [false, true])
        XCTAssertEqual(view.partitions.map(\.owner), ["host-a/0", "host-a/1", nil, nil], "a stale swarm owns nothing")
        XCTAssertEqual(view.unowned, ["events/2", "events/3"])
        XCTAssertEqual(view.lag, 10)
        XCTAssertFalse(view.healthy)
        let text = view.render()
        XCTAssertTrue(text.contains("1 live swarm(s), 1 STALE, 4 partitions, 2 unowned, lag 10"), text)
        XCTAssertTrue(text.contains("events/0   host-a/0"), text)

        let fresh = ClusterView(group: "g", records: [a, record("host-b", host: "b", at: 99, partitions: [2, 3])], topics: ["events": 4], now: 100.5, staleAfter: 4)
        XCTAssertTrue(fresh.healthy)
        XCTAssertEqual(fresh.unowned, [])
        let otherGroup = ClusterView(group: "other", records: [a], topics: ["events": 4], now: 100, staleAfter: 4)
        XCTAssertEqual(otherGroup.swarms.count, 0, "a shared status topic: only this group's swarms")
    }

    func testTheLatestRecordPerKeyWinsATombstoneRemovesItAndUnknownVersionsAreSkipped() throws {
        let key = Array("g/host-a".utf8)
        let one = try record("host-a", host: "a", at: 1, partitions: [0]).encoded()
        let two = try record("host-a", host: "a", at: 2, partitions: [1]).encoded()
        XCTAssertEqual(ClusterView.latest([(key, one), (key, two)]).map(\.at), [2])
        XCTAssertEqual(ClusterView.latest([(key, one), (key, nil)]).count, 0, "a clean stop's tombstone")
        let future = Array(#"{"v":2,"prefix":"x"}"#.utf8)
        XCTAssertEqual(ClusterView.latest([(key, one), (Array("g/x".utf8), future), (Array("g/y".utf8), Array("garbage".utf8))]).count, 1)
    }

    // MARK: Two swarmds on loopback

    /// One swarm of `nodes` as `prefix`, publishing to the status topic.
    func swarm(_ broker: BrokerUnderTest, prefix: String, nodes: Int, record: Record, http: UInt16? = nil) throws -> SwarmdUnderTest {
        try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: nodes, topic: "events", batchSize: 10,
                                                extraSupervisor: "instance_prefix = \"\(prefix)\"")
            + "\n[cluster]\nstatus_topic = \"swarm.status\"\npublish_interval = 1\nstale_after = 4\n"
            + (http.map { "[http]\nlisten = \"127.0.0.1:\($0)\"\n" } ?? ""),
                            environment: ["RECORD_FILE": record.path])
    }

    /// `swarmctl status --cluster --json` (which runs `swarmd cluster`), parsed.
    func clusterView(_ config: String) -> (status: Int32, view: ClusterView?) {
        guard let r = try? runCommand(swarmctlPath, ["status", "--cluster", "--json", "--config", config]) else { return (-1, nil) }
        let view = try? ControlProtocol.decoder.decode(ClusterView.self, from: Array(r.stdout.utf8))
        return (r.status, view)
    }

    func testTwoSwarmsShareTheGroupSeeEachOtherAndASwarmThatDiesGoesStaleWhileItsPartitionsMove() throws {
        let broker = try BrokerUnderTest(topics: ["events": 6, "swarm.status": 1])
        let record = Record.fresh()
        let a = try swarm(broker, prefix: "host-a", nodes: 2, record: record)
        let port = freePort()
        let b = try swarm(broker, prefix: "host-b", nodes: 2, record: record, http: port)
        a.waitForLog("cluster: publishing")
        let keys = (0..<600).map { "k\($0)" }
        try broker.produce("events", keys: keys)
        var last: ClusterView?
        eventually("both swarms live, every partition owned\n\(String(describing: last))", timeout: 90) {
            let (status, view) = clusterView(b.configPath)
            last = view
            return status == 0 && view?.swarms.count == 2 && view?.unowned == []
        }
        let owners = Set(last!.partitions.compactMap(\.owner).map { $0.split(separator: "/")[0] })
        // Next to a running swarmd, status --cluster needs no --config: swarmd says which file it runs.
        let statusB = try XCTUnwrap(ControlClient(path: b.socket, timeout: 5).send(ControlRequest(cmd: .status)).status)
        XCTAssertEqual(statusB.config, b.configPath, "status names the configuration file swarmd runs")
        let asked = try runCommand(swarmctlPath, ["--socket", b.socket, "status", "--cluster", "--json"])
        XCTAssertEqual(try? ControlProtocol.decoder.decode(ClusterView.self, from: Array(asked.stdout.utf8)).swarms.count, 2,
                       "status --cluster with no --config reads the file swarmd runs: \(asked.stderr)")
        XCTAssertEqual(owners, ["host-a", "host-b"], "the group spreads the partitions over both swarms' nodes")
        eventually("swarmd b follows the status topic too") {
            ((try? swarmctl(["status"], socket: b.socket).stdout) ?? "").contains("cluster: group swarm-test, 2 live swarm(s), 0 unowned")
        }

        // A second swarmd with a prefix already live in the group is refused, and says why.
        let twin = try runCommand(swarmdPath, ["--config", a.configPath, "--socket", a.dir.appendingPathComponent("twin.sock").path])
        XCTAssertEqual(twin.status, 78, twin.stderr)
        XCTAssertTrue(twin.stderr.contains("another swarmd publishes as instance prefix \"host-a\" for group \"swarm-test\""), twin.stderr)

        // host-a dies at once (no tombstone): stale in the view, its partitions move to host-b's nodes.
        a.signal(SIGKILL)
        _ = a.waitForExit()
        eventually("host-a stale and everything owned by host-b\n\(String(describing: last))", timeout: 90) {
            let (_, view) = clusterView(b.configPath)
            last = view
            guard let v = view else { return false }
            return v.swarms.first { $0.record.prefix == "host-a" }?.stale == true
                && v.unowned.isEmpty && v.partitions.allSatisfy { $0.owner?.hasPrefix("host-b/") == true }
        }
        XCTAssertEqual(clusterView(b.configPath).status, 3, "a stale swarm in the group is degraded")
        let page = try XCTUnwrap(get(port, "/"))
        XCTAssertTrue(page.body.contains("<table id=\"swarms\">"), "the page shows the cluster")
        XCTAssertTrue(page.body.contains("<td class=\"l\">host-a</td><td class=\"l down\">STALE</td>"), page.body)
        let metrics = try XCTUnwrap(get(port, "/metrics")).body
        XCTAssertTrue(metrics.contains("swarm_cluster_swarms{state=\"stale\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("swarm_cluster_partitions_unowned 0"), metrics)

        eventually("every message handled", timeout: 90) { record.okKeys.isSuperset(of: keys) }
        eventually("everything committed", timeout: 60) {
            (try? broker.committedAndEnd(group: "swarm-test", topic: "events", partitions: 6)).map { $0.committed == $0.end } ?? false
        }
        // Brokers away: records are dropped and counted, and swarmd keeps answering.
        kill(broker.process.processIdentifier, SIGSTOP)
        eventually("status records dropped and counted while the broker is frozen", timeout: 30) {
            let m = ((try? swarmctl(["metrics"], socket: b.socket).stdout) ?? "")
            return !m.contains("swarm_cluster_records_total{result=\"dropped\"} 0") && m.contains("swarm_cluster_records_total{result=\"dropped\"}")
        }
        XCTAssertTrue([0, 3].contains(try swarmctl(["status"], socket: b.socket).status), "swarmd answers (healthy, or degraded by the outage)")
        kill(broker.process.processIdentifier, SIGCONT)
        // A clean stop writes a tombstone: the swarm leaves the view at once instead of going stale.
        b.signal(SIGTERM)
        XCTAssertEqual(b.waitForExit(), 0)
        let after = try runCommand(swarmdPath, ["cluster", "--json", "--config", b.configPath])
        let view = try ControlProtocol.decoder.decode(ClusterView.self, from: Array(after.stdout.utf8))
        XCTAssertEqual(view.swarms.map(\.record.prefix), ["host-a"], "host-b left with a tombstone; host-a stays stale")
    }

    func testClusterNeedsAStatusTopicAndReachableBrokers() throws {
        let dir = makeTempDir()
        let path = dir.appendingPathComponent("s.toml").path
        try "[kafka.properties]\n\"bootstrap.servers\" = \"127.0.0.1:9\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        let none = try runCommand(swarmdPath, ["cluster", "--config", path])
        XCTAssertEqual(none.status, 78)
        XCTAssertTrue(none.stderr.contains("no status topic: set [cluster] status_topic"), none.stderr)
        let away = try runCommand(swarmdPath, ["cluster", "--config", path, "--topic", "swarm.status", "--timeout", "1"])
        XCTAssertEqual(away.status, 69, away.stderr)
        XCTAssertTrue(away.stderr.contains("no broker of 127.0.0.1:9 answered within 1000 ms"), away.stderr)
    }

    // MARK: Hosts in network namespaces

    /// Several hosts on one machine (`TestNetwork`): a broker in a network
    /// namespace of its own, two swarmd "hosts" in others (each with its own
    /// host name, which is also their default instance prefix), and a third
    /// namespace that runs only `swarmctl status --cluster`.
    func testHostsInNetworkNamespacesShareTheGroupAndOneHostDying() throws {
        let network = try TestNetwork(hosts: ["h1", "h2", "ctl"])
        let (hostNs, ctlNs) = (Array(network.hosts[0...1]), network.hosts[2])
        let broker = try BrokerUnderTest(topics: ["events": 6, "swarm.status": 1], launcher: network.brokerLauncher)
        try network.relay(port: try XCTUnwrap(broker.bootstrap.split(separator: ":").last.map(String.init)))

        let record = Record.fresh()
        let config = kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: "events", batchSize: 10)
            + "\n[cluster]\nstatus_topic = \"swarm.status\"\npublish_interval = 1\nstale_after = 4\n"
        let hosts = try hostNs.indices.map { i in
            try SwarmdUnderTest(config: config, environment: ["RECORD_FILE": record.path], launcher: network.launcher(host: i, hostname: "node\(i + 1).test"))
        }
        let keys = (0..<600).map { "n\($0)" }
        try broker.produce("events", keys: keys)
        func view() -> (Int32, ClusterView?) {
            guard let r = try? runCommand("/usr/sbin/ip", ["netns", "exec", ctlNs, swarmctlPath, "status", "--cluster", "--json", "--config", hosts[0].configPath]) else { return (-1, nil) }
            return (r.status, try? ControlProtocol.decoder.decode(ClusterView.self, from: Array(r.stdout.utf8)))
        }
        var last: ClusterView?
        eventually("both hosts live and every partition owned, seen from a third namespace\n\(String(describing: last))\n\(hosts[0].log.suffix(1500))", timeout: 90) {
            let (status, v) = view()
            last = v
            return status == 0 && v?.swarms.count == 2 && v?.unowned == []
        }
        XCTAssertEqual(Set(last!.swarms.map(\.record.host)), ["node1.test", "node2.test"])
        XCTAssertEqual(Set(last!.swarms.map(\.record.prefix)), ["node1.test", "node2.test"], "the prefix defaults to the host name")
        XCTAssertEqual(Set(last!.partitions.compactMap(\.host)), ["node1.test", "node2.test"])

        hosts[0].signal(SIGKILL)
        _ = hosts[0].waitForExit()
        eventually("node1.test stale, its partitions on node2.test\n\(String(describing: last))", timeout: 90) {
            let (_, v) = view()
            last = v
            guard let v else { return false }
            return v.swarms.first { $0.record.host == "node1.test" }?.stale == true
                && v.unowned.isEmpty && v.partitions.allSatisfy { $0.host == "node2.test" }
        }
        eventually("every key handled", timeout: 90) { record.okKeys.isSuperset(of: keys) }
        eventually("everything committed", timeout: 60) {
            (try? broker.committedAndEnd(group: "swarm-test", topic: "events", partitions: 6)).map { $0.committed == $0.end } ?? false
        }
        hosts[1].signal(SIGTERM)
        XCTAssertEqual(hosts[1].waitForExit(), 0)
    }
}
