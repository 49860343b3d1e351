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

    @Option(help: ArgumentHelp("swarmd's configuration file: its [supervisor] socket is the one to use (default: $SWARMD_CONFIG).", valueName: "file"))
    var config: String?

    @Option(name: [.customShort("i"), .long], help: ArgumentHelp("The swarm of swarmd@NAME.service: its socket /run/swarmd/NAME.sock and its file /etc/swarmd/NAME.toml.", valueName: "name"))
    var instance: String?

    @Option(help: "Seconds to wait for swarmd (and, for commands that wait, for the swarm).")
    var timeout: Double = 120

    var client: ControlClient {
        ControlClient(path: socketPath, timeout: min(timeout, 30))
    }

    /// `--socket`, then `--instance`'s (the one `swarmd@NAME.service` gives
    /// swarmd), then `$SWARMD_SOCKET`, then the socket the configuration
    /// file names (`--config`, `$SWARMD_CONFIG`), then swarmd's defaults:
    /// the order swarmd itself uses, so the two always meet. The shipped
    /// `swarmd.service` listens on the last default, /run/swarmd/swarmd.sock.
    var socketPath: String {
        let env = currentEnvironment()
        if socket == nil, let instance {
            guard InstallPaths.validInstance(instance) else {
                printError("swarmctl: --instance \(instance) is not an instance name (swarmd@NAME.service: one path component)")
                SwarmCtl.exit(withError: ExitCode(ExitStatus.usage))
            }
            return InstallPaths.socket(instance: instance)
        }
        var configured = ""
        if socket == nil, let file = config ?? env["SWARMD_CONFIG"] {
            do {
                configured = try ConfigLoader.socket(inFile: file)
            } catch let e as SwarmError {
                printError("swarmctl: \(e.message) (or give --socket)")
                SwarmCtl.exit(withError: ExitCode(ExitStatus.config))
            } catch {
                printError("swarmctl: \(file): \(error)")
                SwarmCtl.exit(withError: ExitCode(ExitStatus.config))
            }
        }
        return SocketPath.resolve(option: socket, configured: configured, environment: env)
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

/// Options swarmctl takes before its command (`swarmctl --socket PATH
/// status`, as `systemctl -H`, `docker -H`, `git -C`) are moved after it,
/// where ArgumentParser looks for them.
enum GlobalOptions {
    static let withValue: Set<String> = ["--socket", "--config", "--timeout", "--instance", "-i"]

    static func reorder(_ arguments: [String]) -> [String] {
        var globals: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if withValue.contains(a), i + 1 < arguments.count {
                globals += [a, arguments[i + 1]]
                i += 2
            } else if let eq = a.firstIndex(of: "="), withValue.contains(String(a[..<eq])) {
                globals.append(a)
                i += 1
            } else {
                break
            }
        }
        guard !globals.isEmpty, i < arguments.count, !arguments[i].hasPrefix("-") else { return arguments }
        return [arguments[i]] + globals + arguments[(i + 1)...]
    }
}

func printError(_ text: String) {
    writeAll(2, text + "\n")
}

/// Parses slot arguments.
func slots(_ values: [Int]) -> [Int]? { values.isEmpty ? nil : values }
