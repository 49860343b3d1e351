#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux

/// Writes entries to journald's native socket, with fields of swarm's own
/// (`SWARM_SLOT`, `SWARM_NODE_PID`, `SWARM_EVENT`, …), so that
/// `journalctl -u swarmd SWARM_SLOT=3` shows one slot: through stderr every
/// line is only a MESSAGE.
///
/// Used only when stderr *is* the journal (`JOURNAL_STREAM` names its device
/// and inode, systemd.exec(5)); a datagram that cannot be sent falls back to
/// the stderr line, so nothing is lost when journald is away.
public final class JournalWriter: @unchecked Sendable {
    /// journald's socket; `SWARM_JOURNAL_SOCKET` names another (tests bind
    /// their own receiver there).
    public static let defaultSocket = "/run/systemd/journal/socket"
    let fd: Int32
    let address: String

    /// Nil unless stderr is the stream `JOURNAL_STREAM` names.
    public static func forStderr(environment: [String: String]) -> JournalWriter? {
        guard let stream = environment["JOURNAL_STREAM"] else { return nil }
        let parts = stream.split(separator: ":")
        var st = stat()
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]), fstat(2, &st) == 0,
              UInt64(st.st_dev) == dev, UInt64(st.st_ino) == ino else { return nil }
        // Non-blocking: a journald that cannot keep up must not stall swarmd's
        // loop; a datagram it refuses goes to stderr instead (`send`).
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        return JournalWriter(fd: fd, address: environment["SWARM_JOURNAL_SOCKET"] ?? defaultSocket)
    }

    init(fd: Int32, address: String) {
        self.fd = fd
        self.address = address
    }

    /// One entry in the native protocol: `KEY=value\n`, or for a value with
    /// a line break `KEY\n` + its length (u64 little-endian) + value + `\n`.
    public static func entry(_ fields: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in fields {
            let bytes = Array(value.utf8.prefix(48 * 1024))
            out += Array(key.utf8)
            if bytes.contains(UInt8(ascii: "\n")) {
                out.append(UInt8(ascii: "\n"))
                withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { out += $0 }
            } else {
                out.append(UInt8(ascii: "="))
            }
            out += bytes
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// A field name journald accepts: upper-case letters, digits and `_`, not starting with `_` or a digit.
    public static func fieldName(_ key: String) -> String {
        let name = String(key.uppercased().unicodeScalars.map { ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") ? Character($0) : "_" })
        return "SWARM_" + name
    }

    /// Sends one entry; false when it could not (the caller writes to stderr instead).
    public func send(_ fields: [(String, String)]) -> Bool {
        let bytes = Self.entry(fields)
        return bytes.withUnsafeBytes { buffer in
            swarm_unix_sendto(fd, address, buffer.baseAddress, buffer.count) == buffer.count
        }
    }
}
