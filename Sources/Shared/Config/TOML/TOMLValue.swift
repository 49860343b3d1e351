/// A value of a TOML 1.0 document.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case dateTime(TOMLDateTime)
    case array([TOMLValue])
    case table(TOMLTable)

    public var typeName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a number"
        case .boolean: return "a boolean"
        case .dateTime(let d): return d.typeName
        case .array: return "an array"
        case .table: return "a table"
        }
    }

    /// NaN equals NaN here: two documents that both say `nan` say the same thing.
    public static func == (a: TOMLValue, b: TOMLValue) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): return x == y
        case (.integer(let x), .integer(let y)): return x == y
        case (.float(let x), .float(let y)): return x == y || (x.isNaN && y.isNaN)
        case (.boolean(let x), .boolean(let y)): return x == y
        case (.dateTime(let x), .dateTime(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.table(let x), .table(let y)): return x == y
        default: return false
        }
    }
}

/// A TOML table that keeps its keys in the order the file wrote them and
/// remembers the line each key was defined on, so that configuration errors
/// can point at it.
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

    /// Equal when they hold the same keys and values; order and lines are presentation.
    public static func == (a: TOMLTable, b: TOMLTable) -> Bool { a.values == b.values }
}

/// The four date-time kinds of TOML 1.0: an offset date-time
/// (`1979-05-27T07:32:00Z`), a local date-time, a local date and a local time.
/// swarm's configuration uses none of them; they are read so that a file using
/// one is understood (and a setting given one is refused by its type).
public struct TOMLDateTime: Equatable, Sendable, CustomStringConvertible {
    public struct Date: Equatable, Sendable { public var year, month, day: Int }
    public struct Time: Equatable, Sendable {
        public var hour, minute, second: Int
        /// The fractional digits as written, without trailing zeros ("555" for .555).
        public var fraction: String
    }
    public var date: Date?
    public var time: Time?
    /// Minutes east of UTC; nil for local date-times.
    public var offsetMinutes: Int?

    public var typeName: String {
        switch (date != nil, time != nil, offsetMinutes != nil) {
        case (true, true, true): return "a date-time"
        case (true, true, false): return "a local date-time"
        case (true, false, _): return "a local date"
        default: return "a local time"
        }
    }

    /// RFC 3339 text, as toml-test and most tools print it.
    public var description: String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        var out = ""
        if let d = date {
            let y = String(d.year)
            out += String(repeating: "0", count: max(0, 4 - y.count)) + y + "-\(two(d.month))-\(two(d.day))"
        }
        if let t = time {
            if date != nil { out += "T" }
            out += "\(two(t.hour)):\(two(t.minute)):\(two(t.second))"
            if !t.fraction.isEmpty { out += ".\(t.fraction)" }
        }
        if let o = offsetMinutes {
            if o == 0 {
                out += "Z"
            } else {
                out += (o < 0 ? "-" : "+") + "\(two(abs(o) / 60)):\(two(abs(o) % 60))"
            }
        }
        return out
    }
}
