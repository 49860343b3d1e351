#if canImport(Glibc)
import Glibc
#endif

/// Where the control socket lives: the first of `--socket`, `SWARMD_SOCKET`,
/// systemd's `$RUNTIME_DIRECTORY/swarmd.sock`, and `/run/swarmd/swarmd.sock`.
/// swarmd and swarmctl use the same lookup so that they always meet.
public enum SocketPath {
    public static let fallback = "/run/swarmd/swarmd.sock"

    public static func resolve(option: String?, configured: String = "", environment: [String: String] = currentEnvironment()) -> String {
        if let option, !option.isEmpty { return option }
        if let env = environment["SWARMD_SOCKET"], !env.isEmpty { return env }
        if !configured.isEmpty { return configured }
        if let dir = environment["RUNTIME_DIRECTORY"], !dir.isEmpty {
            // systemd may list several directories separated by ':'.
            let first = dir.split(separator: ":").first.map(String.init) ?? dir
            return first + "/swarmd.sock"
        }
        return fallback
    }
}

/// The process environment as a dictionary.
public func currentEnvironment() -> [String: String] {
    var out: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") {
            out[String(s[..<eq])] = String(s[s.index(after: eq)...])
        }
        p += 1
    }
    return out
}
