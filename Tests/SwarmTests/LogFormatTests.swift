import Foundation
import Shared
import XCTest

/// swarmd's log lines end in logfmt pairs that logfmt readers (Loki, Vector,
/// lnav) split correctly: checked with a strict parser, on values made to be
/// awkward and on a real swarmd's log.
final class LogFormatTests: XCTestCase {
    /// A strict logfmt reader for `key=value key="quoted \"value\""…`; nil on anything malformed.
    func parse(_ text: Substring) -> [(String, String)]? {
        var out: [(String, String)] = []
        var i = text.startIndex
        while i < text.endIndex {
            while i < text.endIndex && text[i] == " " { i = text.index(after: i) }
            if i == text.endIndex { break }
            guard let eq = text[i...].firstIndex(of: "="), !text[i..<eq].contains(" "), eq > i else { return nil }
            let key = String(text[i..<eq])
            i = text.index(after: eq)
            var value = ""
            if i < text.endIndex && text[i] == "\"" {
                i = text.index(after: i)
                var closed = false
                while i < text.endIndex {
                    let c = text[i]
                    if c == "\\" {
                        i = text.index(after: i)
                        guard i < text.endIndex else { return nil }
                        switch text[i] {
                        case "n": value += "\n"
                        case "t": value += "\t"
                        case "r": value += "\r"
                        case "\"": value += "\""
                        case "\\": value += "\\"
                        default: return nil
                        }
                    } else if c == "\"" {
                        closed = true
                        i = text.index(after: i)
                        break
                    } else {
                        value.append(c)
                    }
                    i = text.index(after: i)
                }
                guard closed else { return nil }
                if i < text.endIndex && text[i] != " " { return nil }
            } else {
                let end = text[i...].firstIndex(of: " ") ?? text.endIndex
                value = String(text[i..<end])
                guard !value.contains("\"") && !value.contains("=") else { return nil }
                i = end
            }
            out.append((key, value))
        }
        return out
    }

    func testAwkwardValuesReadBackExactly() {
        for value in ["plain", "", "spawned pid 10678", "say \"hi\"", "a=b", "back\\slash", "two\nlines", "tab\there", "ünïcode ok"] {
            let line = "k=" + StderrLogHandler.logfmt(value) + " next=1"
            let pairs = parse(line[...])
            XCTAssertEqual(pairs?.first?.1, value, line)
            XCTAssertEqual(pairs?.last?.0, "next", line)
        }
    }

    func testARealSwarmdLogSplitsIntoPairs() throws {
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2))
        swarmd.waitForHealthy(2)
        kill(try XCTUnwrap(swarmd.nodePids().first), SIGKILL)
        swarmd.waitForLog("node exited: killed by signal KILL")
        swarmd.waitForHealthy(2)
        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        var checked = 0
        for line in swarmd.log.split(separator: "\n") where line.contains("[swarmd] node ") && line.contains(" from=") {
            // The pairs start at the first key of the metadata (sorted: `from` comes first in a transition line).
            let tail = line[line.range(of: " from=")!.lowerBound...]
            let pairs = try XCTUnwrap(parse(tail), "not logfmt: \(line)")
            let keys = pairs.map(\.0)
            XCTAssertEqual(keys, keys.sorted(), "\(line)")
            XCTAssertTrue(pairs.contains { $0.0 == "reason" && !$0.1.isEmpty }, "\(line)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 4, "transitions were logged and parsed")
        XCTAssertTrue(swarmd.log.contains("reason=\"spawned pid "), "a value with spaces is quoted")
    }
}
