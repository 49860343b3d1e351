#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux

/// A blocking client of the control socket: connect, send one request line,
/// read one response line. Used by swarmctl and the tests.
public struct ControlClient {
    public var path: String
    /// Seconds to wait for the answer.
    public var timeout: Double

    public init(path: String, timeout: Double = 10) {
        self.path = path
        self.timeout = timeout
    }

    public enum Failure: Error, Equatable {
        /// Nobody answers on the socket (errno text attached).
        case unavailable(String)
        case permissionDenied(String)
        case protocolError(String)
    }

    public func send(_ request: ControlRequest) throws -> ControlResponse {
        let line = try exchange(request)
        do {
            let response = try ControlProtocol.decoder.decode(ControlResponse.self, from: line)
            if response.error?.code == ControlErrorCode.permissionDenied.rawValue {
                throw Failure.permissionDenied(response.error!.message)
            }
            return response
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure.protocolError("unreadable answer from swarmd: \(error)")
        }
    }

    /// A status answer's `status` object as swarmd wrote it, for output that
    /// only passes it on (`swarmctl status --json`): no parsing and encoding
    /// back, which cost more than the request with hundreds of nodes. nil
    /// when the answer is anything but a plain successful status.
    public func statusJSON() throws -> [UInt8]? {
        let line = try exchange(ControlRequest(cmd: .status))
        // Keys are sorted: a successful status is {"ok":true,"status":{…},"v":1}.
        let head = Array("{\"ok\":true,\"status\":".utf8), tail = Array(",\"v\":\(ControlProtocol.version)}".utf8)
        guard line.count > head.count + tail.count, line.starts(with: head), line.suffix(tail.count).elementsEqual(tail) else { return nil }
        return Array(line[head.count..<(line.count - tail.count)])
    }

    /// One request line out, one answer line back.
    private func exchange(_ request: ControlRequest) throws -> [UInt8] {
        let fd = swarm_unix_connect(path)
        if fd < 0 {
            let code = errno
            if code == EACCES || code == EPERM {
                throw Failure.permissionDenied("cannot connect to \(path): \(errnoText(code))")
            }
            throw Failure.unavailable("no swarmd answering on \(path) (\(errnoText(code))); is swarmd running?")
        }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(saturating: timeout), tv_usec: Int(saturating: (timeout - timeout.rounded(.towardZero)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // MSG_NOSIGNAL: a daemon that refuses us closes the socket, and its answer is still there to read.
        let bytes = ControlProtocol.line(request)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            sent += n
        }
        var lines = LineBuffer(limit: 16 << 20)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { throw Failure.protocolError("swarmd on \(path) did not answer within \(timeout) s") }
                throw Failure.unavailable("reading from \(path): \(errnoText())")
            }
            if n == 0 { throw Failure.protocolError("swarmd on \(path) closed the connection without an answer") }
            for item in lines.feed(Array(buffer[0..<n])) {
                guard case .line(let line) = item else { throw Failure.protocolError("answer too long") }
                return line
            }
        }
    }
}
