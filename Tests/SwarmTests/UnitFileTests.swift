import Foundation
import XCTest

/// The systemd units swarm ships, checked by systemd's own analyzer: they
/// load cleanly, and their sandboxing keeps `systemd-analyze security` at
/// 3.0 ("OK") or better. (Running them under a real systemd is the opt-in
/// Tests/systemd script.)
final class UnitFileTests: XCTestCase {
    let contrib = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../contrib").standardized

    func exposure(_ unit: String) throws -> Double {
        let r = try runCommand("/usr/bin/systemd-analyze", ["security", "--offline=yes", contrib.appendingPathComponent(unit).path])
        let last = r.stdout.split(separator: "\n").last { $0.contains("Overall exposure level") } ?? ""
        let number = last.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }
        return try XCTUnwrap(number, "systemd-analyze said: \(r.stdout.suffix(300)) \(r.stderr)")
    }

    func testTheUnitsAreSandboxed() throws {
        XCTAssertLessThanOrEqual(try exposure("swarmd.service"), 3.0)
        XCTAssertLessThanOrEqual(try exposure("swarmd@.service"), 3.0)
    }

    func testTheUnitsLoadCleanly() throws {
        let dir = makeTempDir()
        for unit in ["swarmd.service", "swarmd@.service"] {
            // The shipped paths, pointed at this build; man pages are not installed here.
            let text = try String(contentsOf: contrib.appendingPathComponent(unit), encoding: .utf8)
                .replacingOccurrences(of: "/usr/local/bin/swarmd", with: swarmdPath)
                .replacingOccurrences(of: "/usr/local/bin/swarmctl", with: swarmctlPath)
                .split(separator: "\n").filter { !$0.hasPrefix("Documentation=") }.joined(separator: "\n")
            let name = unit == "swarmd@.service" ? "swarmd@orders.service" : unit
            try text.write(to: dir.appendingPathComponent(unit), atomically: true, encoding: .utf8)
            let r = try runCommand("/usr/bin/systemd-analyze", ["verify", dir.appendingPathComponent(unit).path + (unit == name ? "" : ":\(name)")])
            XCTAssertEqual(r.status, 0, "\(unit): \(r.stdout)\(r.stderr)")
            XCTAssertEqual(r.stderr, "", "\(unit) loads without a remark")
        }
        XCTAssertTrue(try String(contentsOf: contrib.appendingPathComponent("swarmd.service"), encoding: .utf8).contains("OOMPolicy=continue"),
                      "one OOM-killed node must not stop the unit")
    }
}
