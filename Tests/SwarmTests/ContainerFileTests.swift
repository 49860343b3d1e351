import Foundation
import Shared
import XCTest

/// contrib/Dockerfile and contrib/kubernetes.yaml. Docker and Kubernetes do
/// not run here: their structure is checked instead (the manifest read by
/// PyYAML, its swarmd.toml by `swarmd --check`, the Dockerfile's sources
/// against the repository), and swarmd as PID 1 is OperationsTests' job.
final class ContainerFileTests: XCTestCase {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    /// Every document of the manifest, as JSON objects (PyYAML, the reader kubectl's own tests use too).
    func manifest() throws -> [[String: Any]] {
        let r = try runCommand("/usr/bin/python3", ["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
                                                  repo.appendingPathComponent("contrib/kubernetes.yaml").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
    }

    func testTheManifestIsOnePodOneSwarmWithProbesGraceAndLimitsThatFitTheConfiguration() throws {
        let docs = try manifest()
        let configMap = try XCTUnwrap(docs.first { $0["kind"] as? String == "ConfigMap" })
        let deployment = try XCTUnwrap(docs.first { $0["kind"] as? String == "Deployment" })
        let toml = try XCTUnwrap((configMap["data"] as? [String: String])?["swarmd.toml"])

        // The configuration is valid for swarmd itself (the secret file stands in for the mounted Secret).
        let dir = makeTempDir()
        let secret = dir.appendingPathComponent("kafka-password").path
        try "s3cret\n".write(toFile: secret, atomically: true, encoding: .utf8)
        let path = dir.appendingPathComponent("swarmd.toml").path
        try toml.replacingOccurrences(of: "/var/run/secrets/swarm/kafka-password", with: secret)
            .replacingOccurrences(of: "\"python3\"", with: "\"/bin/true\"")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let check = try runCommand(swarmdPath, ["--check", "--config", path])
        XCTAssertEqual(check.status, 0, check.stderr)
        let config = try ConfigLoader(path: path).load()
        XCTAssertNotNil(config.supervisor.nodesAuto, "nodes follow the pod's CPU limit")

        let spec = try XCTUnwrap((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])["spec"] as? [String: Any]
        let pod = try XCTUnwrap(spec)
        let grace = try XCTUnwrap(pod["terminationGracePeriodSeconds"] as? Double)
        XCTAssertGreaterThan(grace, config.supervisor.shutdownTimeout + 5, "Kubernetes must not KILL before swarmd's own shutdown_timeout")
        let containers = try XCTUnwrap(pod["containers"] as? [[String: Any]])
        XCTAssertEqual(containers.count, 1, "one pod = one swarm")
        let c = containers[0]
        let limits = try XCTUnwrap((c["resources"] as? [String: Any])?["limits"] as? [String: Any])
        XCTAssertNotNil(limits["cpu"], "nodes = \"auto\" needs a CPU limit to size the swarm")
        XCTAssertNotNil(limits["memory"])
        let port = try XCTUnwrap((c["ports"] as? [[String: Any]])?.first?["containerPort"] as? Double)
        let listening = try XCTUnwrap(HTTPSettings.parse(config.http.listen))
        XCTAssertEqual(Int(listening.port), Int(port), "the probes' port is the one swarmd listens on")
        func probePath(_ name: String) -> String? { ((c[name] as? [String: Any])?["httpGet"] as? [String: Any])?["path"] as? String }
        XCTAssertEqual(probePath("livenessProbe"), "/healthz", "liveness never depends on Kafka")
        XCTAssertEqual(probePath("readinessProbe"), "/readyz")
        let security = try XCTUnwrap(pod["securityContext"] as? [String: Any])
        XCTAssertEqual(security["runAsNonRoot"] as? Bool, true)
        let uid = try XCTUnwrap(security["runAsUser"] as? Double)
        XCTAssertTrue(try dockerfile().contains("USER \(Int(uid)):"), "the manifest's user is the image's")
        let mounts = try XCTUnwrap(c["volumeMounts"] as? [[String: Any]]).compactMap { $0["mountPath"] as? String }
        XCTAssertTrue(mounts.contains("/run/swarmd"), "a writable place for the control socket under a read-only root")
    }

    func dockerfile() throws -> String {
        try String(contentsOf: repo.appendingPathComponent("contrib/Dockerfile"), encoding: .utf8)
    }

    func testTheDockerfileBuildsStaticallyRunsAsNonRootAndCopiesWhatExists() throws {
        let lines = try dockerfile().split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
        let stages = lines.filter { $0.hasPrefix("FROM ") }
        XCTAssertEqual(stages.count, 2, "multi-stage: build, then run")
        XCTAssertTrue(stages[1].hasPrefix("FROM debian:12"), stages[1])
        XCTAssertTrue(lines.contains { $0.contains("--static-swift-stdlib") }, "the runtime image has no Swift toolchain")
        let user = try XCTUnwrap(lines.first { $0.hasPrefix("USER ") })
        XCTAssertFalse(user.hasPrefix("USER 0") || user.contains("root"), user)
        for copy in lines where copy.hasPrefix("COPY ") && !copy.contains("--from=") {
            let parts = copy.split(separator: " ").dropFirst().map(String.init)
            for source in parts.dropLast() {
                XCTAssertTrue(FileManager.default.fileExists(atPath: repo.appendingPathComponent(source).path), "\(copy): \(source) is not in the repository")
            }
        }
        XCTAssertTrue(lines.contains("ENTRYPOINT [\"/usr/local/bin/swarmd\"]"), "swarmd is PID 1: no init in between")
        XCTAssertTrue(lines.contains("STOPSIGNAL SIGTERM"))
    }
}
