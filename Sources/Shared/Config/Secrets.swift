/// Which Kafka properties are secrets, in one place, and how every output
/// that shows configuration hides them.
///
/// The list is librdkafka's own sensitive properties (CONFIGURATION.md) plus
/// any property whose name says password or secret, so a property added in a
/// later librdkafka is covered by its name. Outputs that show configuration
/// or properties (`swarmd --check --print`, errors about a property, logs)
/// go through `redacted()` or `redact(_:)`.
public enum Secrets {
    public static let placeholder = "[redacted]"

    static let names: Set<String> = [
        "sasl.password", "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config",
        "ssl.key.password", "ssl.keystore.password", "ssl.key.pem", "ssl_key",
    ]

    public static func isSecret(_ property: String) -> Bool {
        let name = property.lowercased()
        return names.contains(name) || name.contains("password") || name.contains("secret")
    }

    /// The secret values among `properties`, longest first (so that a secret
    /// that contains another is replaced whole).
    public static func values(in properties: [String: String]) -> [String] {
        properties.filter { isSecret($0.key) && !$0.value.isEmpty }.map(\.value).sorted { $0.count > $1.count }
    }

    /// `text` with every occurrence of a secret value replaced by the placeholder.
    public static func redact(_ text: String, secrets: [String]) -> String {
        var out = text
        for secret in secrets where out.contains(secret) {
            out = out.replacingAll(secret, with: placeholder)
        }
        return out
    }
}

extension SwarmConfig {
    /// The configuration as it may be shown: secret property values replaced.
    public func redacted() -> SwarmConfig {
        var c = self
        for key in c.kafka.properties.keys where Secrets.isSecret(key) {
            c.kafka.properties[key] = Secrets.placeholder
        }
        return c
    }

    /// `text` with the values of this configuration's secrets replaced.
    public func redact(_ text: String) -> String {
        Secrets.redact(text, secrets: Secrets.values(in: kafka.properties))
    }
}

extension String {
    /// Every occurrence of `target` replaced (Foundation-free, as Shared is).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        let t = Array(target.utf8)
        let bytes = Array(utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if i + t.count <= bytes.count, bytes[i] == t[0], Array(bytes[i..<i + t.count]) == t {
                out += replacement.utf8
                i += t.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
