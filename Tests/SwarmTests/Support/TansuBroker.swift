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
/// - Only the mock (librdkafka 2.12+) serves KIP-848 (`group.protocol =
///   consumer`); Tansu 0.6 serves the classic protocol only.
/// - The mock takes about `session.timeout.ms` for every rebalance and
///   starts rebalances of its own; Tansu's first assignment of a group came
///   after about 20 s here.
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

    func committed(group: String, topic: String, partitions: Int) throws -> [Int64] {
        let c = try KafkaConsumer(properties: ["bootstrap.servers": bootstrap, "group.id": group, "log_level": "0"])
        defer { c.close() }
        return try c.committed(topic: topic, partitions: partitions)
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

    init(topics: [String: Int], options: [String] = [], tls: Bool = false, environment: [String: String] = [:]) throws {
        self.options = options
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
        process.arguments = ["broker", "--listener-url", "\(scheme)://\(bootstrap)", "--advertised-listener-url", "\(scheme)://\(bootstrap)",
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
