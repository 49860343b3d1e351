import Shared

/// Turns a control-socket request into a command of the core, or the error
/// that refuses it: the protocol version, the command name and the shape of
/// its arguments are checked here, once, so the core only sees commands.
enum ControlMapping {
    enum Mapped: Equatable {
        case command(SwarmCommand)
        /// A reload: the shell reads the file first (I/O), then hands the core `.reload(config)`.
        case reloadFile
        /// Re-execute swarmd (this binary, or `binary`) in place, keeping every node.
        case upgrade(binary: String?)
        /// The Prometheus exposition (read-only; the shell writes it from the status).
        case metrics
    }

    static func command(for request: ControlRequest) -> Result<Mapped, ControlFailure> {
        guard request.v == ControlProtocol.version else {
            return .failure(ControlFailure(.badRequest, "protocol version \(request.v) is not supported; this swarmd speaks v=\(ControlProtocol.version)"))
        }
        guard let name = ControlCommand(rawValue: request.cmd) else {
            return .failure(ControlFailure(.unknownCommand, "unknown command \"\(request.cmd.prefix(64))\"; known: \(ControlCommand.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        switch name {
        case .status: return .success(.command(.status))
        case .scale:
            switch (request.nodes, request.delta) {
            case (let n?, nil): return .success(.command(.scale(.absolute(n))))
            case (nil, let d?): return .success(.command(.scale(.relative(d))))
            default: return .failure(ControlFailure(.badArgument, "scale needs either \"nodes\" (absolute) or \"delta\" (relative)"))
            }
        case .drain: return .success(.command(.drain(slots: request.slots)))
        case .resume: return .success(.command(.resume(slots: request.slots)))
        case .restart: return .success(.command(.restart(slots: request.slots)))
        case .reload: return .success(.reloadFile)
        case .stop: return .success(.command(.stop(now: request.now == true)))
        case .upgrade:
            if let b = request.binary, !b.hasPrefix("/") {
                return .failure(ControlFailure(.badArgument, "the new binary must be an absolute path, not \"\(b.prefix(200))\""))
            }
            return .success(.upgrade(binary: request.binary))
        case .metrics: return .success(.metrics)
        case .autoscale:
            guard let on = request.on else { return .failure(ControlFailure(.badArgument, "autoscale needs \"on\": true or false")) }
            return .success(.command(.autoscale(on: on)))
        }
    }
}
