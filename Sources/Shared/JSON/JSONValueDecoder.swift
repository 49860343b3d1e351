/// Decodes any `Decodable` from a `JSONValue`, as Foundation's JSONDecoder
/// would (with `.convertFromSnakeCase` if asked): a missing key and an
/// explicit null both make an optional nil, and every error is a
/// `DecodingError` whose coding path names the offending field.
public struct JSONValueDecoder: Sendable {
    /// Reads `uptime_s` into `uptimeS`: the control protocol's field names.
    public var snakeCaseKeys: Bool

    public init(snakeCaseKeys: Bool = false) {
        self.snakeCaseKeys = snakeCaseKeys
    }

    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try T(from: ValueDecoder(value: value, codingPath: [], snakeCaseKeys: snakeCaseKeys))
    }

    /// Parses JSON text, then decodes it. A syntax error is a `JSONSyntaxError`.
    public func decode<T: Decodable, Bytes: Collection>(_ type: T.Type, from bytes: Bytes) throws -> T where Bytes.Element == UInt8 {
        try decode(type, from: JSONValue.parse(bytes))
    }
}

private func mismatch(_ type: Any.Type, _ value: JSONValue, _ path: [CodingKey]) -> DecodingError {
    .typeMismatch(type, .init(codingPath: path, debugDescription: "expected \(type), found \(value.kindName)"))
}

private func unbox<T: FixedWidthInteger>(_ value: JSONValue, as type: T.Type, _ path: [CodingKey]) throws -> T {
    guard case .number(let text) = value else { throw mismatch(type, value, path) }
    if let exact = T(text) { return exact }
    // 1e3 or 2.0 for an integer: accepted when the value is whole and fits.
    if let d = Double(text), d.rounded() == d, let n = T(exactly: d) { return n }
    throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "\(text) does not fit in \(type)"))
}

private func unboxDouble(_ value: JSONValue, _ path: [CodingKey]) throws -> Double {
    guard case .number(let text) = value, let d = Double(text) else { throw mismatch(Double.self, value, path) }
    return d
}

private func unboxBool(_ value: JSONValue, _ path: [CodingKey]) throws -> Bool {
    guard case .bool(let b) = value else { throw mismatch(Bool.self, value, path) }
    return b
}

private func unboxString(_ value: JSONValue, _ path: [CodingKey]) throws -> String {
    guard case .string(let s) = value else { throw mismatch(String.self, value, path) }
    return s
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { self.stringValue = "\(intValue)"; self.intValue = intValue }
}

