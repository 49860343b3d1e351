import Foundation
import XCTest

/// Several hosts on one machine: a broker's network namespace, and one
/// namespace per host joined to it by a veth pair (host i is 10.77.i.2, the
/// broker's side 10.77.i.1; the test itself, in the root namespace, is
/// i = 9). The mock broker listens on loopback only, so each namespace
/// relays its own loopback port to it (Fixtures/tcp-relay.py). Every
/// namespace, link and relay is removed when the network goes.
final class TestNetwork {
    let tag = "\(getpid() % 10000)"
    let brokerNs: String
    let hosts: [String]
    private var relays: [Process] = []

    /// `hosts` namespace names get the tag appended. Throws XCTSkip without root or iproute2.
    init(hosts names: [String]) throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") else { throw XCTSkip("needs root and iproute2") }
        let tag = self.tag
        brokerNs = "swarm-b-\(tag)"
        hosts = names.map { "swarm-\($0)-\(tag)" }
        guard try Self.sh("ip netns add \(brokerNs)").status == 0 else { throw XCTSkip("network namespaces are not allowed here") }
        var script = "set -e\nip -n \(brokerNs) link set lo up\n"
        for (i, ns) in hosts.enumerated() {
            let n = i + 1
            script += """
            ip netns add \(ns)
            ip -n \(ns) link set lo up
            ip link add v\(n)-\(tag) netns \(ns) type veth peer name p\(n)-\(tag) netns \(brokerNs)
            ip -n \(ns) addr add 10.77.\(n).2/24 dev v\(n)-\(tag) && ip -n \(ns) link set v\(n)-\(tag) up
            ip -n \(brokerNs) addr add 10.77.\(n).1/24 dev p\(n)-\(tag) && ip -n \(brokerNs) link set p\(n)-\(tag) up

            """
        }
        script += """
        ip link add swarm-root-\(tag) type veth peer name p9-\(tag) netns \(brokerNs)
        ip addr add 10.77.9.2/24 dev swarm-root-\(tag) && ip link set swarm-root-\(tag) up
        ip -n \(brokerNs) addr add 10.77.9.1/24 dev p9-\(tag) && ip -n \(brokerNs) link set p9-\(tag) up
        """
        let links = try Self.sh(script)
        XCTAssertEqual(links.status, 0, links.stderr)
    }

    deinit {
        for r in relays where r.isRunning { r.terminate(); r.waitUntilExit() }
        for n in hosts + [brokerNs] { _ = try? Self.sh("ip netns pids \(n) 2>/dev/null | xargs -r kill -9; ip netns del \(n) 2>/dev/null") }
        _ = try? Self.sh("ip link del swarm-root-\(tag) 2>/dev/null")
    }

    /// Runs a program in the broker's namespace (`BrokerUnderTest(launcher:)`).
    var brokerLauncher: [String] { ["/usr/sbin/ip", "netns", "exec", brokerNs] }

    /// Runs a program as host `i`, with a host name of its own (a UTS
    /// namespace: it is also swarmd's default instance prefix).
    func launcher(host i: Int, hostname: String) -> [String] {
        ["/usr/sbin/ip", "netns", "exec", hosts[i], "/usr/bin/unshare", "--uts", "/bin/sh", "-c", "hostname \(hostname) && exec \"$0\" \"$@\""]
    }

    /// Makes the broker's loopback `port` reachable on every host's loopback (and the root's).
    func relay(port: String) throws {
        let relay = fixtures.appendingPathComponent("tcp-relay.py").path
        func start(_ ns: String?, listen: String, target: String) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: ns == nil ? "/usr/bin/python3" : "/usr/sbin/ip")
            p.arguments = (ns.map { ["netns", "exec", $0, "/usr/bin/python3"] } ?? []) + [relay, listen, port, target, port]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            relays.append(p)
            XCTAssertEqual(String(decoding: out.fileHandleForReading.readData(ofLength: 5), as: UTF8.self), "ready")
        }
        for (i, ns) in hosts.enumerated() {
            try start(brokerNs, listen: "10.77.\(i + 1).1", target: "127.0.0.1")
            try start(ns, listen: "127.0.0.1", target: "10.77.\(i + 1).1")
        }
        try start(brokerNs, listen: "10.77.9.1", target: "127.0.0.1")
        try start(nil, listen: "127.0.0.1", target: "10.77.9.1")
    }

    /// Host `i` cut off from the broker: its end of the veth pair taken
    /// down, as a pulled cable or a dead switch port would. (tc netem, for
    /// loss and delay, needs the kernel's sch_netem, which this machine's
    /// kernel does not have: "Specified qdisc kind is unknown".)
    func cut(host i: Int) throws {
        let r = try Self.sh("ip -n \(hosts[i]) link set v\(i + 1)-\(tag) down")
        XCTAssertEqual(r.status, 0, "ip link set down: \(r.stderr)")
    }

    /// Host `i`'s link works again (its address and route come back with it).
    func restore(host i: Int) throws {
        let r = try Self.sh("ip -n \(hosts[i]) link set v\(i + 1)-\(tag) up")
        XCTAssertEqual(r.status, 0, "ip link set up: \(r.stderr)")
    }

    static func sh(_ script: String) throws -> CommandResult { try runCommand("/bin/bash", ["-c", script]) }
}
