/// A TOML syntax error with the line it was found on.
public struct TOMLError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// A TOML 1.0.0 reader that walks the file's bytes.
///
/// Why bytes: the earlier parser walked Swift `Character`s, and `"\r\n"` is
/// one grapheme, equal to neither `"\n"` nor `"\r"`, so a comment in a file
/// with Windows line endings swallowed the rest of the file and `--check`
/// called it valid. Bytes have no such surprise, and the UTF-8 check before
/// parsing can name the line of a bad byte instead of turning it into U+FFFD.
///
/// Why our own instead of LebJe/TOMLKit 0.6.0 (toml++): TOMLKit adds C++
/// to every clean build and grows the binary several times more than this
/// reader does (the figures: README, "Configuration"). Both read the toml-test files; toml++'s errors name a line and
/// column in its own words ("cannot redefine existing integer 'nodes'"),
/// while swarm's must say `file:line: [section] key …`, which needs line
/// numbers per key that TOMLKit does not give. This reader passes every
/// TOML 1.0.0 file of toml-test (`TOMLConformanceTests`).
public struct TOMLParser {
    /// Arrays and inline tables nested deeper than this are refused rather
    /// than risking the stack; no configuration needs more than a few.
    public static let maxDepth = 64

    private let bytes: [UInt8]
    private var pos = 0
    private var line = 1

    public static func parse(_ text: String) throws -> TOMLTable {
        try parse(bytes: Array(text.utf8))
    }

    /// Parses a whole file: UTF-8, an optional byte-order mark, LF or CRLF line ends.
    public static func parse(bytes input: [UInt8]) throws -> TOMLTable {
        var bytes = input
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        try checkUTF8(bytes)
        var parser = TOMLParser(bytes: bytes)
        return try parser.document()
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    // MARK: Bytes

    private var atEnd: Bool { pos >= bytes.count }
    private var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }
    private func peek(_ offset: Int) -> UInt8? { pos + offset < bytes.count ? bytes[pos + offset] : nil }

    private func fail(_ message: String) -> TOMLError { TOMLError(line: line, message: message) }

    private func describe(_ b: UInt8?) -> String {
        guard let b else { return "the end of the file" }
        switch b {
        case 0x0A: return "the end of the line"
        case 0x0D: return "a carriage return"
        case 0x09: return "a tab"
        case 0x20..<0x7F: return "'\(Character(Unicode.Scalar(b)))'"
        case 0x80...: return "a non-ASCII character"
        default: return "the control character U+\(hex(b))"
        }
    }

