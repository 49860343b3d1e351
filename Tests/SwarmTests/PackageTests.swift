import Foundation
import Shared
import XCTest

/// What the Debian package takes from the tree agrees with the tree: its
/// version, the example configuration it installs as a conffile, the user
/// it creates. (Building, installing, upgrading and purging the package is
/// the opt-in Tests/systemd/package.sh, under a real systemd; `.ci/run`
/// builds it and runs lintian.)
final class PackageTests: XCTestCase {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    func testTheChangelogNamesTheSourcesVersion() throws {
        let changelog = try String(contentsOf: repo.appendingPathComponent("debian/changelog"), encoding: .utf8)
        let first = try XCTUnwrap(changelog.split(separator: "\n").first)
        XCTAssertTrue(first.hasPrefix("swarmd (\(SwarmVersion.source)) "),
                      "debian/changelog's top entry (\(first)) and SwarmVersion.source must name one version")
    }

    /// As shipped, /etc/swarmd/swarmd.toml starts nothing: --check refuses
    /// it and says what to set. With its comment marks taken off, it is a
    /// valid configuration: the example keeps up with swarmd.toml(5).
    func testTheShippedConfigurationStartsNothingAndItsExampleIsValid() throws {
        let example = repo.appendingPathComponent("contrib/swarmd.toml").path
        let shipped = try runCommand(swarmdPath, ["--check", "--config", example])
        XCTAssertEqual(shipped.status, 78, shipped.stdout + shipped.stderr)
        XCTAssertTrue(shipped.stderr.contains("\"bootstrap.servers\" is required"), shipped.stderr)

        let dir = makeTempDir()
        let password = dir.appendingPathComponent("kafka-password").path
        try "secret\n".write(toFile: password, atomically: true, encoding: .utf8)
        let handler = dir.appendingPathComponent("handler.py").path
        try "".write(toFile: handler, atomically: true, encoding: .utf8)
        let text = try String(contentsOfFile: example, encoding: .utf8)
        let uncommented = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            // "#key = …", "#[table]", "#\"dotted.key\" = …" are settings; "# words" are prose.
            guard line.hasPrefix("#"), let next = line.dropFirst().first, next != " " else { return String(line) }
            return String(line.dropFirst())
        }.joined(separator: "\n")
            .replacingOccurrences(of: "/run/credentials/swarmd.service/kafka-password", with: password)
            .replacingOccurrences(of: "/srv/orders/handler.py", with: handler)
        XCTAssertNotEqual(uncommented, text, "the example has settings to uncomment")
        let path = dir.appendingPathComponent("swarmd.toml").path
        try uncommented.write(toFile: path, atomically: true, encoding: .utf8)
        let filled = try runCommand(swarmdPath, ["--check", "--config", path])
        XCTAssertEqual(filled.status, 0, "the example, uncommented: \(filled.stdout) \(filled.stderr)")
    }

    func testThePackagesUserIsTheShippedSysusersEntry() throws {
        let packaged = repo.appendingPathComponent("debian/swarmd.sysusers").resolvingSymlinksInPath()
        XCTAssertEqual(packaged.path, repo.appendingPathComponent("contrib/sysusers.d/swarmd.conf").resolvingSymlinksInPath().path,
                       "debian/ installs contrib's sysusers entry, not a copy that can drift")
    }
}
