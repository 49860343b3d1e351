/// One answer line of the exec handler protocol (swarm-handler(7)): `ok`,
/// `ok N`, `fail [reason]`, `defer`, `defer N`, or an empty line (ignored).
///
/// Pure, so that a fuzzer reads it: a handler is untrusted input to its
/// node, and `ok 9223372036854775807` must be a protocol error with its
/// text, not an allocation of Int.max outcomes.
enum ExecAnswer: Equatable {
    case ok(count: Int)
    case fail(reason: String)
    case deferred(count: Int)
    case blank

    /// The answer a line says, or nil when it breaks the protocol.
    static func parse(_ bytes: [UInt8]) -> ExecAnswer? {
        let line = String(decoding: bytes, as: UTF8.self)
        if line.isEmpty { return .blank }
        if line == "ok" { return .ok(count: 1) }
        if line == "defer" { return .deferred(count: 1) }
        if line == "fail" { return .fail(reason: "") }
        if line.hasPrefix("fail ") { return .fail(reason: String(line.dropFirst(5).prefix(500))) }
        if line.hasPrefix("ok "), let n = count(line.dropFirst(3)) { return .ok(count: n) }
        if line.hasPrefix("defer "), let n = count(line.dropFirst(6)) { return .deferred(count: n) }
        return nil
    }

    /// A positive decimal count of at most 9 digits (a batch is far smaller).
    private static func count(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 9, text.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(text), n > 0 else { return nil }
        return n
    }

    /// How many messages it answers.
    var count: Int {
        switch self {
        case .ok(let n), .deferred(let n): return n
        case .fail: return 1
        case .blank: return 0
        }
    }
}
