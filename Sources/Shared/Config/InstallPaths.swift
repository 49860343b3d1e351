#if canImport(Glibc)
import Glibc
#endif

/// Where the Debian package (and the shipped units) put a swarm's files, so
/// that `swarmctl` and `swarmd --check` find what `systemctl start swarmd`
/// runs without being told: `swarmd.service` reads `/etc/swarmd/swarmd.toml`
/// and listens on `/run/swarmd/swarmd.sock`; `swarmd@NAME.service` reads
/// `/etc/swarmd/NAME.toml` and listens on `/run/swarmd/NAME.sock`.
public enum InstallPaths {
    public static let configDirectory = "/etc/swarmd"
    public static let runtimeDirectory = "/run/swarmd"
    public static let defaultConfig = configDirectory + "/swarmd.toml"

    /// The configuration of instance `name` of `swarmd@.service`.
    public static func config(instance name: String) -> String { "\(configDirectory)/\(name).toml" }
    /// The control socket of instance `name` of `swarmd@.service`.
    public static func socket(instance name: String) -> String { "\(runtimeDirectory)/\(name).sock" }

    /// An instance name as systemd takes it after `swarmd@`: one path
    /// component, so it can name a file in /etc/swarmd and /run/swarmd.
    public static func validInstance(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && name.utf8.count <= 200
    }

    /// `/etc/swarmd/swarmd.toml` when it exists: the file a command uses when
    /// it is given none (no `--config`, no `$SWARMD_CONFIG`).
    public static func existingDefaultConfig() -> String? {
        access(defaultConfig, F_OK) == 0 ? defaultConfig : nil
    }

    /// `path` made absolute against the working directory, so that a status
    /// read from elsewhere names the same file.
    public static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (cwd.hasSuffix("/") ? cwd : cwd + "/") + path
    }
}