private struct ValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [CodingKey]
    let snakeCaseKeys: Bool
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch([String: Any].self, value, codingPath) }
        return KeyedDecodingContainer(KeyedContainer<Key>(members: members, codingPath: codingPath, snakeCaseKeys: snakeCaseKeys))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch([Any].self, value, codingPath) }
        return UnkeyedContainer(items: items, codingPath: codingPath, snakeCaseKeys: snakeCaseKeys)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer {
        SingleContainer(value: value, codingPath: codingPath, snakeCaseKeys: snakeCaseKeys)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [String: JSONValue]
    let codingPath: [CodingKey]
    let snakeCaseKeys: Bool

    private func name(_ key: Key) -> String {
        snakeCaseKeys ? JSONValueEncoder.snakeCase(key.stringValue) : key.stringValue
    }

    var allKeys: [Key] {
        members.keys.compactMap { snakeCaseKeys ? camelKey($0) : Key(stringValue: $0) }
    }

    /// `uptime_s` → the key `uptimeS`, if converting it back gives the same name.
    private func camelKey(_ json: String) -> Key? {
        var out = ""
        var upperNext = false
        for c in json {
            if c == "_" { upperNext = true; continue }
            out += upperNext ? c.uppercased() : String(c)
            upperNext = false
        }
        return Key(stringValue: out).flatMap { name($0) == json ? $0 : nil }
    }

    func contains(_ key: Key) -> Bool { members[name(key)] != nil }

    private func value(_ key: Key) throws -> JSONValue {
        guard let v = members[name(key)] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no \"\(name(key))\""))
        }
        return v
    }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key) == .null }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try unboxBool(value(key), codingPath + [key]) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try unboxString(value(key), codingPath + [key]) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try unboxDouble(value(key), codingPath + [key]) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(try unboxDouble(value(key), codingPath + [key])) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try unbox(value(key), as: type, codingPath + [key]) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try unbox(value(key), as: type, codingPath + [key]) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try unbox(value(key), as: type, codingPath + [key]) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try unbox(value(key), as: type, codingPath + [key]) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try unbox(value(key), as: type, codingPath + [key]) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try unbox(value(key), as: type, codingPath + [key]) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try unbox(value(key), as: type, codingPath + [key]) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try unbox(value(key), as: type, codingPath + [key]) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try unbox(value(key), as: type, codingPath + [key]) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try unbox(value(key), as: type, codingPath + [key]) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try T(from: ValueDecoder(value: value(key), codingPath: codingPath + [key], snakeCaseKeys: snakeCaseKeys))
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try ValueDecoder(value: value(key), codingPath: codingPath + [key], snakeCaseKeys: snakeCaseKeys).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try ValueDecoder(value: value(key), codingPath: codingPath + [key], snakeCaseKeys: snakeCaseKeys).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder {
        ValueDecoder(value: members["super"] ?? .null, codingPath: codingPath, snakeCaseKeys: snakeCaseKeys)
    }

    func superDecoder(forKey key: Key) throws -> Decoder {
        ValueDecoder(value: members[name(key)] ?? .null, codingPath: codingPath + [key], snakeCaseKeys: snakeCaseKeys)
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let items: [JSONValue]
    let codingPath: [CodingKey]
    let snakeCaseKeys: Bool
    var currentIndex = 0
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(items: [JSONValue], codingPath: [CodingKey], snakeCaseKeys: Bool) {
        self.items = items
        self.codingPath = codingPath
        self.snakeCaseKeys = snakeCaseKeys
    }

    private var path: [CodingKey] { codingPath + [AnyKey(intValue: currentIndex)] }

    private mutating func next() throws -> JSONValue {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: path, debugDescription: "the array has only \(items.count) items"))
        }
        defer { currentIndex += 1 }
        return items[currentIndex]
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { let p = path; return try unboxBool(next(), p) }
    mutating func decode(_ type: String.Type) throws -> String { let p = path; return try unboxString(next(), p) }
    mutating func decode(_ type: Double.Type) throws -> Double { let p = path; return try unboxDouble(next(), p) }
    mutating func decode(_ type: Float.Type) throws -> Float { let p = path; return Float(try unboxDouble(next(), p)) }
    mutating func decode(_ type: Int.Type) throws -> Int { let p = path; return try unbox(next(), as: type, p) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { let p = path; return try unbox(next(), as: type, p) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { let p = path; return try unbox(next(), as: type, p) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { let p = path; return try unbox(next(), as: type, p) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { let p = path; return try unbox(next(), as: type, p) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { let p = path; return try unbox(next(), as: type, p) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { let p = path; return try unbox(next(), as: type, p) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { let p = path; return try unbox(next(), as: type, p) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { let p = path; return try unbox(next(), as: type, p) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { let p = path; return try unbox(next(), as: type, p) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let p = path
        return try T(from: ValueDecoder(value: next(), codingPath: p, snakeCaseKeys: snakeCaseKeys))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let p = path
        return try ValueDecoder(value: next(), codingPath: p, snakeCaseKeys: snakeCaseKeys).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        let p = path
        return try ValueDecoder(value: next(), codingPath: p, snakeCaseKeys: snakeCaseKeys).unkeyedContainer()
    }

    mutating func superDecoder() throws -> Decoder {
        let p = path
        return ValueDecoder(value: try next(), codingPath: p, snakeCaseKeys: snakeCaseKeys)
    }
}

private struct SingleContainer: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [CodingKey]
    let snakeCaseKeys: Bool

    func decodeNil() -> Bool { value == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try unboxBool(value, codingPath) }
    func decode(_ type: String.Type) throws -> String { try unboxString(value, codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try unboxDouble(value, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { Float(try unboxDouble(value, codingPath)) }
    func decode(_ type: Int.Type) throws -> Int { try unbox(value, as: type, codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try unbox(value, as: type, codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try unbox(value, as: type, codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try unbox(value, as: type, codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try unbox(value, as: type, codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try unbox(value, as: type, codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try unbox(value, as: type, codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try unbox(value, as: type, codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try unbox(value, as: type, codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try unbox(value, as: type, codingPath) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try T(from: ValueDecoder(value: value, codingPath: codingPath, snakeCaseKeys: snakeCaseKeys))
    }
}
