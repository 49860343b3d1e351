import Foundation
import Shared
import XCTest

/// Where `swift build` put swarmd and swarmctl: beside the test bundle.
let productsDirectory: URL = {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    return exe.deletingLastPathComponent()
}()

let swarmdPath = productsDirectory.appendingPathComponent("swarmd").path
let swarmctlPath = productsDirectory.appendingPathComponent("swarmctl").path
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
let testNode = fixtures.appendingPathComponent("test-node.sh").path

/// A fresh directory for one test's socket, config and logs.
func makeTempDir() -> URL {
    let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("swarm-test-\(UUID().uuidString.prefix(8))")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes. Tests
/// wait for conditions, never for a fixed time.
@discardableResult
func eventually(_ what: @autoclosure () -> String, timeout: Double = 30, file: StaticString = #filePath, line: UInt = #line,
                _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    XCTFail("timed out after \(timeout) s waiting for \(what())", file: file, line: line)
    return false
}

/// The result of running a command to completion.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion, capturing its output (through files, so a
/// chatty program can never block on a full pipe).
func runCommand(_ path: String, _ arguments: [String], environment: [String: String]? = nil, stdin: Data? = nil) throws -> CommandResult {
    let dir = makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err"), inURL = dir.appendingPathComponent("in")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: inURL.path, contents: stdin ?? Data())
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    if let environment { p.environment = environment }
    p.standardOutput = try FileHandle(forWritingTo: outURL)
    p.standardError = try FileHandle(forWritingTo: errURL)
    p.standardInput = try FileHandle(forReadingFrom: inURL)
    try p.run()
    p.waitUntilExit()
    return CommandResult(status: p.terminationStatus,
                         stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}

/// Runs swarmctl COMMAND --socket SOCKET ARGUMENTS….
func swarmctl(_ arguments: [String], socket: String) throws -> CommandResult {
    try runCommand(swarmctlPath, Array(arguments.prefix(1)) + ["--socket", socket] + arguments.dropFirst())
}

/// A swarmd started by a test, with its log in a file the test can search.
final class SwarmdUnderTest {
    let dir: URL
    let socket: String
    let logPath: String
    let process = Process()
    private let logHandle: FileHandle

    /// Starts swarmd with `arguments`, a config file made of `config` (if
    /// any), and a socket in its own directory.
    /// `launcher` runs swarmd through another program (prlimit, say): swarmd
    /// then replaces it (exec), so the pid is still swarmd's.
    /// `stderrIsJournal`: JOURNAL_STREAM names the log file, as systemd names
    /// the stream it gives a service's stderr.
    init(config: String? = nil, arguments: [String] = [], environment: [String: String] = [:], launcher: [String] = [],
         stderrIsJournal: Bool = false) throws {
        dir = makeTempDir()
        socket = dir.appendingPathComponent("swarmd.sock").path
        logPath = dir.appendingPathComponent("swarmd.log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        logHandle = FileHandle(forWritingAtPath: logPath)!
        var args = ["--socket", socket]
        if let config {
            let path = dir.appendingPathComponent("swarmd.toml").path
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            args += ["--config", path]
        }
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + [swarmdPath] + args + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: swarmdPath)
            process.arguments = args + arguments
        }
        var env = ProcessInfo.processInfo.environment
        env["SWARM_LOG_LEVEL"] = "debug"
        for (k, v) in environment { env[k] = v }
        if stderrIsJournal {
            var st = stat()
            stat(logPath, &st)
            env["JOURNAL_STREAM"] = "\(st.st_dev):\(st.st_ino)"
        }
        process.environment = env
        process.standardError = logHandle
        process.standardOutput = logHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var configPath: String { dir.appendingPathComponent("swarmd.toml").path }
    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func logCount(_ text: String) -> Int { log.components(separatedBy: text).count - 1 }

    func waitForLog(_ text: String, count: Int = 1, timeout: Double = 30, file: StaticString = #filePath, line: UInt = #line) {
        eventually("\"\(text)\" in swarmd's log\n--- log ---\n\(log.suffix(3000))", timeout: timeout, file: file, line: line) {
            logCount(text) >= count
        }
    }

    func status() -> SwarmStatus? {
        try? ControlClient(path: socket, timeout: 5).send(ControlRequest(cmd: .status)).status
    }

    /// Waits until `n` nodes are running and reporting healthy.
    func waitForHealthy(_ n: Int, timeout: Double = 30, file: StaticString = #filePath, line: UInt = #line) {
        eventually("\(n) healthy nodes; status: \(String(describing: status()))\n--- log ---\n\(log.suffix(3000))", timeout: timeout, file: file, line: line) {
            guard let s = status() else { return false }
            return s.nodes.count == n && s.nodes.allSatisfy { $0.state == .running && $0.health == .ok }
        }
    }

    func signal(_ sig: Int32) { kill(pid, sig) }

    /// Waits for swarmd to exit and returns its status.
    func waitForExit(timeout: Double = 60, file: StaticString = #filePath, line: UInt = #line) -> Int32? {
        guard eventually("swarmd to exit\n--- log ---\n\(log.suffix(3000))", timeout: timeout, file: file, line: line, { !process.isRunning }) else {
            return nil
        }
        return process.terminationStatus
    }

    func nodePids() -> [Int32] { status()?.nodes.compactMap(\.pid) ?? [] }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        try? logHandle.close()
        // SWARM_TEST_KEEP_LOGS=DIR keeps every swarmd's log there (a failed
        // chaos run is read afterwards), named by its pid.
        if let keep = ProcessInfo.processInfo.environment["SWARM_TEST_KEEP_LOGS"], !keep.isEmpty {
            try? FileManager.default.createDirectory(atPath: keep, withIntermediateDirectories: true)
            try? FileManager.default.copyItem(atPath: logPath, toPath: "\(keep)/swarmd-\(pid).log")
        }
        try? FileManager.default.removeItem(at: dir)
    }
}

/// What each fd of a process points to ("socket:[123]", "pipe:[45]", …), by fd number.
func openFiles(_ pid: Int32) -> [String: String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
    var out: [String: String] = [:]
    for n in names { out[n] = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(n)")) ?? "?" }
    return out
}

/// The sockets a process holds: swarmd's listener and its control connections.
/// (Node pipes come and go with node restarts, which a loaded machine may cause.)
func openSockets(_ pid: Int32) -> Int { openFiles(pid).values.filter { $0.hasPrefix("socket:") }.count }

/// swarmd's sockets when no client is connected: the fewest seen over half a
/// second (a client that just hung up may not have been noticed yet).
func idleSockets(_ pid: Int32) -> Int {
    var fewest = Int.max
    for _ in 0..<10 {
        fewest = min(fewest, openSockets(pid))
        usleep(50_000)
    }
    return fewest
}

/// One field of `/proc/PID/status` (`SigIgn`, `voluntary_ctxt_switches`) as
/// written there; empty if the process has no such field.
func procStatusField(_ pid: Int32, _ name: String) throws -> String {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
    return String(line.split(separator: "\t").last ?? "")
}

/// How often a process's main thread has gone to sleep and been woken since it started.
func voluntaryContextSwitches(_ pid: Int32) throws -> Int {
    Int(try procStatusField(pid, "voluntary_ctxt_switches")) ?? -1
}

/// True while the process exists and is not a zombie.
func alive(_ pid: Int32) -> Bool { processExists(pid) }

/// The supervision tests' node: the shell script in Fixtures, with a mode.
/// `extra` settings replace the defaults of the same name.
func testNodeConfig(nodes: Int, extra: String = "", command: [String] = ["/bin/bash", testNode]) -> String {
    let defaults = ["report_interval = 0.2", "report_timeout = 2", "kill_timeout = 2", "restart_backoff_max = 2"]
    let kept = defaults.filter { line in !extra.contains(line.split(separator: " ")[0] + " =") }
    return """
    [supervisor]
    nodes = \(nodes)
    node_command = [\(command.map { "\"\($0)\"" }.joined(separator: ", "))]
    \(kept.joined(separator: "\n"))
    \(extra)
    """
}

/// The children of a process (its main thread's: swarmd and nodes run their
/// children from it), from /proc.
func childPids(of pid: Int32) -> [Int32] {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
    return text.split(separator: " ").compactMap { Int32($0) }
}
