import Foundation
import Shared
import XCTest

/// What matters to a user, against librdkafka's mock and against Tansu, a
/// real broker process (`SWARM_TEST_BROKER`, see `TestBroker` for how the
/// two differ). Completeness is counted by what was produced and handled,
/// and committed offsets against the highest offset handled, never against
/// a broker's high watermark (Tansu's is its last batch's base offset + 1).
final class BrokerMatrixTests: XCTestCase {
    func testABacklogScaleDrainKillAndRestartLoseNothingOnEachBroker() throws {
        for name in TestBrokers.selected {
            try journey(on: name)
        }
    }

    private func journey(on name: String) throws {
        let topic = "journey"
        let broker = try TestBrokers.start(name, topics: [topic: 4])
        let keys = (0..<800).map { "k\($0)" }
        try broker.produce(topic, keys: Array(keys[..<400]))
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic),
                                         environment: ["RECORD_FILE": record.path, "SLOW_MS": "1"])
        eventually("\(name): the backlog consumed", timeout: 120) { record.okKeys.count == 400 }
        for args in [["scale", "3"], ["drain", "0"], ["resume", "0"]] {
            XCTAssertEqual(try swarmctl(args, socket: swarmd.socket).status, 0, "\(name): swarmctl \(args)")
        }
        try broker.produce(topic, keys: Array(keys[400..<600]))
        let victim = try XCTUnwrap(swarmd.status()?.nodes.last?.pid)
        kill(victim, SIGKILL)
        swarmd.waitForLog("node exited: killed by signal KILL")
        XCTAssertEqual(try swarmctl(["restart"], socket: swarmd.socket).status, 0, "\(name): swarmctl restart")
        try broker.produce(topic, keys: Array(keys[600...]))
        eventually("\(name): every message handled", timeout: 180) { record.okKeys.count == keys.count }
        XCTAssertEqual(record.okKeys, Set(keys), name)
        let next = record.nextOffsets(partitions: 4)
        eventually("\(name): the group committed everything handled", timeout: 60) {
            (try? broker.committed(group: "swarm-test", topic: topic, partitions: 4)) == next
        }
        let twice = record.handledTwice(of: keys.count)
        print("\(name): scale, drain, resume, SIGKILL, restart: \(twice) of \(keys.count) handled twice")
        XCTAssertEqual(swarmd.status()?.restarts, 1 + 3, "\(name): the killed node and the three rolled ones, nothing else")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0, name)
    }

    func testReadinessOrderingDeadLettersLagReloadUpgradeAndTheClusterViewOnEachBroker() throws {
        for name in TestBrokers.selected {
            try operations(on: name)
        }
    }

    /// What an operator relies on once a swarm runs, on one broker: READY,
    /// a failing message that keeps its partition in order and ends in the
    /// dead-letter topic, lag in status and /metrics as the broker states it,
    /// a reload that rolls the nodes, an in-place upgrade, the cluster view.
    private func operations(on name: String) throws {
        let topic = "ops"
        let broker = try TestBrokers.start(name, topics: [topic: 2, "ops.dlq": 1, "swarm.status": 1])
        let port = freePort()
        let record = Record.fresh()
        let config = kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic, batchSize: 10,
                                 extraHandler: "retries = 1\nretry_backoff = 8\non_failure = \"dead-letter\"\ndead_letter_topic = \"ops.dlq\"")
            + "\n[cluster]\nstatus_topic = \"swarm.status\"\npublish_interval = 1\nstale_after = 10\n[http]\nlisten = \"127.0.0.1:\(port)\"\n"
        let swarmd = try SwarmdUnderTest(config: config, environment: ["RECORD_FILE": record.path, "FAIL_KEYS": "poison,stuck"])

        // READY once every node consumes (on Tansu the group's first assignment takes about 20 s).
        eventually("\(name): ready", timeout: 120) { get(port, "/readyz")?.status == 200 }

        // Ordering under a failure, and the dead-letter topic.
        let before = (0..<30).map { "a\($0)" }, after = (0..<30).map { "b\($0)" }
        try broker.produce(topic, keys: before + ["poison"] + after, partition: 0)
        eventually("\(name): partition 0 handled", timeout: 120) { record.okKeys.isSuperset(of: before + after) }
        let entries = record.entries
        let lastPoison = try XCTUnwrap(entries.lastIndex { $0.key == "poison" }, name)
        XCTAssertEqual(entries.filter { $0.key == "poison" }.count, 2, "\(name): one try and one retry")
        for k in after {
            XCTAssertGreaterThan(entries.lastIndex { $0.key == k && $0.outcome == "ok" }!, lastPoison, "\(name): \(k) is settled after the poison message")
        }
        var dead: [String] = []
        eventually("\(name): the dead letter", timeout: 30) { dead = (try? broker.consumeAll("ops.dlq")) ?? []; return !dead.isEmpty }
        XCTAssertEqual(dead.count, 1, name)
        XCTAssertTrue(dead.first?.hasPrefix("poison|") == true && dead.first?.contains("swarm.error=injected failure") == true, "\(name): \(dead)")

        // Lag behind a message that waits out its retry backoff (8 s): status and
        // /metrics say what the broker says (its high watermark less the committed offset).
        try broker.produce(topic, keys: ["stuck"] + (0..<50).map { "late\($0)" }, partition: 1)
        var brokerLag: Int64 = -1
        eventually("\(name): status shows partition 1's lag as the broker states it", timeout: 30) {
            guard let end = try? broker.highWatermarks(topic: topic, partitions: 2),
                  let committed = try? broker.committed(group: "swarm-test", topic: topic, partitions: 2) else { return false }
            brokerLag = end[1] - max(committed[1], 0)
            let shown = swarmd.status()?.nodes.flatMap { $0.partitionLag ?? [] }.first { $0.partition == 1 }?.lag
            return shown == brokerLag && brokerLag > 0
        }
        let metrics = get(port, "/metrics")?.body ?? ""
        XCTAssertTrue(metrics.contains("kafka_consumergroup_lag{consumergroup=\"swarm-test\",partition=\"1\",topic=\"ops\"} \(brokerLag)"),
                      "\(name): /metrics agrees with status: \(metrics.split(separator: "\n").filter { $0.hasPrefix("kafka_consumergroup_lag{") })")
        // The mock's high watermark is the next offset; Tansu's is its last batch's base offset + 1
        // (one kcat batch), so the same 51 messages read as less lag there. swarm shows the broker's figure.
        print("\(name): 51 messages behind on partition 1; the broker's own lag: \(brokerLag)")
        if name == "mock" { XCTAssertEqual(brokerLag, 51) }
        eventually("\(name): the late messages handled", timeout: 90) { record.okKeys.count == before.count + after.count + 50 }
        eventually("\(name): the stuck message dead-lettered too", timeout: 30) { ((try? broker.consumeAll("ops.dlq")) ?? []).count == 2 }

        // A reload that changes what the nodes run rolls them; an upgrade keeps them.
        let pids = Set(swarmd.nodePids())
        try String(contentsOfFile: swarmd.configPath, encoding: .utf8).replacingOccurrences(of: "batch_size = 10", with: "batch_size = 20")
            .write(toFile: swarmd.configPath, atomically: true, encoding: .utf8)
        XCTAssertEqual(try swarmctl(["reload"], socket: swarmd.socket).status, 0, name)
        swarmd.waitForLog("reload complete", timeout: 120)
        eventually("\(name): every node replaced and healthy again", timeout: 120) {
            let s = swarmd.status()
            return s?.healthy == 2 && Set(s?.nodes.compactMap(\.pid) ?? []).isDisjoint(with: pids)
        }
        let rolled = Set(swarmd.nodePids()), restarts = swarmd.status()?.restarts
        let upgrade = try swarmctl(["upgrade"], socket: swarmd.socket)
        XCTAssertEqual(upgrade.status, 0, "\(name): \(upgrade.stdout) \(upgrade.stderr)")
        eventually("\(name): upgraded in place", timeout: 60) { swarmd.status()?.upgrades == 1 }
        XCTAssertEqual(Set(swarmd.nodePids()), rolled, "\(name): the upgrade kept every node")
        XCTAssertEqual(swarmd.status()?.restarts, restarts, name)

        // The cluster view, from the status topic on this broker.
        var view: ClusterView?
        eventually("\(name): the cluster view names this swarm and owns every partition", timeout: 60) {
            let r = try? runCommand(swarmctlPath, ["status", "--cluster", "--json", "--config", swarmd.configPath])
            view = r.flatMap { try? ControlProtocol.decoder.decode(ClusterView.self, from: Array($0.stdout.utf8)) }
            return view?.swarms.count == 1 && view?.unowned == [] && view?.partitions.count == 2
        }

        try broker.produce(topic, keys: ["last"], partition: 1)
        eventually("\(name): a message after the upgrade handled", timeout: 60) { record.okKeys.contains("last") }
        let next = record.nextOffsets(partitions: 2)
        eventually("\(name): the group committed everything handled", timeout: 60) {
            (try? broker.committed(group: "swarm-test", topic: topic, partitions: 2)) == next
        }
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0, name)
    }

    /// Tansu with `topic` (2 partitions), a swarm of 2 on it, and the first
    /// 100 messages ("a0"…) handled.
    private func swarmOnTansu(_ topic: String) throws -> (TansuBroker, Record, SwarmdUnderTest) {
        let broker = try TansuBroker(topics: [topic: 2])
        try broker.produce(topic, keys: (0..<100).map { "a\($0)" })
        let record = Record.fresh()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic,
                                                             extraSupervisor: "disconnected_after = 3"),
                                         environment: ["RECORD_FILE": record.path])
        eventually("the first messages", timeout: 120) { record.okKeys.count == 100 }
        return (broker, record, swarmd)
    }

    /// A broker that stops answering (SIGSTOP) for longer than
    /// `session.timeout.ms`, then goes on: no node is restarted (restarting
    /// consumers brings no broker back), and consumption goes on after.
    func testAFrozenBrokerRestartsNothingAndConsumptionResumes() throws {
        guard TestBrokers.selected.contains("tansu") else { throw XCTSkip("SWARM_TEST_BROKER leaves Tansu out") }
        let topic = "frozen"
        let (broker, record, swarmd) = try swarmOnTansu(topic)
        eventually("both nodes settled before the freeze", timeout: 60) {
            let nodes = swarmd.status()?.nodes ?? []
            return nodes.count == 2 && nodes.allSatisfy { ["consuming", "idle"].contains($0.kafka ?? "") }
        }
        broker.freeze()
        let frozenAt = Date()
        var conditions: Set<String> = []
        var noticedAfter: Double?
        var degraded: CommandResult?
        while Date().timeIntervalSince(frozenAt) < 12 {
            for n in swarmd.status()?.nodes ?? [] {
                conditions.insert(n.kafka ?? "-")
                if noticedAfter == nil, let k = n.kafka, !["consuming", "idle", "waiting"].contains(k) { noticedAfter = Date().timeIntervalSince(frozenAt) }
            }
            if degraded == nil, let r = try? swarmctl(["status"], socket: swarmd.socket), r.status == 3 { degraded = r }
            usleep(200_000)
        }
        broker.thaw()
        print("node conditions seen while the broker was frozen 12 s: \(conditions.sorted()); the first that is not consuming after \(noticedAfter.map { String(format: "%.1f", $0) } ?? "-") s")
        let said = try XCTUnwrap(degraded, "swarmctl status exits 3 while the broker is frozen")
        XCTAssertTrue(["joining", "rebalancing", "disconnected"].contains { said.stdout.contains("slot") && said.stdout.contains($0) },
                      "status names what the nodes see: \(said.stdout)")
        XCTAssertEqual(swarmd.status()?.restarts, 0, "a frozen broker restarts no node")
        try broker.produce(topic, keys: (0..<100).map { "b\($0)" })
        let thawed = Date()
        eventually("consumption after the broker came back", timeout: 120) { record.okKeys.count == 200 }
        print("consuming again \(String(format: "%.1f", Date().timeIntervalSince(thawed))) s after the broker came back")
        XCTAssertEqual(swarmd.status()?.restarts, 0)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    /// The broker killed and started again empty (Tansu keeps its storage in
    /// memory): topics and the group are gone. Nodes say so (unknown-topic)
    /// instead of crash-looping, status names it and exits 3, nothing is
    /// restarted, and once the topic is created again consumption resumes.
    func testABrokerStartedAgainEmptyIsReportedAndConsumptionResumesWithTheTopic() throws {
        guard TestBrokers.selected.contains("tansu") else { throw XCTSkip("SWARM_TEST_BROKER leaves Tansu out") }
        let topic = "emptied"
        let (broker, record, swarmd) = try swarmOnTansu(topic)
        broker.crash()
        try broker.start()
        var conditions: Set<String> = []
        var statusText = ""
        eventually("every node reports the topic gone\n\(conditions.sorted())\n\(statusText)", timeout: 120) {
            let nodes = swarmd.status()?.nodes ?? []
            for n in nodes { conditions.insert(n.kafka ?? "-") }
            let r = try? swarmctl(["status"], socket: swarmd.socket)
            statusText = r?.stdout ?? ""
            return nodes.count == 2 && nodes.allSatisfy { $0.kafka == "unknown-topic" } && r?.status == 3
                && statusText.contains("unknown-topic")
        }
        print("node conditions seen after the broker came back empty: \(conditions.sorted())")
        print(statusText)
        XCTAssertEqual(swarmd.status()?.restarts, 0, "an empty broker restarts no node:\n" + swarmd.log.split(separator: "\n")
                           .filter { $0.contains("exit") || $0.contains("CRITICAL") || $0.contains("ERROR") || $0.contains("unhealthy") }.suffix(12).joined(separator: "\n"))
        XCTAssertLessThan(swarmd.logCount("consumer: "), 400, "errors are logged, not spun on")
        try broker.createTopic(topic, partitions: 2)
        try broker.produce(topic, keys: (0..<100).map { "b\($0)" })
        eventually("consumption once the topic is back; handled \(record.okKeys.filter { $0.hasPrefix("b") }.count) of 100; status: "
                   + ((try? swarmctl(["status"], socket: swarmd.socket).stdout) ?? "-") + "\nthe nodes said:\n"
                   + swarmd.log.split(separator: "\n").filter { !$0.contains("Connect to") && !$0.contains("brokers are down") }.suffix(30).joined(separator: "\n"),
                   timeout: 120) { record.okKeys.isSuperset(of: (0..<100).map { "b\($0)" }) }
        eventually("healthy again", timeout: 60) { (try? swarmctl(["status"], socket: swarmd.socket).status) == 0 }
        // At most one fresh start per node after the topic came back, when librdkafka's
        // group view stayed stale through its joins (NodeRuntime); never a loop.
        XCTAssertLessThanOrEqual(swarmd.status()?.restarts ?? 99, 2, "no restart loop")
        print("restarts after the topic came back: \(swarmd.status()?.restarts ?? -1)")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    /// A wrong password (SASL/SCRAM on a Tansu that requires authentication):
    /// every node reports auth-failed, its own condition, with librdkafka's
    /// words; nothing is restarted; librdkafka's reconnect backoff keeps the
    /// attempts few; and the password, read from a credential file, appears
    /// in no log, status or environment. (Tansu's users live in its storage,
    /// which is memory only here, and creating one needs an authenticated
    /// client: so a password that works cannot be tried on it.)
    func testAWrongPasswordIsAuthFailedNotDisconnectedAndNeverShown() throws {
        guard TestBrokers.selected.contains("tansu") else { throw XCTSkip("SWARM_TEST_BROKER leaves Tansu out") }
        let broker = try TansuBroker(topics: [:], options: ["--authentication"], environment: ["RUST_LOG": "tansu_service=debug"])
        let dir = makeTempDir()
        let password = "pw-\(UInt32.random(in: 100_000...999_999))-never-shown"
        let file = dir.appendingPathComponent("kafka-password").path
        try (password + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o600)
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: "secured", extraProperties: """
            "security.protocol" = "SASL_PLAINTEXT"
            "sasl.mechanisms" = "SCRAM-SHA-512"
            "sasl.username" = "swarm"
            "sasl.password" = { file = "\(file)" }
            """))
        var last: SwarmStatus?
        eventually("every node auth-failed\n\(String(describing: last?.nodes.map { ($0.kafka, $0.reason) }))", timeout: 60) {
            last = swarmd.status()
            return last?.nodes.count == 2 && last?.nodes.allSatisfy { $0.kafka == "auth-failed" } == true
        }
        let reason = try XCTUnwrap(last?.nodes.first?.reason)
        XCTAssertTrue(reason.hasPrefix("auth-failed: ") && reason.contains("SASL"), reason)
        let text = try swarmctl(["status"], socket: swarmd.socket)
        XCTAssertEqual(text.status, 3, "auth-failed is degraded: \(text.stdout)")
        XCTAssertTrue(text.stdout.contains("auth-failed"), text.stdout)
        // A quarter of a minute of refusals: no restart, and few attempts.
        // Each refused attempt is a connection of its own (the broker's log names each peer).
        let attemptsBefore = broker.connections()
        let start = Date()
        eventually("15 s", timeout: 20) { Date().timeIntervalSince(start) >= 15 }
        let attempts = broker.connections() - attemptsBefore
        print("auth-failed: \(attempts) connections refused in 15 s for 2 nodes (\(attemptsBefore) before)")
        XCTAssertGreaterThan(attempts, 0, "the nodes keep trying (an operator may fix the password)")
        XCTAssertLessThan(attempts, 60, "librdkafka's reconnect backoff (to 10 s), not a retry every 100 ms (300)")
        XCTAssertEqual(swarmd.status()?.restarts, 0, "a refused password restarts no node")
        XCTAssertTrue(swarmd.status()?.nodes.allSatisfy { $0.kafka == "auth-failed" } ?? false, "still auth-failed, not disconnected")
        // The password: in no log, no status, no node's environment.
        let json = try swarmctl(["status", "--json"], socket: swarmd.socket).stdout
        let metrics = try swarmctl(["metrics"], socket: swarmd.socket).stdout
        for pid in swarmd.status()?.nodes.compactMap(\.pid) ?? [] {
            let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
            XCTAssertFalse(String(decoding: environ, as: UTF8.self).contains(password), "node \(pid)'s environment")
        }
        for (name, where_) in [("swarmd's log", swarmd.log), ("status", json), ("metrics", metrics)] {
            XCTAssertFalse(where_.contains(password), "the password in \(name)")
        }
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    /// TLS with the test's own CA (see `TLSProxy`): a swarm that trusts the
    /// CA consumes everything; a swarm that trusts another CA reports
    /// auth-failed with the handshake's error, restarts nothing, and never
    /// counts as disconnected.
    func testTLSWithTheTestsCAConsumesAndAnUntrustedBrokerIsAuthFailed() throws {
        guard TestBrokers.selected.contains("tansu") else { throw XCTSkip("SWARM_TEST_BROKER leaves Tansu out") }
        let tlsPort = try freeLoopbackPort()
        let broker = try TansuBroker(topics: ["tls": 2], advertised: "127.0.0.1:\(tlsPort)")
        let proxy = try TLSProxy(port: tlsPort, forwardingTo: broker.port)
        let keys = (0..<200).map { "t\($0)" }
        let produced = try runCommand("/usr/bin/kcat", ["-P", "-b", proxy.bootstrap, "-t", "tls", "-K", ":",
                                                        "-X", "security.protocol=SSL", "-X", "ssl.ca.location=\(proxy.caPath)"],
                                      stdin: Data(keys.map { "\($0):v" }.joined(separator: "\n").utf8 + [10]))
        XCTAssertEqual(produced.status, 0, "kcat over TLS: \(produced.stderr)")
        let record = Record.fresh()
        let trusted = try SwarmdUnderTest(config: kafkaConfig(bootstrap: proxy.bootstrap, nodes: 2, topic: "tls", extraProperties: """
            "security.protocol" = "SSL"
            "ssl.ca.location" = "\(proxy.caPath)"
            """), environment: ["RECORD_FILE": record.path])
        eventually("every message consumed over TLS", timeout: 120) { record.okKeys == Set(keys) }
        trusted.signal(SIGTERM)
        XCTAssertEqual(trusted.waitForExit(), 0)

        let untrusted = try SwarmdUnderTest(config: kafkaConfig(bootstrap: proxy.bootstrap, nodes: 2, topic: "tls", extraProperties: """
            "security.protocol" = "SSL"
            "ssl.ca.location" = "\(proxy.otherCAPath)"
            """))
        var last: SwarmStatus?
        eventually("every node auth-failed\n\(String(describing: last?.nodes.map { ($0.kafka, $0.reason) }))", timeout: 60) {
            last = untrusted.status()
            return last?.nodes.count == 2 && last?.nodes.allSatisfy { $0.kafka == "auth-failed" } == true
        }
        let reason = try XCTUnwrap(last?.nodes.first?.reason)
        XCTAssertTrue(reason.contains("SSL") || reason.contains("certificate"), reason)
        print("untrusted broker: \(reason)")
        XCTAssertEqual(try swarmctl(["status"], socket: untrusted.socket).status, 3)
        XCTAssertEqual(untrusted.status()?.restarts, 0)
        untrusted.signal(SIGTERM)
        XCTAssertEqual(untrusted.waitForExit(), 0)
    }
}
