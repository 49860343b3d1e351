import Foundation
import Shared
import SwarmKafka
import XCTest

/// A broker a test runs swarms against: librdkafka's mock cluster
/// (`swarmd broker`, in-process in a librdkafka client) or Tansu, a real
/// broker process. `SWARM_TEST_BROKER` = `mock`, `tansu` or `both` (the
/// default) picks which the broker-matrix tests use.
///
/// Where the two differ, and what the tests do about it:
/// - Only the mock can inject faults inside the protocol (brokers down,
///   leader and coordinator moves, pushed request errors, added round-trip
///   time); only Tansu can be frozen (SIGSTOP), killed and started again,
///   or cut off, since it is a process of its own.
/// - Only the mock keeps at most ~5 MiB per partition; Tansu's storage here
///   is memory only (the only engine its wheel's build has): a restart
///   starts empty, topics and groups gone.
/// - Tansu's high watermark (ListOffsets latest) is its last batch's base
///   offset + 1, not its last offset + 1 (1,000 messages in one batch per
///   partition read back as 1): lag computed from it is too low by up to
///   one batch. swarm shows what the broker says; tests count completeness
///   by what was produced and handled, and check the committed offsets
///   against the highest offset handled, never against the watermark.
/// - Neither serves DescribeGroups members (Tansu answers with none, the
///   mock has no admin API); Tansu answers ListGroups and committed offsets.
/// - Only Tansu authenticates: `--authentication` refuses every client
///   without SCRAM credentials. Its users live in its storage (memory here)
///   and creating one needs an authenticated client, so only a refusal can
///   be tried, not a password that works. Its own TLS cannot be set up in
///   0.6 (`--cert` and `--key` refuse each other): `TLSProxy` puts TLS in
///   front of it. The mock has neither.
/// - Only the mock (librdkafka 2.12+) serves KIP-848 (`group.protocol =
///   consumer`); Tansu 0.6 serves the classic protocol only.
/// - The mock takes about `session.timeout.ms` for every rebalance and
///   starts rebalances of its own; Tansu's first assignment of a group came
///   after about 20 s here.
/// - The mock has no static membership: it keeps `group.instance.id` but
///   finds members by member id only (`rd_kafka_mock_cgrp_classic_member_add`),
///   so a node SIGKILLed and started again joins as a new member (one
///   rebalance) and the dead one leaves at `session.timeout.ms` (a second,
///   that nobody announced). Kafka gives the static member's identity and
///   assignment to the new process without a rebalance. Figures with node
///   kills on the mock count both.
/// - Tansu 0.6's group coordinator departs from Kafka's twice, and both
///   bite swarm (`BrokerGroupTests` shows each with plain consumers):
///   a leader that leaves (LeaveGroup: a drain, a scale-down) while the
///   group rebalances stays its leader, and no member can ever sync an
///   assignment again until the broker restarts; and a static member that
///   dies is never removed by session timeout (only a LeaveGroup makes
///   Tansu look for missed heartbeats). The mock, like Kafka, replaces the
///   leader and expires the member. The chaos test on Tansu therefore lets
///   a member leave only once the group settled (`ReliabilityTests`).
protocol TestBroker: AnyObject {
    var name: String { get }
    var bootstrap: String { get }
    func committed(group: String, topic: String, partitions: Int) throws -> [Int64]
}

extension TestBroker {
    /// Produces `key:value` lines with kcat, the independent client, to one partition or by key.
    func produce(_ topic: String, keys: [String], partition: Int? = nil, value: String? = nil) throws {
        let lines = keys.map { "\($0):\(value ?? "value-of-\($0)")" }.joined(separator: "\n") + "\n"
        var args = ["-P", "-b", bootstrap, "-t", topic, "-K", ":"]
        if let partition { args += ["-p", String(partition)] }
        let r = try runCommand("/usr/bin/kcat", args, stdin: Data(lines.utf8))
        XCTAssertEqual(r.status, 0, "kcat (\(name)): \(r.stderr)")
    }

