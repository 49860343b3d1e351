import ArgumentParser
import Shared

/// `swarmctl`: the operator's way into a running swarmd, over its control socket.
struct SwarmCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarmctl",
        abstract: "Control a running swarmd.",
        discussion: """
        Exit status: 0 done; 1 swarmd refused or failed (its message is printed); 64 usage; \
        69 no swarmd answering on the socket; 77 permission denied. See swarmctl(1).
        """,
        version: "swarmctl \(SwarmVersion.describe())",
        subcommands: [Status.self, Scale.self, Drain.self, Resume.self, Restart.self, Reload.self, Upgrade.self, Stop.self, Metrics.self, Autoscale.self]
    )
}

/// Options every command takes.
struct ConnectionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("swarmd's control socket (default: $SWARMD_SOCKET, $RUNTIME_DIRECTORY/swarmd.sock, /run/swarmd/swarmd.sock).", valueName: "path"))
    var socket: String?

    @Option(help: "Seconds to wait for swarmd (and, for commands that wait, for the swarm).")
    var timeout: Double = 120

    var client: ControlClient {
        ControlClient(path: SocketPath.resolve(option: socket), timeout: min(timeout, 30))
    }

    /// Sends a request; a refusal or an unreachable daemon ends the program with the promised status.
    func send(_ request: ControlRequest) throws -> ControlResponse {
        do {
            let response = try client.send(request)
            guard response.ok else {
                let e = response.error ?? ControlFailure(code: "unknown", message: "swarmd refused without saying why")
                printError("swarmctl: \(e.message) (\(e.code))")
                throw ExitCode(ExitStatus.failure)
            }
            return response
        } catch let failure as ControlClient.Failure {
            switch failure {
            case .unavailable(let m):
                printError("swarmctl: \(m)")
                throw ExitCode(ExitStatus.unavailable)
            case .permissionDenied(let m):
                printError("swarmctl: \(m)")
                throw ExitCode(ExitStatus.noPermission)
            case .protocolError(let m):
                printError("swarmctl: \(m)")
                throw ExitCode(ExitStatus.failure)
            }
        }
    }

    /// Asks for status until `done` holds or the timeout passes.
    func wait(for what: String, _ done: (SwarmStatus) -> Bool) throws {
        let deadline = monotonicNow() + timeout
        while true {
            if let status = try send(ControlRequest(cmd: .status)).status, done(status) { return }
            if monotonicNow() >= deadline {
                printError("swarmctl: gave up after \(timeout) s waiting for \(what); see swarmctl status")
                throw ExitCode(ExitStatus.failure)
            }
            sleepSeconds(0.05)
        }
    }
}

func printError(_ text: String) {
    writeAll(2, text + "\n")
}

/// Parses slot arguments.
func slots(_ values: [Int]) -> [Int]? { values.isEmpty ? nil : values }
