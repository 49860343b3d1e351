import Foundation
import XCTest

/// Every shell script swarm ships or runs (setup, CI, benchmarks, the
/// systemd test, fixtures) passes shellcheck: the scripts an operator or CI
/// runs once a year are the ones whose quoting bugs nobody sees coming.
final class ShellScriptTests: XCTestCase {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    func testEveryShellScriptPassesShellcheck() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/shellcheck") else {
            throw XCTSkip("shellcheck is not installed (scripts/setup installs it for the tests)")
        }
        var scripts: [String] = []
        for dir in ["scripts", ".ci", "Benchmarks", "Tests/systemd", "Tests/SwarmTests/Fixtures", "debian"] {
            let base = repo.appendingPathComponent(dir)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? [] {
                let path = base.appendingPathComponent(name).path
                guard let head = FileManager.default.contents(atPath: path)?.prefix(64) else { continue }
                let line = String(decoding: head, as: UTF8.self)
                if line.hasPrefix("#!/bin/bash") || line.hasPrefix("#!/usr/bin/env bash") || line.hasPrefix("#!/bin/sh") { scripts.append(path) }
            }
        }
        XCTAssertGreaterThanOrEqual(scripts.count, 7, "\(scripts)")
        let r = try runCommand("/usr/bin/shellcheck", ["-x"] + scripts)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
    }
}
