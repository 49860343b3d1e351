import Foundation
import Shared
import XCTest

final class ConfigTests: XCTestCase {
    func load(_ text: String) throws -> SwarmConfig {
        try ConfigLoader(path: "swarmd.toml").parse(text)
    }

    func assertRefused(_ text: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(text), file: file, line: line) { error in
            let message = (error as? SwarmError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains(expected), "\"\(message)\" does not say \"\(expected)\"", file: file, line: line)
        }
    }

    func testAnEmptyFileGivesTheDocumentedDefaults() throws {
        let c = try load("")
        XCTAssertEqual(c, SwarmConfig())
        XCTAssertEqual(c.supervisor.reportInterval, 1)
        XCTAssertEqual(c.supervisor.reportTimeout, 10)
        XCTAssertTrue(c.usesEmbeddedBroker)
    }

    func testABacklogIsReadFromTheEarliestOffsetUnlessTheFileSaysOtherwise() throws {
        XCTAssertEqual(try load("").kafka.properties["auto.offset.reset"], "earliest")
        XCTAssertEqual(try load("[kafka.properties]\n\"bootstrap.servers\" = \"k:9092\"\n").kafka.properties["auto.offset.reset"], "earliest")
        XCTAssertEqual(try load("[kafka.properties]\n\"auto.offset.reset\" = \"latest\"\n").kafka.properties["auto.offset.reset"], "latest")
    }

    func testTheAssignmentStrategyIsLibrdkafkasUnlessTheFileSaysOtherwise() throws {
        XCTAssertNil(try load("").kafka.properties["partition.assignment.strategy"], "eager, librdkafka's default (see KafkaSettings.defaults)")
        XCTAssertEqual(try load("[kafka.properties]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n").kafka.properties["partition.assignment.strategy"],
                       "cooperative-sticky")
    }

    func testTheHTTPListenerIsOffByDefaultAndItsAddressIsChecked() throws {
        XCTAssertEqual(try load("").http.listen, "")
        XCTAssertEqual(HTTPSettings.parse("9464")?.host, "127.0.0.1", "a port alone is loopback")
        XCTAssertEqual(HTTPSettings.parse("[::1]:9464")?.host, "::1")
        XCTAssertEqual(HTTPSettings.parse("0.0.0.0:9464")?.port, 9464)
        XCTAssertThrowsError(try load("[http]\nlisten = \"localhost:9464\"\n")) {
            XCTAssertTrue("\($0)".contains("[http] listen needs a numeric address"), "\($0)")
        }
        XCTAssertThrowsError(try load("[http]\nlisten = \"127.0.0.1:99999\"\n")) {
            XCTAssertTrue("\($0)".contains("swarmd.toml:2: [http] listen must be"), "\($0)")
        }
    }

    func testAutoscaleBoundsAreChecked() throws {
        XCTAssertFalse(try load("").autoscale.enabled, "off unless asked for")
        XCTAssertThrowsError(try load("[autoscale]\nmin = 5\nmax = 3\n")) {
            XCTAssertTrue("\($0)".contains("swarmd.toml:2: [autoscale] min (5) must not be above max (3)"), "\($0)")
        }
        XCTAssertThrowsError(try load("[autoscale]\nmax = 2000\n")) { XCTAssertTrue("\($0)".contains("between 0 and 1024"), "\($0)") }
        XCTAssertThrowsError(try load("[autoscale]\nenabled = \"yes\"\n")) { XCTAssertTrue("\($0)".contains("must be true or false"), "\($0)") }
    }

    func testEverySectionIsRead() throws {
        let c = try load("""
        # a comment
        [supervisor]
        nodes = 4
        node_command = ["/usr/bin/env", "mynode"]   # trailing comment
        report_timeout = 5.5
        memory_limit = "512MiB"
        socket_mode = "0660"

        [kafka]
        topics = ["a", "^b.*"]
        group_id = "g"
        [kafka.properties]
        "bootstrap.servers" = "k1:9092"
        "session.timeout.ms" = 6000
        "enable.partition.eof" = false

        [handler]
        kind = "exec"
        command = ['python3', 'h.py']
        on_failure = "dead-letter"
        dead_letter_topic = "a.dlq"

        [embedded]
        partitions = 3
        produce_rate = 1_000
        """)
        XCTAssertEqual(c.supervisor.nodes, 4)
        XCTAssertEqual(c.supervisor.nodeCommand, ["/usr/bin/env", "mynode"])
        XCTAssertEqual(c.supervisor.reportTimeout, 5.5)
        XCTAssertEqual(c.supervisor.memoryLimit, 512 * 1024 * 1024)
        XCTAssertEqual(c.supervisor.socketMode, 0o660)
        XCTAssertEqual(c.kafka.topics, ["a", "^b.*"])
        XCTAssertEqual(c.kafka.properties, ["bootstrap.servers": "k1:9092", "session.timeout.ms": "6000", "enable.partition.eof": "false",
                                            "auto.offset.reset": "earliest"], "swarm's default for auto.offset.reset is added")
        XCTAssertEqual(c.handler.kind, .exec)
        XCTAssertEqual(c.handler.command, ["python3", "h.py"])
        XCTAssertEqual(c.handler.onFailure, .deadLetter)
        XCTAssertEqual(c.embedded.produceRate, 1000)
        XCTAssertFalse(c.usesEmbeddedBroker)
    }

    func testMistakesAreRefusedWithTheFileLineKeyAndWhatIsWrong() {
        assertRefused("[supervisor]\nnodes = 0\n", "swarmd.toml:2: [supervisor] nodes must be between 1 and 1024, not 0")
        assertRefused("[supervisor]\nnodes = \"4\"\n", "swarmd.toml:2: [supervisor] nodes must be an integer from 1 to 1024 or \"auto\", not \"4\"")
        assertRefused("[supervisor]\nnodes = true\n", "swarmd.toml:2: [supervisor] nodes must be an integer, not a boolean")
        assertRefused("[supervisor]\nreport_timout = 3\n", "swarmd.toml:2: [supervisor] report_timout is not a known setting")
        assertRefused("[supervisr]\n", "supervisr is not a known section")
        assertRefused("[supervisor]\nnodes = 3\nnodes = 4\n", "swarmd.toml:3: the key 'nodes' is defined twice")
        assertRefused("[supervisor]\nnodes = \n", "swarmd.toml:2:")
        assertRefused("[handler]\nkind = \"java\"\n", "kind must be one of \"sink\", \"cpu\", \"exec\", not \"java\"")
        assertRefused("[handler]\nkind = \"exec\"\n", "[handler] command is required when kind = \"exec\"")
        assertRefused("[handler]\non_failure = \"dead-letter\"\n", "dead_letter_topic is required")
        assertRefused("[supervisor]\nmemory_limit = \"lots\"\n", "\"lots\" is not a size")
        assertRefused("[supervisor]\nreport_interval = 5\nreport_timeout = 2\n", "must be longer than report_interval")
        assertRefused("[kafka.properties]\n\"group.id\" = \"x\"\n", "is set by swarm itself")
        assertRefused("[kafka]\ntopics = []\n", "needs at least one topic")
        assertRefused("[supervisor]\nnodes = 1979-05-27\n", "swarmd.toml:2: [supervisor] nodes must be an integer, not a local date")
        assertRefused("[supervisor]\nnodes = 99999999999999999999\n", "swarmd.toml:2: the integer 99999999999999999999 is out of range")
        assertRefused("[kafka.properties]\n\"retry.backoff.ms\" = 1e+20\n", "swarmd.toml:2: [kafka.properties] retry.backoff.ms is a floating-point number")
        assertRefused("[kafka.properties]\n\"x\" = [1]\n", "[kafka.properties] x must be a string, an integer or a boolean, not an array")
        assertRefused("[handler]\r\nkind = \"exec\"\r\n", "swarmd.toml: [handler] command is required when kind = \"exec\"")
        assertRefused("[handler]\rkind = \"exec\"\n", "swarmd.toml:1: a carriage return (CR) must be followed by a line feed (LF)")
        assertRefused("a = " + String(repeating: "[", count: 100_000), "nested more than 64 deep")
        assertRefused("title = \"unterminated\n", "unterminated string")
    }

    func testTOMLParserReadsStringsNumbersArraysAndInlineTables() throws {
        let t = try TOMLParser.parse("""
        a = "tab\\tquote\\" \\u00e9"
        b = 'C:\\path'
        c = [1, 2,
             3,]
        d = { x = 1, y.z = "w" }
        e = 0x10
        f = 1e3
        g.h = true
        """)
        XCTAssertEqual(t["a"], .string("tab\tquote\" é"))
        XCTAssertEqual(t["b"], .string("C:\\path"))
        XCTAssertEqual(t["c"], .array([.integer(1), .integer(2), .integer(3)]))
        guard case .table(let d) = t["d"], case .table(let y) = d["y"] else { return XCTFail("d is not a table") }
        XCTAssertEqual(d["x"], .integer(1))
        XCTAssertEqual(y["z"], .string("w"))
        XCTAssertEqual(t["e"], .integer(16))
        XCTAssertEqual(t["f"], .float(1000))
        guard case .table(let g) = t["g"] else { return XCTFail("g is not a table") }
        XCTAssertEqual(g["h"], .boolean(true))
    }

    func testByteSizes() {
        XCTAssertEqual(parseByteSize("512MiB"), 512 << 20)
        XCTAssertEqual(parseByteSize("2G"), 2 << 30)
        XCTAssertEqual(parseByteSize("100k"), 102_400)
        XCTAssertEqual(parseByteSize("42"), 42)
        XCTAssertNil(parseByteSize("lots"))
    }

    // MARK: The real binary

    func testSwarmdRefusesABadFileWithExitStatus78AndStartsNothing() throws {
        let dir = makeTempDir()
        let path = dir.appendingPathComponent("bad.toml").path
        try "[supervisor]\nnodes = 3\nreport_timout = 4\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runCommand(swarmdPath, ["--config", path, "--socket", dir.appendingPathComponent("s").path])
        XCTAssertEqual(r.status, 78)
        XCTAssertEqual(r.stderr, "swarmd: \(path):3: [supervisor] report_timout is not a known setting (see swarmd.toml(5))\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("s").path), "nothing was started")
    }

    func testSwarmdRefusesAMissingFileAndAnInvalidKafkaProperty() throws {
        let dir = makeTempDir()
        let missing = try runCommand(swarmdPath, ["--config", dir.appendingPathComponent("nope.toml").path])
        XCTAssertEqual(missing.status, 78)
        XCTAssertTrue(missing.stderr.contains("nope.toml: cannot open: No such file or directory"), missing.stderr)

        let path = dir.appendingPathComponent("kafka.toml").path
        try "[kafka.properties]\n\"bootstrap.servers\" = \"k:9092\"\n\"fetch.wait.max.mss\" = 5\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runCommand(swarmdPath, ["--config", path, "--check"])
        XCTAssertEqual(r.status, 78)
        XCTAssertTrue(r.stderr.contains("No such configuration property: \"fetch.wait.max.mss\""), r.stderr)
    }

    func testCheckSaysAValidFileIsValid() throws {
        let dir = makeTempDir()
        let path = dir.appendingPathComponent("ok.toml").path
        try "[supervisor]\nnodes = 2\n[kafka.properties]\n\"bootstrap.servers\" = \"k:9092\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runCommand(swarmdPath, ["--config", path, "--check"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "\(path): configuration is valid; it sets 2 settings, the rest are defaults (--print shows them all)\n")
    }

    /// A file that forgets where Kafka is must not quietly run the development
    /// broker and report healthy; "embedded" is said, not assumed.
    func testTheBrokersMustBeNamedEmbeddedIncluded() throws {
        let dir = makeTempDir()
        let path = dir.appendingPathComponent("forgot.toml").path
        try "[supervisor]\nnodes = 2\n[kafka]\ntopics = [\"events\"]\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runCommand(swarmdPath, ["--config", path, "--check"])
        XCTAssertEqual(r.status, 78)
        XCTAssertEqual(r.stderr, "swarmd: [kafka.properties] \"bootstrap.servers\" is required: the brokers, e.g. \"kafka1:9092,kafka2:9092\", or \"embedded\" for swarmd's development broker (swarmd.toml(5))\n")
        let noFile = try runCommand(swarmdPath, ["--check"])
        XCTAssertEqual(noFile.status, 78, "no file at all names no brokers either")
        try "[kafka.properties]\n\"bootstrap.servers\" = \"embedded\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try runCommand(swarmdPath, ["--config", path, "--check"]).status, 0)
        let custom = try runCommand(swarmdPath, ["--check", "--", "/bin/true"])
        XCTAssertEqual(custom.status, 0, "a node_command of one's own talks to whatever it likes: \(custom.stderr)")
    }

    func testCheckResolvesTheSocketGroups() throws {
        let dir = makeTempDir()
        let path = dir.appendingPathComponent("groups.toml").path
        for (key, group, status) in [("socket_group", "no-such-group-here", Int32(78)), ("socket_read_group", "no-such-group-here", 78),
                                     ("socket_group", "root", 0), ("socket_read_group", "4242", 0)] {
            try "[supervisor]\n\(key) = \"\(group)\"\n[kafka.properties]\n\"bootstrap.servers\" = \"k:9092\"\n".write(toFile: path, atomically: true, encoding: .utf8)
            let r = try runCommand(swarmdPath, ["--config", path, "--check"])
            XCTAssertEqual(r.status, status, "\(key) = \(group): \(r.stderr)")
            if status != 0 { XCTAssertTrue(r.stderr.contains("[supervisor] \(key): there is no group named \"\(group)\""), r.stderr) }
        }
    }

    // MARK: Reading files exactly as written

    /// The demo configuration, written with `ending` after every line.
    func demoFile(_ dir: URL, _ name: String, ending: String, prefix: [UInt8] = []) throws -> String {
        let demo = fixtures.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples/demo.toml")
        let text = try String(contentsOf: demo, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let path = dir.appendingPathComponent(name).path
        _ = FileManager.default.createFile(atPath: path, contents: Data(prefix + Array(lines.joined(separator: ending).utf8)))
        return path
    }

    func testCRLFAndABOMReadExactlyAsLFAndPrintTheSameEffectiveConfiguration() throws {
        let dir = makeTempDir()
        let lf = try runCommand(swarmdPath, ["--check", "--print", "--config", try demoFile(dir, "lf.toml", ending: "\n")])
        let crlf = try runCommand(swarmdPath, ["--check", "--print", "--config", try demoFile(dir, "crlf.toml", ending: "\r\n")])
        let bom = try runCommand(swarmdPath, ["--check", "--print", "--config", try demoFile(dir, "bom.toml", ending: "\n", prefix: [0xEF, 0xBB, 0xBF])])
        XCTAssertEqual(lf.status, 0, lf.stderr)
        XCTAssertTrue(lf.stdout.contains("produce_rate = 2000\n"), "the demo's own setting is printed without '# default':\n\(lf.stdout)")
        XCTAssertEqual(crlf.status, 0, crlf.stderr)
        XCTAssertEqual(crlf.stdout, lf.stdout)
        XCTAssertEqual(bom.status, 0, bom.stderr)
        XCTAssertEqual(bom.stdout, lf.stdout)
    }

    func testOneCRLFLineInALFFileKeepsTheKeyAfterIt() throws {
        let c = try load("[handler]  # see runbook\r\nkind = \"exec\"\ncommand = [\"/bin/cat\"]\n")
        XCTAssertEqual(c.handler.kind, .exec)
        XCTAssertEqual(c.handler.command, ["/bin/cat"])
    }

    func testALatin1FileIsRefusedWithExit78AndTheLine() throws {
        let dir = makeTempDir()
        let path = dir.appendingPathComponent("latin1.toml").path
        _ = FileManager.default.createFile(atPath: path, contents: Data("[kafka]\ngroup_id = \"caf".utf8 + [0xE9] + "\"\n".utf8))
        let r = try runCommand(swarmdPath, ["--check", "--config", path])
        XCTAssertEqual(r.status, 78)
        XCTAssertEqual(r.stderr, "swarmd: \(path):2: the file is not UTF-8 (byte 0xE9 here); save it as UTF-8\n")
    }

    func testPrintShowsEverySettingMarksDefaultsAndReadsBackToTheSameConfiguration() throws {
        let text = """
        [supervisor]
        nodes = 7
        node_command = ["/bin/true", "with \\"quotes\\""]
        instance_prefix = "host-a"
        report_interval = 0.25
        report_timeout = 3
        kill_timeout = 4
        shutdown_timeout = 50
        quit_timeout = 1.5
        memory_limit = "300MiB"
        memory_high = "250MiB"
        memory_max = "400MiB"
        restart_backoff_max = 9
        restart_reset_after = 11
        crash_loop_after = 5
        socket = "/tmp/x.sock"
        socket_mode = "0660"
        socket_group = "adm"
        socket_read_group = "users"
        log_format = "json"
        control_timeout = 2
        ready_timeout = 30
        disconnected_after = 5
        rebalance_limit = 90
        [kafka]
        topics = ["a", "b"]
        group_id = "g"
        [kafka.properties]
        "bootstrap.servers" = "k:9092"
        "session.timeout.ms" = 6000
        "auto.offset.reset" = "latest"
        [handler]
        kind = "exec"
        command = ["python3", "h.py"]
        protocol = 2
        cpu_rounds = 5
        batch_size = 50
        pipeline = 3
        batch_timeout = 20
        retries = 4
        retry_backoff = 0.5
        on_failure = "dead-letter"
        ordering = "none"
        dead_letter_topic = "dlq"
        commit_interval = 2
        stderr_level = "notice"
        stderr_rate = 5
        [embedded]
        brokers = 2
        partitions = 3
        produce_rate = 10
        message_size = 20
        [http]
        listen = "127.0.0.1:9464"
        [autoscale]
        enabled = true
        min = 2
        max = 12
        target_drain_seconds = 30
        cooldown_up = 20
        cooldown_down = 600
        [cluster]
        status_topic = "swarm.status"
        publish_interval = 2
        stale_after = 20
        """
        let loaded = try ConfigLoader(path: "swarmd.toml").parse(bytes: Array(text.utf8))
        let printed = ConfigPrinter(config: loaded.config, setKeys: loaded.setKeys).text()
        XCTAssertEqual(printed.split(separator: "\n").filter { $0.hasSuffix("# default") }, [], "every key was set:\n\(printed)")
        XCTAssertEqual(try load(printed), loaded.config, "--print output reads back to the same configuration")

        let defaults = ConfigPrinter(config: SwarmConfig(), setKeys: []).text()
        XCTAssertEqual(try load(defaults), SwarmConfig())
        let settingLines = defaults.split(separator: "\n").filter { $0.contains(" = ") }
        XCTAssertEqual(settingLines.count, printed.split(separator: "\n").filter { $0.contains(" = ") }.count - 1,
                       "the same settings, less the one property the file added")
        XCTAssertTrue(settingLines.allSatisfy { $0.hasSuffix("# default") }, "\(defaults)")
    }

    func testNodeCountOutOfRangeOnTheCommandLine() throws {
        let r = try runCommand(swarmdPath, ["--nodes", "0", "--check"])
        XCTAssertEqual(r.status, 78)
        XCTAssertEqual(r.stderr, "swarmd: --nodes must be between 1 and 1024, not 0\n")
    }
}
