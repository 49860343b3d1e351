#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwarmLinux

/// The text of an errno value, for error messages.
public func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// Reads a whole (small) file, e.g. a /proc entry. Bytes that are not
/// UTF-8 become U+FFFD: for what the kernel writes that is harmless; a
/// configuration is read with `readFileBytes` and checked instead.
public func readTextFile(_ path: String) throws -> String {
    String(decoding: try readFileBytes(path), as: UTF8.self)
}

/// Reads a whole (small) file as bytes.
public func readFileBytes(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SwarmError(.io, "cannot open: \(errnoText())") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw SwarmError(.io, "cannot read: \(errnoText())")
        }
        if n == 0 { break }
        bytes.append(contentsOf: buffer[0..<n])
        if bytes.count > 16 << 20 { throw SwarmError(.io, "file is larger than 16 MiB") }
    }
    return bytes
}

/// Writes all of `bytes` to a blocking fd, retrying short writes and EINTR.
@discardableResult
public func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += n
    }
    return true
}

@discardableResult
public func writeAll(_ fd: Int32, _ text: String) -> Bool {
    writeAll(fd, Array(text.utf8))
}

/// Monotonic time in seconds, for deadlines that must not jump with the wall clock.
public func monotonicNow() -> Double {
    Double(swarm_monotonic_ns()) / 1e9
}

/// Wall-clock time in seconds since the epoch.
public func wallNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The resident set size of a process in bytes, from /proc/PID/statm; nil if it is gone.
public func residentBytes(pid: Int32) -> Int64? {
    guard let text = try? readTextFile("/proc/\(pid)/statm") else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int64(fields[1]) else { return nil }
    return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
}

/// The host name, for default node ids.
public func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Sleeps for the given seconds (node side only; the supervisor never sleeps).
public func sleepSeconds(_ seconds: Double) {
    guard seconds > 0 else { return }
    var request = timespec(tv_sec: Int(saturating: seconds), tv_nsec: Int(saturating: (seconds - seconds.rounded(.towardZero)) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// The names of the signals swarm talks about, for logs.
public func signalName(_ sig: Int32) -> String {
    switch sig {
    case SIGHUP: return "HUP"
    case SIGINT: return "INT"
    case SIGQUIT: return "QUIT"
    case SIGILL: return "ILL"
    case SIGABRT: return "ABRT"
    case SIGBUS: return "BUS"
    case SIGFPE: return "FPE"
    case SIGKILL: return "KILL"
    case SIGUSR1: return "USR1"
    case SIGSEGV: return "SEGV"
    case SIGUSR2: return "USR2"
    case SIGPIPE: return "PIPE"
    case SIGALRM: return "ALRM"
    case SIGTERM: return "TERM"
    case SIGCHLD: return "CHLD"
    case SIGCONT: return "CONT"
    case SIGSTOP: return "STOP"
    case SIGTSTP: return "TSTP"
    case SIGTTIN: return "TTIN"
    case SIGTTOU: return "TTOU"
    case SIGXCPU: return "XCPU"
    case SIGSYS: return "SYS"
    default: return "\(sig)"
    }
}

/// True while a process with this pid runs (for swarmctl stop's wait). A
/// zombie has finished: it only waits for its parent to reap it.
public func processExists(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 || errno == EPERM else { return false }
    guard let stat = try? readTextFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return true }
    return stat[stat.index(after: close)...].trimmingSpaces().first != "Z"
}

/// A group given by name or number, as chown(1) takes it; nil when no such
/// group exists by that name (a number is taken as it is).
public func resolveGroup(_ name: String) -> gid_t? {
    if let n = UInt32(name) { return n }
    return getgrnam(name).map { $0.pointee.gr_gid }
}

/// Where a symbolic link points (`/proc/self/exe`, say).
public func readLink(_ path: String) throws -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink(path, &buffer, buffer.count - 1)
    guard n >= 0 else { throw SwarmError(.io, "\(path): \(errnoText())") }
    return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