    /// Starts kcat producing `keys` from a file and returns it running.
    func produceInBackground(_ topic: String, keys: [String], dir: URL, name: String = "") throws -> Process {
        let file = dir.appendingPathComponent("produce-\(topic)\(name)")
        try (keys.map { "\($0):value-of-\($0)" }.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/kcat")
        p.arguments = ["-P", "-b", bootstrap, "-t", topic, "-K", ":"]
        p.standardInput = try FileHandle(forReadingFrom: file)
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    func committed(group: String, topic: String, partitions: Int) throws -> [Int64] {
        let c = try KafkaConsumer(properties: ["bootstrap.servers": bootstrap, "group.id": group, "log_level": "0"])
        defer { c.close() }
        return try c.committed(topic: topic, partitions: partitions)
    }

    /// The high watermarks the broker answers (ListOffsets latest), as it says them.
    func highWatermarks(topic: String, partitions: Int) throws -> [Int64] {
        let c = try KafkaConsumer(properties: ["bootstrap.servers": bootstrap, "group.id": "swarm-test-watermarks", "log_level": "0"])
        defer { c.close() }
        return try c.highWatermarks(topic: topic, partitions: partitions)
    }

    /// Reads a whole topic with kcat: one "key|headers" line per message.
    func consumeAll(_ topic: String) throws -> [String] {
        let r = try runCommand("/usr/bin/kcat", ["-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-f", "%k|%h\n"])
        return r.stdout.split(separator: "\n").map(String.init)
    }
}

extension BrokerUnderTest: TestBroker {
    var name: String { "mock" }
}

/// Which brokers the matrix tests run against (`SWARM_TEST_BROKER`).
enum TestBrokers {
    static var selected: [String] {
        switch ProcessInfo.processInfo.environment["SWARM_TEST_BROKER"] ?? "both" {
        case "mock": return ["mock"]
        case "tansu": return ["tansu"]
        default: return ["mock", "tansu"]
        }
    }

    static func start(_ name: String, topics: [String: Int]) throws -> TestBroker {
        name == "tansu" ? try TansuBroker(topics: topics) : try BrokerUnderTest(topics: topics)
    }
}

/// Tansu 0.6.0 on a free loopback port, in memory, stopped by PID when the
/// test lets go of it (scripts/tansu installs it).
final class TansuBroker: TestBroker {
    static let binary = ProcessInfo.processInfo.environment["SWARM_TANSU"] ?? "/usr/local/libexec/swarm-tests/tansu"
    let name = "tansu"
    let port: UInt16
    var bootstrap: String { "127.0.0.1:\(port)" }
    private(set) var process: Process
    let log: URL
    /// More `tansu broker` options (`--authentication`, `--cert`, `--key`).
    let options: [String]
    /// The listener's scheme: tcp, or tls with `--cert`.
    let scheme: String

    /// More environment (`RUST_LOG=tansu_service=debug` logs every
    /// request with its peer: one peer address per connection).
    let environment: [String: String]

    /// The address Tansu tells clients to connect to, when it is not its
    /// own (a TLS proxy in front of it: see `TLSProxy`).
    let advertised: String?

    init(topics: [String: Int], options: [String] = [], tls: Bool = false, environment: [String: String] = [:],
         advertised: String? = nil) throws {
        self.options = options
        self.advertised = advertised
        self.environment = environment
        self.scheme = tls ? "tls" : "tcp"
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw XCTSkip("Tansu is not installed at \(Self.binary) (scripts/tansu installs it; scripts/test runs setup)")
        }
        port = try freeLoopbackPort()
        log = makeTempDir().appendingPathComponent("tansu.log")
        process = Process()
        try start()
        for (topic, partitions) in topics { try createTopic(topic, partitions: partitions) }
    }

    /// Starts (or starts again, empty) the broker process and waits until it answers.
    func start() throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["broker", "--listener-url", "\(scheme)://\(bootstrap)", "--advertised-listener-url", "\(scheme)://\(advertised ?? bootstrap)",
                             "--storage-engine", "memory://tansu/"] + options
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: log)
        process.standardError = process.standardOutput
        try process.run()
        eventually("Tansu to accept connections on \(bootstrap)", timeout: 30) { loopbackAccepts(self.port) }
    }

    func createTopic(_ topic: String, partitions: Int) throws {
        let r = try runCommand(Self.binary, ["topic", "create", "--broker", "tcp://\(bootstrap)", "--partitions", "\(partitions)", topic])
        XCTAssertEqual(r.status, 0, "tansu topic create: \(r.stdout)\(r.stderr)")
    }

    /// The client connections the broker served so far (distinct peer
    /// addresses in its log): only with `RUST_LOG=tansu_service=debug`.
    func connections() -> Int {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        var peers = Set<Substring>()
        for line in text.split(separator: "\n") {
            guard let r = line.range(of: "peer=") else { continue }
            peers.insert(line[r.upperBound...].prefix { $0 != "}" && $0 != " " })
        }
        return peers.count
    }

    /// True when one line of the broker's log holds every one of `parts`.
    func logContains(_ parts: String...) -> Bool {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").contains { line in parts.allSatisfy { line.contains($0) } }
    }

    /// SIGSTOP / SIGCONT: a broker that stops answering without closing a connection.
    func freeze() { kill(process.processIdentifier, SIGSTOP) }
    func thaw() { kill(process.processIdentifier, SIGCONT) }

    /// Killed at once (SIGKILL), as a crash or an OOM kill would: with its
    /// storage in memory, a `start()` after this brings up an empty broker.
    func crash() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGCONT)
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A TCP port on 127.0.0.1 nobody listens on now (the kernel's choice).
func freeLoopbackPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw SwarmError(.usage, "no free loopback port: \(errnoText())") }
    return UInt16(bigEndian: addr.sin_port)
}

