import Foundation
import Shared
import XCTest

/// swarmd's read-only HTTP listener: Prometheus metrics checked by the real
/// promtool, probes, the page in a real headless Chromium, hostile clients.
final class ObservabilityTests: XCTestCase {
    let topic = "observed"

    /// `name{labels} value` lines of an exposition, by name and labels.
    func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = v
        }
        return out
    }

    /// A swarm of test nodes with the HTTP listener on a free loopback port, listening.
    func swarmWithListener(nodes: Int) throws -> (SwarmdUnderTest, UInt16) {
        let port = freePort()
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: nodes) + "\n[http]\nlisten = \"127.0.0.1:\(port)\"\n")
        swarmd.waitForHealthy(nodes)
        eventually("listening", timeout: 10) { get(port, "/healthz")?.status == 200 }
        return (swarmd, port)
    }

    func testMetricsPassPromtoolAndAgreeWithTheStatus() throws {
        let broker = try BrokerUnderTest(topics: [topic: 3])
        try broker.produce(topic, keys: (0..<60).map { "m\($0)" })
        let port = freePort()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic)
            + "\n[http]\nlisten = \"127.0.0.1:\(port)\"\n", environment: ["RECORD_FILE": Record.fresh().path])
        eventually("every message handled and counted: \(String(describing: swarmd.status()))", timeout: 60) { swarmd.status()?.handled == 60 }
        eventually("every partition's lag reported", timeout: 30) {
            (swarmd.status()?.nodes.flatMap { $0.partitionLag ?? [] }.count ?? 0) == 3
        }
        let metrics = try XCTUnwrap(get(port, "/metrics"))
        XCTAssertEqual(metrics.status, 200)
        let file = makeTempDir().appendingPathComponent("metrics.prom")
        try metrics.body.write(to: file, atomically: true, encoding: .utf8)
        let check = try runCommand("/bin/sh", ["-c", "promtool check metrics < \(file.path)"])
        // promtool parses the whole exposition (status 1 on a parse error) and then lints names. Its one
        // remark is about kafka_exporter's own name, kept on purpose so that its dashboards work unchanged.
        let remarks = (check.stdout + check.stderr).split(separator: "\n").filter { !$0.hasPrefix("kafka_consumergroup_lag_sum ") }
        XCTAssertTrue(check.status == 0 || check.status == 3, "promtool could not parse it: \(check.stdout)\(check.stderr)")
        XCTAssertEqual(remarks, [], "promtool has nothing else to say")

        let s = try XCTUnwrap(swarmd.status())
        let m = samples(metrics.body)
        XCTAssertEqual(m["swarm_nodes_wanted"], Double(s.wanted))
        XCTAssertEqual(m["swarm_nodes_healthy"], Double(s.healthy))
        for n in s.nodes {
            XCTAssertEqual(m["swarm_messages_handled_total{slot=\"\(n.slot)\"}"], Double(n.handled), "slot \(n.slot)")
            XCTAssertEqual(m["swarm_node_state{slot=\"\(n.slot)\",state=\"running\"}"], 1)
            XCTAssertEqual(m["swarm_node_health{slot=\"\(n.slot)\",health=\"ok\"}"], 1)
            for l in n.partitionLag ?? [] {
                XCTAssertEqual(m["kafka_consumergroup_lag{consumergroup=\"swarm-test\",partition=\"\(l.partition)\",topic=\"\(topic)\"}"],
                               Double(l.lag), "kafka_exporter's series for partition \(l.partition)")
            }
        }
        XCTAssertEqual(m["kafka_consumergroup_lag_sum{consumergroup=\"swarm-test\",topic=\"\(topic)\"}"], 0)
        // The batch-time histogram: every batch counted once, in a bucket at or under +Inf.
        let batches = s.nodes.map { m["swarm_handler_batch_seconds_count{slot=\"\($0.slot)\"}"] ?? 0 }
        XCTAssertGreaterThan(batches.reduce(0, +), 0, "batches were timed")
        for n in s.nodes {
            XCTAssertEqual(m["swarm_handler_batch_seconds_bucket{slot=\"\(n.slot)\",le=\"+Inf\"}"],
                           m["swarm_handler_batch_seconds_count{slot=\"\(n.slot)\"}"])
        }
        let viaSocket = try swarmctl(["metrics"], socket: swarmd.socket)
        XCTAssertEqual(viaSocket.status, 0)
        XCTAssertEqual(samples(viaSocket.stdout)["swarm_nodes_wanted"], 2, "swarmctl metrics prints the same exposition")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testProbesSayWhyNodeByNode() throws {
        let broker = try BrokerUnderTest(topics: [topic: 2])
        let port = freePort()
        let swarmd = try SwarmdUnderTest(config: kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic,
                                                             extraSupervisor: "disconnected_after = 1",
                                                             extraProperties: "\"socket.timeout.ms\" = 2000")
            + "\n[http]\nlisten = \"\(port)\"\n", environment: ["RECORD_FILE": Record.fresh().path])
        eventually("swarmd listening", timeout: 10) { get(port, "/healthz")?.status == 200 }
        XCTAssertTrue(get(port, "/healthz")?.body.hasPrefix("ok: swarmd pid \(swarmd.pid) answers") == true)
        eventually("ready once both nodes consume", timeout: 60) { get(port, "/readyz")?.status == 200 }
        XCTAssertTrue(get(port, "/readyz")?.body.hasPrefix("ready: all 2 nodes consume") == true)

        kill(broker.process.processIdentifier, SIGSTOP)
        defer { kill(broker.process.processIdentifier, SIGCONT) }
        eventually("503 naming the outage: \(String(describing: get(port, "/readyz")))", timeout: 60) {
            guard let r = get(port, "/readyz") else { return false }
            return r.status == 503 && r.body.contains("slot 0: running, degraded, disconnected (disconnected)")
        }
        XCTAssertEqual(get(port, "/healthz")?.status, 200, "swarmd itself is alive: a broker outage is not a reason to restart it")
        kill(broker.process.processIdentifier, SIGCONT)
        eventually("ready again", timeout: 90) { get(port, "/readyz")?.status == 200 }
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testThePageShowsEveryNodeInChromiumAndFollowsAScale() throws {
        let port = freePort()
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2) + "\n[http]\nlisten = \"127.0.0.1:\(port)\"\n")
        swarmd.waitForHealthy(2)
        let url = "http://127.0.0.1:\(port)/"
        func dom() throws -> String {
            let r = try runCommand("/usr/bin/chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=4000",
                                                          "--dump-dom", url])
            return r.stdout
        }
        func rows(_ html: String) -> Int { html.components(separatedBy: "<tr data-slot=\"").filter { $0.first?.isNumber == true }.count }
        let first = try dom()
        XCTAssertEqual(rows(first), 2, first.prefix(2000).description)
        XCTAssertTrue(first.contains("<path"), "the charts drew a line per node")
        XCTAssertTrue(first.contains("2/2 running"), "the summary came from status.json")
        XCTAssertEqual(try swarmctl(["scale", "3"], socket: swarmd.socket).status, 0)
        swarmd.waitForHealthy(3)
        XCTAssertEqual(rows(try dom()), 3, "the page follows the swarm")
        // For a person to look at: the page as Chromium drew it.
        let shot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/swarm-page.png").standardized
        _ = try runCommand("/usr/bin/chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=4000",
                                                  "--window-size=1200,700", "--screenshot=\(shot.path)", url])
        XCTAssertTrue(FileManager.default.fileExists(atPath: shot.path), "screenshot at \(shot.path)")
        // Without JavaScript the table is there too (rendered by swarmd).
        let plain = try XCTUnwrap(get(port, "/"))
        XCTAssertEqual(rows(plain.body), 3)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testTheListenerIsHandedOverByAnUpgrade() throws {
        let (swarmd, port) = try swarmWithListener(nodes: 1)
        let upgrade = try swarmctl(["upgrade"], socket: swarmd.socket)
        XCTAssertEqual(upgrade.status, 0, upgrade.stderr)
        XCTAssertEqual(swarmd.status()?.upgrades, 1)
        let after = try XCTUnwrap(get(port, "/healthz"), "the same listening socket answers for the new swarmd")
        XCTAssertTrue(after.body.contains("swarmd pid \(swarmd.pid) answers"), after.body)
        XCTAssertFalse(swarmd.log.contains("cannot listen"), "the port was kept, not bound again")
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }

    func testHostileHTTPClientsGetClearErrorsAndTheScraperIsStillServed() throws {
        let (swarmd, port) = try swarmWithListener(nodes: 1)
        let baseline = openSockets(swarmd.pid)

        XCTAssertEqual(exchange(port, "garbage\r\n\r\n")?.status, 400)
        XCTAssertEqual(exchange(port, "POST /metrics HTTP/1.1\r\n\r\n")?.status, 405, "read-only")
        XCTAssertEqual(exchange(port, "GET /nowhere HTTP/1.1\r\n\r\n")?.status, 404)
        let huge = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 20_000) + "\r\n\r\n"
        XCTAssertEqual(exchange(port, huge)?.status, 431)
        let many = "GET / HTTP/1.1\r\n" + (0..<100).map { "X-\($0): y\r\n" }.joined() + "\r\n"
        XCTAssertEqual(exchange(port, many)?.status, 431)
        // A slow sender is answered 408 at the deadline, not waited for.
        let slow = connectLoopback(port)
        _ = "GET / HT".withCString { send(slow, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = recv(slow, &buffer, buffer.count, 0)
        XCTAssertTrue(n > 0 && String(decoding: buffer[0..<n], as: UTF8.self).hasPrefix("HTTP/1.1 408"), "the slow sender is told")
        close(slow)
        // A flood of idle connections: the scrape still gets through.
        let idle = (0..<150).map { _ in connectLoopback(port) }
        XCTAssertEqual(get(port, "/metrics")?.status, 200, "the idlest connections made room")
        for fd in idle where fd >= 0 { close(fd) }
        eventually("swarmd's sockets back to baseline (\(baseline))", timeout: 15) { openSockets(swarmd.pid) <= baseline }
        XCTAssertEqual(swarmd.status()?.restarts, 0)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
    }
}
