import Foundation
import XCTest

/// The handler kits (contrib/python, contrib/ruby, contrib/node): each one's
/// own tests (which read the shared vectors of contrib/vectors) pass, each
/// installs the way its ecosystem installs a package, and each runs a real
/// node's handler end to end, a failure retried and everything committed.
final class HandlerKitTests: XCTestCase {
    static let contrib = fixtures.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("contrib")
    let topic = "kits"

    func kit(_ name: String) -> String { Self.contrib.appendingPathComponent(name).path }

    func run(_ program: String, _ arguments: [String], in directory: String? = nil) throws -> CommandResult {
        let args = directory.map { ["-C", $0, program] } ?? [program]
        // env -C DIR: the tools find their files relative to the kit.
        return try runCommand("/usr/bin/env", args + arguments)
    }

    func testThePythonKitsOwnTestsPass() throws {
        let r = try run("/usr/bin/python3", ["-m", "unittest", "discover", "-s", kit("python/tests")])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("OK"), r.stderr)
    }

    func testTheRubyKitsOwnTestsPass() throws {
        let r = try run("ruby", ["-Ilib", "test/test_vectors.rb"], in: kit("ruby"))
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains(", 0 failures, 0 errors"), r.stdout)
    }

    func testTheNodeKitsOwnTestsPass() throws {
        let r = try run("node", ["--test", kit("node/test/")])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("# fail 0"), r.stdout)
    }

    func testEachKitInstallsTheWayItsEcosystemInstallsAPackage() throws {
        let dir = makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // pip (from a copy: a build leaves build/ and *.egg-info beside the sources).
        let python = dir.appendingPathComponent("python").path, site = dir.appendingPathComponent("site").path
        try FileManager.default.copyItem(atPath: kit("python"), toPath: python)
        var r = try run("/usr/bin/python3", ["-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--target", site, python])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: site + "/swarm_handler/py.typed"), "typed: py.typed is installed")
        r = try runCommand("/usr/bin/env", ["PYTHONPATH=\(site)", "/usr/bin/python3", "-c", "import swarm_handler; print(swarm_handler.__file__)"])
        XCTAssertTrue(r.stdout.hasPrefix(site), r.stdout + r.stderr)
        // gem build and gem install, into a directory of its own.
        let ruby = dir.appendingPathComponent("ruby").path, gems = dir.appendingPathComponent("gems").path
        try FileManager.default.copyItem(atPath: kit("ruby"), toPath: ruby)
        r = try run("gem", ["build", "swarm_handler.gemspec"], in: ruby)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        r = try run("gem", ["install", "--local", "--install-dir", gems, "swarm_handler-0.3.0.gem"], in: ruby)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        r = try runCommand("/usr/bin/env", ["GEM_PATH=\(gems)", "ruby", "-e", "require 'swarm_handler'; puts SwarmHandler::VERSION, $LOADED_FEATURES.grep(/swarm_handler.rb/)"])
        XCTAssertTrue(r.stdout.contains("0.3.0") && r.stdout.contains(gems), r.stdout + r.stderr)
        // Node resolves it by its name through package.json's exports, as after `npm install`.
        let modules = dir.appendingPathComponent("app/node_modules")
        try FileManager.default.createDirectory(at: modules, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: modules.appendingPathComponent("swarm-handler").path, withDestinationPath: kit("node"))
        let app = dir.appendingPathComponent("app/check.mjs")
        try "import { fail, OK } from \"swarm-handler\";\nconsole.log(OK, fail(\"a  b\"));\n".write(to: app, atomically: true, encoding: .utf8)
        r = try run("node", [app.path])
        XCTAssertEqual(r.stdout, "ok fail a b\n", r.stderr)
    }

    /// A handler per kit that appends each key it handles to $DUMP_FILE and fails k7 once.
    func handler(_ kind: String, in dir: URL) throws -> [String] {
        let lib = kit(kind == "python" ? "python" : kind == "ruby" ? "ruby/lib" : "node/index.js")
        let source: String, file: String, command: [String]
        switch kind {
        case "python":
            file = "handler.py"
            command = ["/usr/bin/python3"]
            source = """
            import asyncio, os, sys
            sys.path.insert(0, \(String(reflecting: lib)))
            import swarm_handler
            out = open(os.environ["DUMP_FILE"], "a", buffering=1)
            failed = set()
            async def handle(batch):
                await asyncio.sleep(0)
                results = []
                for m in batch:
                    key = m.key.decode()
                    if key == "k7" and key not in failed:
                        failed.add(key)
                        results.append(swarm_handler.fail("once"))
                        continue
                    out.write(key + "\\n")
                    results.append(swarm_handler.OK)
                return results
            swarm_handler.run(handle)
            """
        case "ruby":
            file = "handler.rb"
            command = ["/usr/bin/env", "ruby"]
            source = """
            $LOAD_PATH.unshift(\(String(reflecting: lib)))
            require "swarm_handler"
            OUT = File.open(ENV.fetch("DUMP_FILE"), "a")
            OUT.sync = true
            class KitConsumer < SwarmHandler::Consumer
              deserializer ->(message) { message.raw_payload }
              def initialize
                super
                @failed = false
              end
              def consume(messages)
                messages.each do |message|
                  if message.key == "k7" && !@failed
                    @failed = true
                    next mark_as_failed(message, "once")
                  end
                  OUT.write("#{message.key}\\n")
                end
              end
            end
            SwarmHandler.run(KitConsumer)
            """
        default:
            file = "handler.mjs"
            command = ["/usr/bin/env", "node"]
            source = """
            import { appendFileSync } from "node:fs";
            import { run, fail, OK } from \(String(reflecting: lib));
            let failed = false;
            await run(async (batch) => batch.map((m) => {
              const key = m.key.toString();
              if (key === "k7" && !failed) { failed = true; return fail("once"); }
              appendFileSync(process.env.DUMP_FILE, key + "\\n");
              return OK;
            }));
            """
        }
        let path = dir.appendingPathComponent(file)
        try source.write(to: path, atomically: true, encoding: .utf8)
        return command + [path.path]
    }

    func testEachKitHandlesARealSwarmsMessagesRetriesAFailureAndAllIsCommitted() throws {
        for (kind, framing) in [("python", 2), ("ruby", 2), ("node", 1)] {
            let broker = try BrokerUnderTest(topics: [topic: 3])
            let keys = (1...60).map { "k\($0)" }
            try broker.produce(topic, keys: keys)
            let dir = makeTempDir()
            let dump = dir.appendingPathComponent("dump").path
            let command = try handler(kind, in: dir).map { String(reflecting: $0) }.joined(separator: ", ")
            let config = kafkaConfig(bootstrap: broker.bootstrap, nodes: 2, topic: topic, batchSize: 7, extraHandler: "protocol = \(framing)\nretry_backoff = 0.1")
                .replacingOccurrences(of: "command = [\"/usr/bin/python3\", \"\(recordHandler)\"]", with: "command = [\(command)]")
            let swarmd = try SwarmdUnderTest(config: config, environment: ["DUMP_FILE": dump])
            eventually("\(kind): every key handled", timeout: 90) {
                Set(((try? String(contentsOfFile: dump, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)) == Set(keys)
            }
            XCTAssertTrue(swarmd.log.contains("retrying failed message"), "\(kind): the kit's failure reached the node and was retried")
            swarmd.signal(SIGTERM)
            XCTAssertEqual(swarmd.waitForExit(), 0, kind)
            let offsets = try broker.committedAndEnd(group: "swarm-test", topic: topic, partitions: 3)
            XCTAssertEqual(offsets.committed, offsets.end, "\(kind): committed to the end")
        }
    }
}
