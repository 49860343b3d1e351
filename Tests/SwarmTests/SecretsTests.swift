import Foundation
import Shared
import XCTest

/// Kafka credentials stay with the node that owns the connection: never in a
/// handler's environment, never in printed configuration, errors or logs.
final class SecretsTests: XCTestCase {
    let secret = "pw-7f3a9c-never-shown"

    func testPrintRedactsSecretsAndARefusedPropertyNeverEchoesOne() throws {
        let dir = makeTempDir()
        let path = dir.appendingPathComponent("s.toml").path
        try """
        [kafka.properties]
        "bootstrap.servers" = "127.0.0.1:9"
        "sasl.username" = "alice"
        "sasl.password" = "\(secret)"
        "ssl.key.password" = "\(secret)-2"
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let printed = try runCommand(swarmdPath, ["--check", "--print", "--config", path])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        XCTAssertTrue(printed.stdout.contains("\"sasl.password\" = \"[redacted]\""), printed.stdout)
        XCTAssertTrue(printed.stdout.contains("\"ssl.key.password\" = \"[redacted]\""), printed.stdout)
        XCTAssertTrue(printed.stdout.contains("\"sasl.username\" = \"alice\""), "not a secret: shown")
        XCTAssertFalse(printed.stdout.contains(secret))

        // The secret pasted into the wrong property: librdkafka quotes the
        // value it refuses, and swarmd must not repeat it.
        try """
        [kafka.properties]
        "bootstrap.servers" = "127.0.0.1:9"
        "sasl.password" = "\(secret)"
        "security.protocol" = "\(secret)"
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let refused = try runCommand(swarmdPath, ["--check", "--config", path])
        XCTAssertEqual(refused.status, 78)
        XCTAssertTrue(refused.stderr.contains("security.protocol"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("[redacted]"), refused.stderr)
        XCTAssertFalse(refused.stderr.contains(secret), refused.stderr)
    }

    func testSecretNamesAreOneListPlusAnyPasswordOrSecretProperty() {
        for name in ["sasl.password", "sasl.oauthbearer.client.secret", "ssl.key.password", "ssl.keystore.password",
                     "ssl.key.pem", "ssl_key", "SASL.PASSWORD", "some.future.password.property", "x.client_secret"] {
            XCTAssertTrue(Secrets.isSecret(name), name)
        }
        for name in ["sasl.username", "bootstrap.servers", "ssl.certificate.pem", "security.protocol"] {
            XCTAssertFalse(Secrets.isSecret(name), name)
        }
        XCTAssertEqual(Secrets.redact("a pw and a longer-pw", secrets: ["longer-pw", "pw"]), "a [redacted] and a [redacted]")
    }

    func testAMissingOrEmptyCredentialFileIsRefusedWithExit78() throws {
        let dir = makeTempDir()
        let path = dir.appendingPathComponent("c.toml").path
        let missing = dir.appendingPathComponent("nope").path
        try "[kafka.properties]\n\"bootstrap.servers\" = \"127.0.0.1:9\"\n\"sasl.password\" = { file = \"\(missing)\" }\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        var r = try runCommand(swarmdPath, ["--check", "--config", path])
        XCTAssertEqual(r.status, 78)
        XCTAssertEqual(r.stderr, "swarmd: \(path):3: [kafka.properties] sasl.password cannot read its file \(missing): cannot open: No such file or directory\n")

        _ = FileManager.default.createFile(atPath: missing, contents: Data("\n".utf8))
        r = try runCommand(swarmdPath, ["--check", "--config", path])
        XCTAssertEqual(r.status, 78)
        XCTAssertTrue(r.stderr.contains("sasl.password its file \(missing) is empty"), r.stderr)

        try "[kafka.properties]\n\"sasl.password\" = { path = \"/x\" }\n".write(toFile: path, atomically: true, encoding: .utf8)
        r = try runCommand(swarmdPath, ["--check", "--config", path])
        XCTAssertEqual(r.status, 78)
        XCTAssertTrue(r.stderr.contains("or { file = \"/path\" } to read the value from a file"), r.stderr)
    }

    /// End to end: the password comes from a credential file, the nodes
    /// consume with it, the handler dumps its environment, a reload with the
    /// secret pasted into a bad property is refused; the secret is nowhere.
    func testTheHandlerSeesNoSecretAndNoConfigurationAndTheLogNeverShowsOne() throws {
        let broker = try BrokerUnderTest(topics: ["events": 2])
        try broker.produce("events", keys: ["a", "b", "c", "d"])
        let record = Record.fresh()
        let dir = makeTempDir()
        let credential = dir.appendingPathComponent("kafka-password").path
        try "\(secret)\n".write(toFile: credential, atomically: true, encoding: .utf8)
        let envFile = dir.appendingPathComponent("handler-env").path
        let config = kafkaConfig(bootstrap: broker.bootstrap, nodes: 1, topic: "events")
            .replacingOccurrences(of: "[kafka.properties]\n", with: "[kafka.properties]\n\"sasl.password\" = { file = \"\(credential)\" }\n")
        let swarmd = try SwarmdUnderTest(config: config, environment: ["RECORD_FILE": record.path, "ENV_FILE": envFile])
        eventually("every message handled with the credential-file password", timeout: 60) { record.okKeys == ["a", "b", "c", "d"] }

        let env = try String(contentsOfFile: envFile, encoding: .utf8)
        XCTAssertFalse(env.contains(secret), "the handler's environment holds the password")
        XCTAssertFalse(env.contains("bootstrap.servers"), "the handler's environment holds Kafka properties")
        XCTAssertFalse(env.contains("SWARMD_NODE_CONFIG"))
        XCTAssertTrue(env.contains("SWARM_SLOT=0\n"), env)
        XCTAssertFalse(env.contains("SWARM_REPORT_FD="), "swarm's plumbing is not the handler's business")
        let nodePid = try XCTUnwrap(swarmd.nodePids().first)
        let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(nodePid)/environ"))
        XCTAssertFalse(String(decoding: environ, as: UTF8.self).contains(secret), "nor the node's own environment")
        XCTAssertTrue(openFiles(swarmd.pid).values.contains { $0.contains("memfd:swarmd-node-config") }, "swarmd holds it")
        XCTAssertFalse(openFiles(nodePid).values.contains { $0.contains("memfd:swarmd-node-config") }, "the node closed its configuration fd")

        try (config + "\n").replacingOccurrences(of: "[kafka.properties]\n", with: "[kafka.properties]\n\"security.protocol\" = \"\(secret)\"\n")
            .write(toFile: swarmd.configPath, atomically: true, encoding: .utf8)
        let reload = try swarmctl(["reload"], socket: swarmd.socket)
        XCTAssertNotEqual(reload.status, 0, "a property librdkafka refuses is refused at reload")
        XCTAssertTrue(reload.stderr.contains("security.protocol"), reload.stderr)
        XCTAssertFalse(reload.stderr.contains(secret) || reload.stdout.contains(secret), reload.stderr)

        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        XCTAssertTrue(swarmd.log.contains("reload refused"), swarmd.log)
        XCTAssertFalse(swarmd.log.contains(secret), "swarmd's log (debug level) shows the secret")
    }
}
