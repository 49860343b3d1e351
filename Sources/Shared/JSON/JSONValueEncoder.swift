/// Encodes any `Encodable` into a `JSONValue`, as Foundation's JSONEncoder
/// would with `.sortedKeys` (and, if asked, `.convertToSnakeCase`): nil
/// optionals are left out, non-finite numbers are refused.
public struct JSONValueEncoder: Sendable {
    /// Writes `uptimeS` as `uptime_s`: the control protocol's field names.
    public var snakeCaseKeys: Bool

    public init(snakeCaseKeys: Bool = false) {
        self.snakeCaseKeys = snakeCaseKeys
    }

    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let node = EncodingNode()
        try value.encode(to: ValueEncoder(node: node, codingPath: [], snakeCaseKeys: snakeCaseKeys))
        return node.resolved()
    }

    /// Converts a Swift property name to snake case: `reportAgeMs` → `report_age_ms`,
    /// `nodeURL` → `node_url`. (ASCII only, as property names here are.)
    public static func snakeCase(_ key: String) -> String {
        let b = Array(key.utf8)
        func upper(_ i: Int) -> Bool { i >= 0 && i < b.count && b[i] >= 65 && b[i] <= 90 }
        func lowerOrDigit(_ i: Int) -> Bool { i >= 0 && i < b.count && ((b[i] >= 97 && b[i] <= 122) || (b[i] >= 48 && b[i] <= 57)) }
        var out: [UInt8] = []
        out.reserveCapacity(b.count + 4)
        for i in b.indices {
            if upper(i) {
                if i > 0 && (lowerOrDigit(i - 1) || (upper(i - 1) && lowerOrDigit(i + 1))) { out.append(UInt8(ascii: "_")) }
                out.append(b[i] + 32)
            } else {
                out.append(b[i])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Where one value goes while it is being encoded; resolved into a
/// `JSONValue` once everything is written.
final class EncodingNode {
    var value = JSONValue.null
    var members: [String: EncodingNode]?
    var elements: [EncodingNode]?

    func resolved() -> JSONValue {
        if let members { return .object(members.mapValues { $0.resolved() }) }
        if let elements { return .array(elements.map { $0.resolved() }) }
        return value
    }

    func number<N: Numeric & CustomStringConvertible>(_ n: N) { value = .number(n.description) }

    func double(_ d: Double, _ path: [CodingKey]) throws {
        guard d.isFinite else {
            throw EncodingError.invalidValue(d, .init(codingPath: path, debugDescription: "\(d) is not a JSON number"))
        }
        value = .number(d.description)
    }
}

private struct ValueEncoder: Encoder {
    let node: EncodingNode
    let codingPath: [CodingKey]
    let snakeCaseKeys: Bool
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if node.members == nil { node.members = [:] }
        return KeyedEncodingContainer(KeyedContainer<Key>(node: node, codingPath: codingPath, snakeCaseKeys: snakeCaseKeys))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        if node.elements == nil { node.elements = [] }
        return UnkeyedContainer(node: node, codingPath: codingPath, snakeCaseKeys: snakeCaseKeys)
    }

    func singleValueContainer() -> SingleValueEncodingContainer {
        SingleContainer(node: node, codingPath: codingPath, snakeCaseKeys: snakeCaseKeys)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    let codingPath: [CodingKey]
    let snakeCaseKeys: Bool

    private func child(_ key: Key) -> EncodingNode {
        let child = EncodingNode()
        node.members![snakeCaseKeys ? JSONValueEncoder.snakeCase(key.stringValue) : key.stringValue] = child
        return child
    }

    mutating func encodeNil(forKey key: Key) throws { child(key).value = .null }
    mutating func encode(_ value: Bool, forKey key: Key) throws { child(key).value = .bool(value) }
    mutating func encode(_ value: String, forKey key: Key) throws { child(key).value = .string(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try child(key).double(value, codingPath + [key]) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try child(key).double(Double(value), codingPath + [key]) }
    mutating func encode(_ value: Int, forKey key: Key) throws { child(key).number(value) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { child(key).number(value) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { child(key).number(value) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { child(key).number(value) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { child(key).number(value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { child(key).number(value) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { child(key).number(value) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { child(key).number(value) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { child(key).number(value) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { child(key).number(value) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try value.encode(to: ValueEncoder(node: child(key), codingPath: codingPath + [key], snakeCaseKeys: snakeCaseKeys))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        ValueEncoder(node: child(key), codingPath: codingPath + [key], snakeCaseKeys: snakeCaseKeys).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        ValueEncoder(node: child(key), codingPath: codingPath + [key], snakeCaseKeys: snakeCaseKeys).unkeyedContainer()
    }

    mutating func superEncoder() -> Encoder {
        let child = EncodingNode()
        node.members!["super"] = child
        return ValueEncoder(node: child, codingPath: codingPath, snakeCaseKeys: snakeCaseKeys)
    }

    mutating func superEncoder(forKey key: Key) -> Encoder {
        ValueEncoder(node: child(key), codingPath: codingPath + [key], snakeCaseKeys: snakeCaseKeys)
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: EncodingNode
    let codingPath: [CodingKey]
    let snakeCaseKeys: Bool
    var count: Int { node.elements!.count }

    private func next() -> EncodingNode {
        let child = EncodingNode()
        node.elements!.append(child)
        return child
    }

    mutating func encodeNil() throws { next().value = .null }
    mutating func encode(_ value: Bool) throws { next().value = .bool(value) }
    mutating func encode(_ value: String) throws { next().value = .string(value) }
    mutating func encode(_ value: Double) throws { try next().double(value, codingPath) }
    mutating func encode(_ value: Float) throws { try next().double(Double(value), codingPath) }
    mutating func encode(_ value: Int) throws { next().number(value) }
    mutating func encode(_ value: Int8) throws { next().number(value) }
    mutating func encode(_ value: Int16) throws { next().number(value) }
    mutating func encode(_ value: Int32) throws { next().number(value) }
    mutating func encode(_ value: Int64) throws { next().number(value) }
    mutating func encode(_ value: UInt) throws { next().number(value) }
    mutating func encode(_ value: UInt8) throws { next().number(value) }
    mutating func encode(_ value: UInt16) throws { next().number(value) }
    mutating func encode(_ value: UInt32) throws { next().number(value) }
    mutating func encode(_ value: UInt64) throws { next().number(value) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try value.encode(to: ValueEncoder(node: next(), codingPath: codingPath, snakeCaseKeys: snakeCaseKeys))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        ValueEncoder(node: next(), codingPath: codingPath, snakeCaseKeys: snakeCaseKeys).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
        ValueEncoder(node: next(), codingPath: codingPath, snakeCaseKeys: snakeCaseKeys).unkeyedContainer()
    }

    mutating func superEncoder() -> Encoder {
        ValueEncoder(node: next(), codingPath: codingPath, snakeCaseKeys: snakeCaseKeys)
    }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let node: EncodingNode
    let codingPath: [CodingKey]
    let snakeCaseKeys: Bool

    mutating func encodeNil() throws { node.value = .null }
    mutating func encode(_ value: Bool) throws { node.value = .bool(value) }
    mutating func encode(_ value: String) throws { node.value = .string(value) }
    mutating func encode(_ value: Double) throws { try node.double(value, codingPath) }
    mutating func encode(_ value: Float) throws { try node.double(Double(value), codingPath) }
    mutating func encode(_ value: Int) throws { node.number(value) }
    mutating func encode(_ value: Int8) throws { node.number(value) }
    mutating func encode(_ value: Int16) throws { node.number(value) }
    mutating func encode(_ value: Int32) throws { node.number(value) }
    mutating func encode(_ value: Int64) throws { node.number(value) }
    mutating func encode(_ value: UInt) throws { node.number(value) }
    mutating func encode(_ value: UInt8) throws { node.number(value) }
    mutating func encode(_ value: UInt16) throws { node.number(value) }
    mutating func encode(_ value: UInt32) throws { node.number(value) }
    mutating func encode(_ value: UInt64) throws { node.number(value) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try value.encode(to: ValueEncoder(node: node, codingPath: codingPath, snakeCaseKeys: snakeCaseKeys))
    }
}
