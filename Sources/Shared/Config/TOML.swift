/// A value of a TOML document: the subset swarm's configuration needs
/// (tables, strings, integers, floats, booleans, arrays, inline tables).
/// Dates are refused with a clear error rather than misread.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    public var typeName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a number"
        case .boolean: return "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        }
    }
}

/// A TOML table that remembers the line each key was defined on, so that
/// configuration errors can point at it.
public struct TOMLTable: Equatable, Sendable {
    public private(set) var keys: [String] = []
    public private(set) var values: [String: TOMLValue] = [:]
    public private(set) var lines: [String: Int] = [:]

    public init() {}

    public subscript(key: String) -> TOMLValue? { values[key] }

    public func line(of key: String) -> Int? { lines[key] }

    mutating func set(_ key: String, _ value: TOMLValue, line: Int) {
        if values[key] == nil { keys.append(key) }
        values[key] = value
        lines[key] = line
    }
}

/// A TOML syntax error with the line it was found on.
public struct TOMLError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// A small, strict TOML parser. Why our own: the configuration needs a few
/// dozen keys, and a parser that knows line numbers gives errors an operator
/// can act on without pulling a C++ library into every build.
public struct TOMLParser {
    private var chars: [Character]
    private var pos = 0
    private var line = 1

    public static func parse(_ text: String) throws -> TOMLTable {
        var parser = TOMLParser(chars: Array(text))
        return try parser.document()
    }

    private init(chars: [Character]) { self.chars = chars }

    private var atEnd: Bool { pos >= chars.count }
    private var peek: Character? { atEnd ? nil : chars[pos] }

    private func fail(_ message: String) -> TOMLError { TOMLError(line: line, message: message) }

    private mutating func advance() {
        if chars[pos] == "\n" { line += 1 }
        pos += 1
    }

    private mutating func skipSpaces() {
        while let c = peek, c == " " || c == "\t" { advance() }
    }

    /// Skips spaces, comments and newlines (inside arrays).
    private mutating func skipWhitespaceAndComments() {
        while let c = peek {
            if c == " " || c == "\t" || c == "\n" || c == "\r" {
                advance()
            } else if c == "#" {
                while let d = peek, d != "\n" { advance() }
            } else {
                break
            }
        }
    }

    private mutating func endOfLine() throws {
        skipSpaces()
        if peek == "#" { while let d = peek, d != "\n" { advance() } }
        if peek == "\r" { advance() }
        if let c = peek {
            guard c == "\n" else { throw fail("unexpected '\(c)' after the value; one key = value per line") }
            advance()
        }
    }

    private mutating func document() throws -> TOMLTable {
        var root = TOMLTable()
        var current: [String] = []
        var definedTables: Set<[String]> = []
        while true {
            skipWhitespaceAndComments()
            guard let c = peek else { break }
            if c == "[" {
                advance()
                if peek == "[" { throw fail("arrays of tables ([[...]]) are not used by swarm's configuration") }
                skipSpaces()
                let path = try keyPath()
                skipSpaces()
                guard peek == "]" else { throw fail("expected ']' to close the table header") }
                advance()
                try endOfLine()
                guard !definedTables.contains(path) else {
                    throw fail("table [\(path.joined(separator: "."))] is defined twice")
                }
                definedTables.insert(path)
                try ensureTable(&root, path, line: line - 1)
                current = path
            } else {
                let keyLine = line
                let path = try keyPath()
                skipSpaces()
                guard peek == "=" else { throw fail("expected '=' after the key '\(path.joined(separator: "."))'") }
                advance()
                skipSpaces()
                let value = try self.value()
                try endOfLine()
                try insert(&root, current + path, value, line: keyLine)
            }
        }
        return root
    }

    private mutating func keyPath() throws -> [String] {
        var parts: [String] = []
        while true {
            skipSpaces()
            guard let c = peek else { throw fail("expected a key") }
            if c == "\"" {
                parts.append(try basicString())
            } else if c == "'" {
                parts.append(try literalString())
            } else {
                var key = ""
                while let d = peek, d.isLetter || d.isNumber || d == "_" || d == "-" {
                    key.append(d)
                    advance()
                }
                guard !key.isEmpty else { throw fail("expected a key, found '\(c)'") }
                parts.append(key)
            }
            skipSpaces()
            if peek == "." { advance(); continue }
            return parts
        }
    }

    private func ensureTable(_ root: inout TOMLTable, _ path: [String], line: Int) throws {
        guard let first = path.first else { return }
        var child: TOMLTable
        switch root[first] {
        case nil: child = TOMLTable()
        case .table(let t): child = t
        case .some(let other):
            throw TOMLError(line: line, message: "'\(first)' is \(other.typeName), not a table")
        }
        try ensureTable(&child, Array(path.dropFirst()), line: line)
        root.set(first, .table(child), line: root.line(of: first) ?? line)
    }

