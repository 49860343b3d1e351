import Foundation
import Shared
import XCTest

/// The public toml-test suite, TOML 1.0.0 files, read where it lies
/// (`../shared/toml-test`, or `$SWARM_TOML_TEST`): every valid file must
/// parse to exactly its expected value, every invalid one must be refused
/// with a line number.
final class TOMLConformanceTests: XCTestCase {
    static var suiteRoot: URL? {
        if let env = ProcessInfo.processInfo.environment["SWARM_TOML_TEST"] { return URL(fileURLWithPath: env) }
        let here = URL(fileURLWithPath: #filePath)  // <repo>/Tests/SwarmTests/this.swift
        let repo = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidate = repo.deletingLastPathComponent().appendingPathComponent("shared/toml-test")
        return FileManager.default.fileExists(atPath: candidate.path) ? candidate : nil
    }

    func files() throws -> (root: URL, valid: [String], invalid: [String]) {
        guard let root = Self.suiteRoot else {
            throw XCTSkip("toml-test not found beside the repository (../shared/toml-test) and SWARM_TOML_TEST is not set")
        }
        let list = try String(contentsOf: root.appendingPathComponent("tests/files-toml-1.0.0"), encoding: .utf8)
        let tomlFiles = list.split(separator: "\n").map(String.init).filter { $0.hasSuffix(".toml") }
        return (root.appendingPathComponent("tests"), tomlFiles.filter { $0.hasPrefix("valid/") }, tomlFiles.filter { $0.hasPrefix("invalid/") })
    }

    func testEveryValidTOML10FileParsesToItsExpectedValue() throws {
        let (root, valid, _) = try files()
        XCTAssertEqual(valid.count, 210, "the 1.0.0 list has 210 valid files")
        var failures: [String] = []
        for name in valid {
            let bytes = try [UInt8](Data(contentsOf: root.appendingPathComponent(name)))
            let expectedURL = root.appendingPathComponent(String(name.dropLast(5)) + ".json")
            let expected = try JSONValue.parse([UInt8](Data(contentsOf: expectedURL)))
            do {
                let table = try TOMLParser.parse(bytes: bytes)
                if let difference = Self.compare(.table(table), expected, path: "") {
                    failures.append("\(name): \(difference)")
                }
            } catch {
                failures.append("\(name): refused: \(error)")
            }
        }
        XCTAssertEqual(failures, [], "\(failures.count) of \(valid.count) valid files misread")
    }

    func testEveryInvalidTOML10FileIsRefusedWithALine() throws {
        let (root, _, invalid) = try files()
        XCTAssertEqual(invalid.count, 499, "the 1.0.0 list has 499 invalid files")
        var accepted: [String] = []
        for name in invalid {
            let bytes = try [UInt8](Data(contentsOf: root.appendingPathComponent(name)))
            do {
                _ = try TOMLParser.parse(bytes: bytes)
                accepted.append(name)
            } catch let error as TOMLError {
                XCTAssertGreaterThan(error.line, 0, name)
                XCTAssertFalse(error.message.isEmpty, name)
            }
        }
        XCTAssertEqual(accepted, [], "\(accepted.count) of \(invalid.count) invalid files accepted")
    }

    /// nil when `value` is what toml-test's tagged JSON says, else where it differs.
    static func compare(_ value: TOMLValue, _ json: JSONValue, path: String) -> String? {
        switch (value, json) {
        case (.table(let t), .object(let o)):
            if Set(t.keys) != Set(o.keys) { return "\(path): keys \(t.keys.sorted()) != \(o.keys.sorted())" }
            for k in t.keys {
                if let d = compare(t[k]!, o[k]!, path: path + "." + k) { return d }
            }
            return nil
        case (.array(let a), .array(let b)):
            guard a.count == b.count else { return "\(path): \(a.count) items, expected \(b.count)" }
            for (i, pair) in zip(a, b).enumerated() {
                if let d = compare(pair.0, pair.1, path: "\(path)[\(i)]") { return d }
            }
            return nil
        case (_, .object(let o)):
            guard case .string(let type)? = o["type"], case .string(let text)? = o["value"] else {
                return "\(path): expected a table, found \(value.typeName)"
            }
            return scalar(value, type: type, text: text) ? nil : "\(path): \(value) is not \(type) \(text)"
        default:
            return "\(path): \(value.typeName) where \(json.text) was expected"
        }
    }

    static func scalar(_ value: TOMLValue, type: String, text: String) -> Bool {
        switch (value, type) {
        case (.string(let s), "string"): return s == text
        case (.integer(let i), "integer"): return Int64(text) == i
        case (.boolean(let b), "bool"): return text == (b ? "true" : "false")
        case (.float(let f), "float"):
            switch text {
            case "nan", "+nan", "-nan": return f.isNaN
            case "inf", "+inf": return f == .infinity
            case "-inf": return f == -.infinity
            default: return Double(text) == f
            }
        case (.dateTime(let d), "datetime"), (.dateTime(let d), "datetime-local"),
             (.dateTime(let d), "date-local"), (.dateTime(let d), "time-local"):
            // The expected text is RFC 3339 too: read it with the same grammar and compare the parts.
            guard let parsed = try? TOMLParser.parse("v = \(text)"), case .dateTime(let e)? = parsed["v"] else { return false }
            let kinds = ["datetime": "a date-time", "datetime-local": "a local date-time",
                         "date-local": "a local date", "time-local": "a local time"]
            return d == e && d.typeName == kinds[type]
        default:
            return false
        }
    }
}
