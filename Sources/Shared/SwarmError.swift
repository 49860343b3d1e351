/// An error a user can act on: a stable code for scripts and a message that
/// says what went wrong and, where it can, what to do about it.
public struct SwarmError: Error, CustomStringConvertible, Equatable, Sendable {
    public var code: String
    public var message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// The exit statuses of sysexits.h that swarmd and swarmctl promise.
public enum ExitStatus {
    public static let ok: Int32 = 0
    public static let failure: Int32 = 1
    public static let usage: Int32 = 64
    public static let unavailable: Int32 = 69
    public static let software: Int32 = 70
    public static let noPermission: Int32 = 77
    public static let config: Int32 = 78
}