    private func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "00" + String(digits[Int(b >> 4)]) + String(digits[Int(b & 15)])
    }

    /// Characters TOML forbids in strings and comments: C0 controls but tab, and DEL.
    private static func isControl(_ b: UInt8) -> Bool { (b < 0x20 && b != 0x09) || b == 0x7F }
    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    private static func isBareKey(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || isDigit(b) || b == 0x5F || b == 0x2D
    }

    private mutating func skipSpaces() {
        while let b = peek, b == 0x20 || b == 0x09 { pos += 1 }
    }

    /// True at LF or CRLF; a CR alone is an error (it means nothing in TOML).
    private func atNewline() throws -> Bool {
        guard let b = peek else { return false }
        if b == 0x0A { return true }
        if b == 0x0D {
            guard peek(1) == 0x0A else { throw fail("a carriage return (CR) must be followed by a line feed (LF)") }
            return true
        }
        return false
    }

    private mutating func consumeNewline() {
        if peek == 0x0D { pos += 1 }
        pos += 1
        line += 1
    }

    private mutating func comment() throws {
        pos += 1  // '#'
        while let b = peek, b != 0x0A {
            if b == 0x0D {
                guard peek(1) == 0x0A else { throw fail("a carriage return (CR) must be followed by a line feed (LF)") }
                return
            }
            if Self.isControl(b) { throw fail("the control character U+\(hex(b)) is not allowed in a comment") }
            pos += 1
        }
    }

    /// Spaces, comments and newlines, as allowed between the values of an array.
    private mutating func skipBlank() throws {
        while let b = peek {
            if b == 0x20 || b == 0x09 { pos += 1 } else if b == 0x23 { try comment() } else if try atNewline() { consumeNewline() } else { return }
        }
    }

    private mutating func endOfLine(after what: String) throws {
        skipSpaces()
        if peek == 0x23 { try comment() }
        if atEnd { return }
        guard try atNewline() else {
            throw fail("unexpected \(describe(peek)) after \(what); each key = value and [table] goes on a line of its own")
        }
        consumeNewline()
    }

    // MARK: Document

    private mutating func document() throws -> TOMLTable {
        let root = Table(origin: .header, line: 1)
        var current = root
        while true {
            skipSpaces()
            guard let b = peek else { break }
            if b == 0x23 { try comment(); continue }
            if try atNewline() { consumeNewline(); continue }
            if b == 0x5B {
                current = try header(root)
            } else {
                let keyLine = line
                let path = try keyPath()
                try expectEquals(path)
                let v = try value(depth: 1)
                try current.insertDotted(path, v, line: keyLine)
                try endOfLine(after: "the value of '\(path.joined(separator: "."))'")
            }
        }
        return root.tomlTable()
    }

    private mutating func expectEquals(_ path: [String]) throws {
        skipSpaces()
        guard peek == 0x3D else {
            throw fail("expected '=' after the key '\(path.joined(separator: "."))', found \(describe(peek))")
        }
        pos += 1
        skipSpaces()
    }

    /// `[a.b]` or `[[a.b]]`; returns the table that the following keys go into.
    private mutating func header(_ root: Table) throws -> Table {
        let headerLine = line
        pos += 1
        let isArray = peek == 0x5B
        if isArray { pos += 1 }
        let path = try keyPath()
        let name = path.joined(separator: ".")
        guard peek == 0x5D, !isArray || peek(1) == 0x5D else {
            throw fail("expected '\(isArray ? "]]" : "]")' to close the header [\(isArray ? "[" : "")\(name)")
        }
        pos += isArray ? 2 : 1
        try endOfLine(after: "the header")
        let table = isArray ? try root.appendArrayElement(path, line: headerLine)
                            : try root.defineTable(path, line: headerLine)
        return table
    }

    // MARK: Keys

    private mutating func keyPath() throws -> [String] {
        var parts: [String] = []
        while true {
            skipSpaces()
            guard let b = peek else { throw fail("expected a key, found the end of the file") }
            if b == 0x22 {
                if peek(1) == 0x22 && peek(2) == 0x22 { throw fail("a multi-line string cannot be a key") }
                parts.append(try basicString())
            } else if b == 0x27 {
                if peek(1) == 0x27 && peek(2) == 0x27 { throw fail("a multi-line string cannot be a key") }
                parts.append(try literalString())
            } else {
                let start = pos
                while let d = peek, Self.isBareKey(d) { pos += 1 }
                guard pos > start else {
                    throw fail("expected a key, found \(describe(b)); a bare key is made of A-Z a-z 0-9 _ -, anything else needs quotes")
                }
                parts.append(String(decoding: bytes[start..<pos], as: UTF8.self))
            }
            guard parts.count <= Self.maxDepth else { throw fail("a key of more than \(Self.maxDepth) parts") }
            skipSpaces()
            if peek == 0x2E { pos += 1; continue }
            return parts
        }
    }

    // MARK: Values

    private mutating func value(depth: Int) throws -> TOMLValue {
        guard depth <= Self.maxDepth else { throw fail("arrays and inline tables nested more than \(Self.maxDepth) deep") }
        guard let b = peek else { throw fail("expected a value, found the end of the file") }
        switch b {
        case 0x22:
            return .string(peek(1) == 0x22 && peek(2) == 0x22 ? try multiLineString(basic: true) : try basicString())
        case 0x27:
            return .string(peek(1) == 0x27 && peek(2) == 0x27 ? try multiLineString(basic: false) : try literalString())
        case 0x5B:
            return try array(depth: depth)
        case 0x7B:
            return try inlineTable(depth: depth)
        default:
            return try scalar()
        }
    }

    private mutating func array(depth: Int) throws -> TOMLValue {
        pos += 1
        var items: [TOMLValue] = []
        while true {
            try skipBlank()
            if peek == 0x5D { pos += 1; return .array(items) }
            items.append(try value(depth: depth + 1))
            try skipBlank()
            if peek == 0x2C { pos += 1; continue }
            if peek == 0x5D { pos += 1; return .array(items) }
            throw fail("expected ',' or ']' in an array, found \(describe(peek))")
        }
    }

    private mutating func inlineTable(depth: Int) throws -> TOMLValue {
        pos += 1
        let table = Table(origin: .dotted, line: line)
        skipSpaces()
        if peek == 0x7D { pos += 1; return table.value() }
        while true {
            skipSpaces()
            if peek == 0x7D { throw fail("an inline table takes no trailing comma") }
            let keyLine = line
            let path = try keyPath()
            try expectEquals(path)
            let v = try value(depth: depth + 1)
            try table.insertDotted(path, v, line: keyLine)
            skipSpaces()
            if peek == 0x2C { pos += 1; continue }
            if peek == 0x7D { pos += 1; return table.value() }
            throw fail("expected ',' or '}' in an inline table, found \(describe(peek)); an inline table is written on one line")
        }
    }

    /// Booleans, numbers, dates and times: a run of the characters they are
    /// made of, then checked against the grammar as a whole.
    private mutating func scalar() throws -> TOMLValue {
        let start = pos
        while let b = peek, Self.isBareKey(b) || b == 0x2B || b == 0x2E || b == 0x3A {
            pos += 1
            // A date followed by a space and a time is one date-time.
            if pos - start == 10, peek == 0x20, let h1 = peek(1), let h2 = peek(2), peek(3) == 0x3A,
               Self.isDigit(h1), Self.isDigit(h2), bytes[start + 4] == 0x2D {
                pos += 1
            }
        }
        let token = Array(bytes[start..<pos])
        let text = String(decoding: token, as: UTF8.self)
        guard !token.isEmpty else {
            throw fail("expected a value, found \(describe(peek)); strings need quotes")
        }
        switch text {
        case "true": return .boolean(true)
        case "false": return .boolean(false)
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        if token.count >= 5, token[0..<4].allSatisfy(Self.isDigit), token[4] == 0x2D {
            return .dateTime(try dateTime(token, text))
        }
        if token.count >= 3, token[0..<2].allSatisfy(Self.isDigit), token[2] == 0x3A {
            return .dateTime(try dateTime(token, text))
        }
        return try number(token, text)
    }

    // MARK: Numbers

    /// Digits with '_' only between two digits; nil if the rule is broken.
    private func digits(_ s: ArraySlice<UInt8>, _ isDigit: (UInt8) -> Bool) -> [UInt8]? {
        guard let first = s.first, let last = s.last, isDigit(first), isDigit(last) else { return nil }
        var out: [UInt8] = []
        var previous: UInt8 = 0
        for b in s {
            if b == 0x5F {
                guard isDigit(previous) else { return nil }
            } else {
                guard isDigit(b) else { return nil }
                out.append(b)
            }
            previous = b
        }
        return out
    }

    private func number(_ token: [UInt8], _ text: String) throws -> TOMLValue {
        let invalid = fail("'\(text)' is not a valid value; strings need quotes")
        if token.count > 2, token[0] == 0x30, token[1] == 0x78 || token[1] == 0x6F || token[1] == 0x62 {
            let radix: UInt64 = token[1] == 0x78 ? 16 : token[1] == 0x6F ? 8 : 2
            let isDigit: (UInt8) -> Bool = { b in
                switch radix {
                case 16: return Self.isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
                case 8: return b >= 0x30 && b <= 0x37
                default: return b == 0x30 || b == 0x31
                }
            }
            guard let ds = digits(token[2...], isDigit) else {
                throw fail("'\(text)' is not a valid base-\(radix) integer ('_' only between digits, no sign)")
            }
            var v: UInt64 = 0
            for d in ds {
                let digit = UInt64(Self.isDigit(d) ? d - 0x30 : (d | 0x20) - 0x61 + 10)
                let (m, o1) = v.multipliedReportingOverflow(by: radix)
                let (a, o2) = m.addingReportingOverflow(digit)
                guard !o1, !o2, a <= UInt64(Int64.max) else { throw outOfRange(text) }
                v = a
            }
            return .integer(Int64(v))
        }
        var i = 0
        var negative = false
        if token[0] == 0x2B || token[0] == 0x2D { negative = token[0] == 0x2D; i = 1 }
        // Split into integer part, fraction and exponent.
        var intEnd = i
        while intEnd < token.count, token[intEnd] != 0x2E, token[intEnd] != 0x65, token[intEnd] != 0x45 { intEnd += 1 }
        guard let intDigits = digits(token[i..<intEnd], Self.isDigit) else {
            if token[i..<intEnd].contains(0x5F) { throw fail("'\(text)': '_' must stand between two digits") }
            throw invalid
        }
        if intDigits.count > 1 && intDigits[0] == 0x30 { throw fail("'\(text)': leading zeros are not allowed") }
        var j = intEnd
        var fraction: [UInt8]?
        if j < token.count, token[j] == 0x2E {
            var end = j + 1
            while end < token.count, token[end] != 0x65, token[end] != 0x45 { end += 1 }
            guard let f = digits(token[(j + 1)..<end], Self.isDigit) else {
                throw fail("'\(text)' is not a valid number: a decimal point needs digits on both sides")
            }
            fraction = f
            j = end
        }
        var exponent: [UInt8]?
        if j < token.count {
            var k = j + 1
            var sign: [UInt8] = []
            if k < token.count, token[k] == 0x2B || token[k] == 0x2D { sign = [token[k]]; k += 1 }
            guard let e = digits(token[k...], Self.isDigit) else {
                throw fail("'\(text)' is not a valid number: an exponent needs digits")
            }
            exponent = sign + e
        }
        if fraction == nil && exponent == nil {
            var v: Int64 = 0
            for d in intDigits {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (a, o2) = negative ? m.subtractingReportingOverflow(Int64(d - 0x30)) : m.addingReportingOverflow(Int64(d - 0x30))
                guard !o1, !o2 else { throw outOfRange(text) }
                v = a
            }
            return .integer(v)
        }
        var clean = (negative ? "-" : "") + String(decoding: intDigits, as: UTF8.self)
        if let fraction { clean += "." + String(decoding: fraction, as: UTF8.self) }
        if let exponent { clean += "e" + String(decoding: exponent, as: UTF8.self) }
        guard let d = Double(clean) else { throw invalid }
        return .float(d)
    }

    private func outOfRange(_ text: String) -> TOMLError {
        fail("the integer \(text) is out of range (-9223372036854775808 to 9223372036854775807)")
    }

    // MARK: Dates and times

    private func dateTime(_ t: [UInt8], _ text: String) throws -> TOMLDateTime {
        let invalid = fail("'\(text)' is not a valid date or time (RFC 3339: 1979-05-27, 07:32:00, 1979-05-27T07:32:00Z)")
        var i = 0
        func number(_ count: Int) throws -> Int {
            guard i + count <= t.count, t[i..<i + count].allSatisfy(Self.isDigit) else { throw invalid }
            var v = 0
            for b in t[i..<i + count] { v = v * 10 + Int(b - 0x30) }
            i += count
            return v
        }
        func expect(_ b: UInt8) throws {
            guard i < t.count, t[i] == b else { throw invalid }
            i += 1
        }
        var result = TOMLDateTime()
        if t.count >= 5, t[4] == 0x2D {
            let year = try number(4); try expect(0x2D)
            let month = try number(2); try expect(0x2D)
            let day = try number(2)
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            guard (1...12).contains(month), day >= 1, day <= days[month - 1] else {
                throw fail("'\(text)' is not a date: no day \(day) in month \(month) of \(year)")
            }
            result.date = .init(year: year, month: month, day: day)
            if i == t.count { return result }
            guard t[i] == 0x54 || t[i] == 0x74 || t[i] == 0x20 else { throw invalid }
            i += 1
        }
        let hour = try number(2); try expect(0x3A)
        let minute = try number(2); try expect(0x3A)
        let second = try number(2)
        guard hour < 24, minute < 60, second <= 60 else { throw fail("'\(text)' is not a valid time of day") }
        var fraction = ""
        if i < t.count, t[i] == 0x2E {
            i += 1
            let start = i
            while i < t.count, Self.isDigit(t[i]) { i += 1 }
            guard i > start else { throw invalid }
            fraction = String(decoding: t[start..<i], as: UTF8.self)
            while fraction.hasSuffix("0") { fraction.removeLast() }
        }
        result.time = .init(hour: hour, minute: minute, second: second, fraction: fraction)
        if i < t.count, result.date != nil {
            if t[i] == 0x5A || t[i] == 0x7A {
                i += 1
                result.offsetMinutes = 0
            } else if t[i] == 0x2B || t[i] == 0x2D {
                let sign = t[i] == 0x2D ? -1 : 1
                i += 1
                let oh = try number(2); try expect(0x3A)
                let om = try number(2)
                guard oh < 24, om < 60 else { throw fail("'\(text)' has an offset out of range") }
                result.offsetMinutes = sign * (oh * 60 + om)
            }
        }
        guard i == t.count else { throw invalid }
        return result
    }

    // MARK: Strings

    private mutating func escape(into out: inout [UInt8]) throws {
        pos += 1  // '\'
        guard let e = peek else { throw fail("unterminated string") }
        pos += 1
        switch e {
        case 0x62: out.append(0x08)
        case 0x74: out.append(0x09)
        case 0x6E: out.append(0x0A)
        case 0x66: out.append(0x0C)
        case 0x72: out.append(0x0D)
        case 0x22: out.append(0x22)
        case 0x5C: out.append(0x5C)
        case 0x75, 0x55:
            let count = e == 0x75 ? 4 : 8
            guard pos + count <= bytes.count else { throw fail("unterminated \\\(e == 0x75 ? "u" : "U") escape") }
            let digits = String(decoding: bytes[pos..<pos + count], as: UTF8.self)
            guard digits.allSatisfy(\.isHexDigit), let v = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(v) else {
                throw fail("\\\(e == 0x75 ? "u" : "U")\(digits) is not a Unicode scalar value")
            }
            pos += count
            out += Array(String(Character(scalar)).utf8)
        default:
            throw fail("unknown escape \\\(describe(e)) in a string (known: \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)")
        }
    }

    private mutating func basicString() throws -> String {
        pos += 1
        var out: [UInt8] = []
        while true {
            guard let b = peek, b != 0x0A, b != 0x0D else {
                throw fail("unterminated string; a \"string\" ends on its line (use \"\"\" for several lines)")
            }
            if b == 0x22 { pos += 1; return String(decoding: out, as: UTF8.self) }
            if b == 0x5C { try escape(into: &out); continue }
            if Self.isControl(b) { throw fail("the control character U+\(hex(b)) must be escaped in a string") }
            out.append(b)
            pos += 1
        }
    }

    private mutating func literalString() throws -> String {
        pos += 1
        let start = pos
        while true {
            guard let b = peek, b != 0x0A, b != 0x0D else {
                throw fail("unterminated string; a 'literal string' ends on its line (use ''' for several lines)")
            }
            if b == 0x27 { pos += 1; return String(decoding: bytes[start..<(pos - 1)], as: UTF8.self) }
            if Self.isControl(b) { throw fail("the control character U+\(hex(b)) is not allowed in a literal string") }
            pos += 1
        }
    }

    /// After the opening `"""` or `'''`: a newline right there is not part of the string.
    private mutating func skipFirstNewline() throws {
        if try atNewline() { consumeNewline() }
    }

    /// At a run of closing quotes: up to two more than three belong to the string.
    private mutating func closingQuotes(_ quote: UInt8, into out: inout [UInt8]) throws -> Bool {
        var n = 0
        while peek(n) == quote { n += 1 }
        guard n >= 3 else { return false }
        guard n <= 5 else { throw fail("too many quotes at the end of a multi-line string") }
        out += Array(repeating: quote, count: n - 3)
        pos += n
        return true
    }

    /// `"""…"""` (escapes, and a backslash at a line's end trims what follows)
    /// or `'''…'''` (every byte as written).
    private mutating func multiLineString(basic: Bool) throws -> String {
        let startLine = line
        let quote: UInt8 = basic ? 0x22 : 0x27
        pos += 3
        try skipFirstNewline()
        var out: [UInt8] = []
        while true {
            guard let b = peek else { throw TOMLError(line: startLine, message: "unterminated multi-line string") }
            if b == quote, try closingQuotes(quote, into: &out) { return String(decoding: out, as: UTF8.self) }
            if try atNewline() { consumeNewline(); out.append(0x0A); continue }
            if basic && b == 0x5C {
                var k = pos + 1
                while k < bytes.count, bytes[k] == 0x20 || bytes[k] == 0x09 { k += 1 }
                if k < bytes.count, bytes[k] == 0x0A || (bytes[k] == 0x0D && k + 1 < bytes.count && bytes[k + 1] == 0x0A) {
                    pos = k
                    while let c = peek, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D {
                        if try atNewline() { consumeNewline() } else { pos += 1 }
                    }
                    continue
                }
                try escape(into: &out)
                continue
            }
            if Self.isControl(b) {
                throw fail("the control character U+\(hex(b)) \(basic ? "must be escaped in a string" : "is not allowed in a literal string")")
            }
            out.append(b)
            pos += 1
        }
    }

    // MARK: UTF-8

    /// Refuses bytes that are not UTF-8, naming the line: a Latin-1 file
    /// must not become "caf\u{FFFD}" in a group id without a word.
    static func checkUTF8(_ bytes: [UInt8]) throws {
        var i = 0
        var line = 1
        while i < bytes.count {
            let b = bytes[i]
            if b < 0x80 {
                if b == 0x0A { line += 1 }
                i += 1
                continue
            }
            let (count, low, high): (Int, UInt8, UInt8)
            switch b {
            case 0xC2...0xDF: (count, low, high) = (1, 0x80, 0xBF)
            case 0xE0: (count, low, high) = (2, 0xA0, 0xBF)
            case 0xED: (count, low, high) = (2, 0x80, 0x9F)  // no surrogates
            case 0xE1...0xEF: (count, low, high) = (2, 0x80, 0xBF)
            case 0xF0: (count, low, high) = (3, 0x90, 0xBF)
            case 0xF1...0xF3: (count, low, high) = (3, 0x80, 0xBF)
            case 0xF4: (count, low, high) = (3, 0x80, 0x8F)
            default: throw TOMLError(line: line, message: "the file is not UTF-8 (byte 0x\(String(b, radix: 16, uppercase: true)) here); save it as UTF-8")
            }
            var ok = i + count < bytes.count
            if ok {
                for k in 1...count {
                    let c = bytes[i + k]
                    if k == 1 ? (c < low || c > high) : (c < 0x80 || c > 0xBF) { ok = false; break }
                }
            }
            guard ok else {
                throw TOMLError(line: line, message: "the file is not UTF-8 (byte 0x\(String(b, radix: 16, uppercase: true)) here); save it as UTF-8")
            }
            i += count + 1
        }
    }
}

