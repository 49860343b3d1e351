/// An error a user can act on: a stable code for scripts and a message that
/// says what went wrong and, where it can, what to do about it.
public struct SwarmError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What kind of thing went wrong, which decides swarmd's exit status.
    public enum Code: String, Sendable, CaseIterable {
        /// The configuration (file, command line, environment): exit 78.
        case config
        /// How swarmd or a node was invoked: exit 64.
        case usage
        /// Reading or writing a file.
        case io
        /// A node's report line.
        case report
        /// Starting a node.
        case spawn
        /// The exec handler's program.
        case handler
        /// The control socket.
        case socket
        /// The embedded development broker.
        case broker
        /// The event loop's own fds.
        case epoll, signalfd, timerfd

        /// The sysexits status a command that stops on this error exits with.
        public var exitStatus: Int32 {
            switch self {
            case .config: return ExitStatus.config
            case .usage: return ExitStatus.usage
            case .epoll, .signalfd, .timerfd: return ExitStatus.software
            default: return ExitStatus.unavailable
            }
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// The exit statuses of sysexits.h that swarmd and swarmctl promise.
public enum ExitStatus {
    public static let ok: Int32 = 0
    public static let failure: Int32 = 1
    /// `swarmctl status`: swarmd answers, but not every wanted node is healthy.
    public static let degraded: Int32 = 3
    public static let usage: Int32 = 64
    public static let unavailable: Int32 = 69
    public static let software: Int32 = 70
    public static let noPermission: Int32 = 77
    public static let config: Int32 = 78
}