    private func insert(_ table: inout TOMLTable, _ path: [String], _ value: TOMLValue, line: Int) throws {
        let first = path[0]
        if path.count == 1 {
            guard table[first] == nil else {
                throw TOMLError(line: line, message: "the key '\(first)' is defined twice")
            }
            table.set(first, value, line: line)
            return
        }
        var child: TOMLTable
        switch table[first] {
        case nil: child = TOMLTable()
        case .table(let t): child = t
        case .some(let other):
            throw TOMLError(line: line, message: "'\(first)' is \(other.typeName), not a table")
        }
        try insert(&child, Array(path.dropFirst()), value, line: line)
        table.set(first, .table(child), line: table.line(of: first) ?? line)
    }

    private mutating func value() throws -> TOMLValue {
        guard let c = peek else { throw fail("expected a value") }
        switch c {
        case "\"":
            if matches("\"\"\"") { throw fail("multi-line strings are not supported; use one line with \\n escapes") }
            return .string(try basicString())
        case "'":
            return .string(try literalString())
        case "[":
            return try array()
        case "{":
            return try inlineTable()
        case "t", "f":
            if matches("true") { pos += 4; return .boolean(true) }
            if matches("false") { pos += 5; return .boolean(false) }
            throw fail("expected a value; strings need quotes")
        default:
            return try number()
        }
    }

    private func matches(_ s: String) -> Bool {
        let want = Array(s)
        guard pos + want.count <= chars.count else { return false }
        return Array(chars[pos..<pos + want.count]) == want
    }

    private mutating func basicString() throws -> String {
        advance()  // opening quote
        var out = ""
        while true {
            guard let c = peek, c != "\n" else { throw fail("unterminated string") }
            advance()
            if c == "\"" { return out }
            if c == "\\" {
                guard let e = peek else { throw fail("unterminated string") }
                advance()
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "\\": out.append("\\")
                case "\"": out.append("\"")
                case "u", "U":
                    let count = e == "u" ? 4 : 8
                    var hex = ""
                    for _ in 0..<count {
                        guard let h = peek else { throw fail("unterminated escape") }
                        hex.append(h)
                        advance()
                    }
                    guard let scalarValue = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(scalarValue) else {
                        throw fail("invalid unicode escape \\\(e)\(hex)")
                    }
                    out.unicodeScalars.append(scalar)
                default:
                    throw fail("unknown escape \\\(e) in a string")
                }
            } else {
                out.append(c)
            }
        }
    }

    private mutating func literalString() throws -> String {
        advance()
        var out = ""
        while true {
            guard let c = peek, c != "\n" else { throw fail("unterminated string") }
            advance()
            if c == "'" { return out }
            out.append(c)
        }
    }

    private mutating func array() throws -> TOMLValue {
        advance()
        var items: [TOMLValue] = []
        while true {
            skipWhitespaceAndComments()
            if peek == "]" { advance(); return .array(items) }
            items.append(try value())
            skipWhitespaceAndComments()
            if peek == "," { advance(); continue }
            if peek == "]" { advance(); return .array(items) }
            throw fail("expected ',' or ']' in an array")
        }
    }

    private mutating func inlineTable() throws -> TOMLValue {
        advance()
        var table = TOMLTable()
        skipSpaces()
        if peek == "}" { advance(); return .table(table) }
        while true {
            let keyLine = line
            let path = try keyPath()
            skipSpaces()
            guard peek == "=" else { throw fail("expected '=' in an inline table") }
            advance()
            skipSpaces()
            let v = try value()
            try insert(&table, path, v, line: keyLine)
            skipSpaces()
            if peek == "," { advance(); continue }
            if peek == "}" { advance(); return .table(table) }
            throw fail("expected ',' or '}' in an inline table")
        }
    }

    private mutating func number() throws -> TOMLValue {
        var text = ""
        while let c = peek, c.isNumber || "+-._eExobabcdefABCDEF:".contains(c) {
            text.append(c)
            advance()
        }
        let clean = String(text.filter { $0 != "_" })
        if clean.isEmpty { throw fail("expected a value, found '\(peek.map(String.init) ?? "end of file")'; strings need quotes") }
        if clean.contains(":") || (clean.count >= 10 && clean.dropFirst(4).first == "-") {
            throw fail("dates and times are not supported; write durations in seconds")
        }
        if clean.hasPrefix("0x"), let v = Int64(clean.dropFirst(2), radix: 16) { return .integer(v) }
        if clean.hasPrefix("0o"), let v = Int64(clean.dropFirst(2), radix: 8) { return .integer(v) }
        if clean.hasPrefix("0b"), let v = Int64(clean.dropFirst(2), radix: 2) { return .integer(v) }
        if let v = Int64(clean) { return .integer(v) }
        if let v = Double(clean), !clean.hasPrefix(".") { return .float(v) }
        throw fail("'\(text)' is not a valid value; strings need quotes")
    }
}