/// The document as it is built. Tables are classes here so that a header can
/// reopen one by reference; `value()` turns them into `TOMLTable` values.
///
/// Where each table came from decides what may still be added to it (TOML
/// 1.0, "Table" and "Array of Tables"): a table named by a header once, a
/// table made by dotted keys never by a header, an inline table or array
/// never at all (they are stored as finished values).
private final class Table {
    enum Origin {
        /// Made on the way to a deeper header (`[a]` for `[a.b]`): may still get its own header once.
        case implicit
        /// Named by a `[header]` or as an element of `[[array]]`.
        case header
        /// Made by a dotted key (`a.b = 1` makes `a`).
        case dotted
    }

    enum Entry {
        case value(TOMLValue)
        case table(Table)
        case tables([Table])
    }

    var origin: Origin
    var keys: [String] = []
    var entries: [String: Entry] = [:]
    var lines: [String: Int] = [:]

    init(origin: Origin, line: Int) { self.origin = origin }

    private func add(_ key: String, _ entry: Entry, line: Int) {
        if entries[key] == nil { keys.append(key); lines[key] = line }
        entries[key] = entry
    }

    private static func name(_ path: [String], _ count: Int) -> String { path.prefix(count).joined(separator: ".") }

    /// `a.b.c = v` inside this table.
    func insertDotted(_ path: [String], _ v: TOMLValue, line: Int) throws {
        var t = self
        for (i, k) in path.dropLast().enumerated() {
            switch t.entries[k] {
            case nil:
                let child = Table(origin: .dotted, line: line)
                t.add(k, .table(child), line: line)
                t = child
            case .table(let child) where child.origin == .dotted:
                t = child
            case .table:
                throw TOMLError(line: line, message: "the table '\(Self.name(path, i + 1))' was defined by a [header]; dotted keys cannot add to it from here")
            case .tables:
                throw TOMLError(line: line, message: "'\(Self.name(path, i + 1))' is an array of tables; dotted keys cannot add to it")
            case .value(let other):
                throw TOMLError(line: line, message: "'\(Self.name(path, i + 1))' is already \(other.typeName)\(other.isTable ? " (inline tables are complete as written)" : ""), not a table to add keys to")
            }
        }
        let last = path[path.count - 1]
        if t.entries[last] != nil {
            throw TOMLError(line: line, message: "the key '\(path.joined(separator: "."))' is defined twice (first on line \(t.lines[last] ?? 0))")
        }
        t.add(last, .value(v), line: line)
    }