/// True when something accepts a TCP connection on 127.0.0.1:port.
func loopbackAccepts(_ port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = port.bigEndian
    return withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// TLS in front of a broker, with a CA made by openssl for the test. Tansu
/// 0.6's own TLS cannot be set up (its CLI refuses `--cert` together with
/// `--key`, and with the key inside the `--cert` file no handshake
/// completes), so socat terminates TLS for it, as a TLS proxy or load
/// balancer would, and Tansu advertises socat's address.
final class TLSProxy {
    let port: UInt16
    let dir: URL
    var bootstrap: String { "127.0.0.1:\(port)" }
    var caPath: String { dir.appendingPathComponent("ca.pem").path }
    /// A CA that signed nothing here: a client trusting it must refuse the broker.
    var otherCAPath: String { dir.appendingPathComponent("other-ca.pem").path }
    private let process = Process()

    /// A CA, a server certificate for 127.0.0.1 signed by it, and a second, unrelated CA.
    init(port: UInt16, forwardingTo target: UInt16) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/socat"), FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            throw XCTSkip("socat and openssl are needed for the TLS test (scripts/setup installs them for the tests)")
        }
        self.port = port
        dir = makeTempDir()
        let d = dir.path
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: "\(d)/ext", atomically: true, encoding: .utf8)
        for args in [["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/ca.key", "-out", "\(d)/ca.pem", "-days", "2", "-subj", "/CN=swarm-test-ca"],
                     ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/other-ca.key", "-out", "\(d)/other-ca.pem", "-days", "2", "-subj", "/CN=swarm-other-ca"],
                     ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/server.key", "-out", "\(d)/server.csr", "-subj", "/CN=127.0.0.1"],
                     ["x509", "-req", "-in", "\(d)/server.csr", "-CA", "\(d)/ca.pem", "-CAkey", "\(d)/ca.key", "-CAcreateserial",
                      "-out", "\(d)/server.pem", "-days", "2", "-extfile", "\(d)/ext"]] {
            let r = try runCommand("/usr/bin/openssl", args)
            guard r.status == 0 else { throw SwarmError(.usage, "openssl \(args[0]): \(r.stderr)") }
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/socat")
        process.arguments = ["OPENSSL-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork,cert=\(d)/server.pem,key=\(d)/server.key,verify=0",
                             "TCP:127.0.0.1:\(target)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        eventually("socat to listen on \(bootstrap)", timeout: 30) { loopbackAccepts(port) }
    }

    deinit {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }
}