    /// Walks the tables before a header's last key, making the missing ones.
    private func parent(of path: [String], line: Int) throws -> Table {
        var t = self
        for (i, k) in path.dropLast().enumerated() {
            switch t.entries[k] {
            case nil:
                let child = Table(origin: .implicit, line: line)
                t.add(k, .table(child), line: line)
                t = child
            case .table(let child):
                t = child
            case .tables(let list):
                t = list[list.count - 1]
            case .value(let other):
                throw TOMLError(line: line, message: "'\(Self.name(path, i + 1))' is already \(other.typeName)\(other.isTable ? " (inline tables are complete as written)" : ""), not a table")
            }
        }
        return t
    }

    /// `[a.b]`
    func defineTable(_ path: [String], line: Int) throws -> Table {
        let t = try parent(of: path, line: line)
        let last = path[path.count - 1]
        let name = path.joined(separator: ".")
        switch t.entries[last] {
        case nil:
            let child = Table(origin: .header, line: line)
            t.add(last, .table(child), line: line)
            return child
        case .table(let child) where child.origin == .implicit:
            child.origin = .header
            return child
        case .table(let child) where child.origin == .dotted:
            throw TOMLError(line: line, message: "the table [\(name)] was already defined by dotted keys (line \(t.lines[last] ?? 0))")
        case .table:
            throw TOMLError(line: line, message: "the table [\(name)] is defined twice (first on line \(t.lines[last] ?? 0))")
        case .tables:
            throw TOMLError(line: line, message: "'\(name)' is an array of tables; its elements are written [[\(name)]]")
        case .value(let other):
            throw TOMLError(line: line, message: "'\(name)' is already \(other.typeName) (line \(t.lines[last] ?? 0)), not a table")
        }
    }

    /// `[[a.b]]`
    func appendArrayElement(_ path: [String], line: Int) throws -> Table {
        let t = try parent(of: path, line: line)
        let last = path[path.count - 1]
        let name = path.joined(separator: ".")
        let element = Table(origin: .header, line: line)
        switch t.entries[last] {
        case nil:
            t.add(last, .tables([element]), line: line)
        case .tables(let list):
            t.entries[last] = .tables(list + [element])
        case .table:
            throw TOMLError(line: line, message: "'\(name)' is already a table (line \(t.lines[last] ?? 0)), not an array of tables")
        case .value(let other):
            throw TOMLError(line: line, message: "'\(name)' is already \(other.typeName) (line \(t.lines[last] ?? 0)); [[\(name)]] cannot add to it")
        }
        return element
    }

    func value() -> TOMLValue { .table(tomlTable()) }

    func tomlTable() -> TOMLTable {
        var out = TOMLTable()
        for k in keys {
            let v: TOMLValue
            switch entries[k]! {
            case .value(let x): v = x
            case .table(let t): v = t.value()
            case .tables(let list): v = .array(list.map { $0.value() })
            }
            out.set(k, v, line: lines[k] ?? 0)
        }
        return out
    }
}

private extension TOMLValue {
    var isTable: Bool { if case .table = self { return true } else { return false } }
}
