#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared

/// swarmd's read-only HTTP listener (`[http] listen`), served from the
/// supervisor's own epoll loop like the control socket: metrics, probes,
/// the status as JSON and a live page. Nothing on HTTP changes the swarm.
///
/// Why not swift-nio or hummingbird: a "hello" server on either is larger
/// and idles bigger than swarmd's whole memory target, with threads of its
/// own (the figures: BENCHMARKS.md, "HTTP listener"). These few hundred
/// lines on the loop swarmd already has add no thread and no wake-up while
/// nobody asks, for the GET routes a scraper, a probe and a browser call.
///
/// HTTP/1.1 subset: GET and HEAD, one request per connection, answered with
/// `Connection: close`. Bounded like the control socket: request head size,
/// header count, connection count (the idlest goes), an idle deadline that
/// also catches slow senders, and output written without ever blocking.
final class HTTPServer {
    struct Request {
        var method: String
        var path: String
        var query: String
    }

    struct Response {
        var status: Int
        var contentType: String
        var body: [UInt8]

        static func text(_ status: Int, _ body: String) -> Response {
            Response(status: status, contentType: "text/plain; charset=utf-8", body: Array(body.utf8))
        }
    }

    final class Connection {
        let fd: Int32
        var input: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        var deadline: Double
        var answered = false
        init(fd: Int32, deadline: Double) {
            self.fd = fd
            self.deadline = deadline
        }
    }

    static let maxHeadBytes = 8192
    static let maxHeaders = 64
    static let maxConnections = 64
    /// A request head must arrive, and an answer leave, within this many seconds.
    static let timeout = 5.0

    let listenFd: Int32
    let address: String
    private let logger: Logger
    private var connections: [Int: Connection] = [:]
    private var nextId = 1

    init(listen: String, logger: Logger) throws {
        guard let (host, port) = HTTPSettings.parse(listen) else {
            throw SwarmError(.config, "[http] listen \"\(listen)\" is not host:port")
        }
        self.logger = logger
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SwarmError(.socket, "[http] socket: \(errnoText())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        if v6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &addr.sin6_addr) == 1 else { close(fd); throw SwarmError(.config, "[http] listen: \"\(host)\" is not an IPv6 address") }
            rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { close(fd); throw SwarmError(.config, "[http] listen: \"\(host)\" is not an IPv4 address") }
            rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard rc == 0, Glibc.listen(fd, 64) == 0 else {
            let text = errnoText()
            close(fd)
            throw SwarmError(.socket, "[http] cannot listen on \(listen): \(text)")
        }
        listenFd = fd
        address = listen
    }

    /// Takes over the listener an upgrading swarmd left open.
    init(adopting fd: Int32, address: String, logger: Logger) {
        listenFd = fd
        self.address = address
        self.logger = logger
        _ = swarm_set_cloexec(fd)
    }

    var nextDeadline: Double? { connections.values.map(\.deadline).min() }

    func acceptAll(loop: EventLoop) {
        while true {
            let fd = swarm_accept(listenFd)
            guard fd >= 0 else {
                if errno == EMFILE || errno == ENFILE { logger.error("http: out of file descriptors; refusing connections") }
                return
            }
            if connections.count >= Self.maxConnections, let idlest = connections.min(by: { $0.value.deadline < $1.value.deadline }) {
                drop(idlest.key, loop: loop)  // a flood of idle connections must not lock out the scraper
            }
            let id = nextId
            nextId += 1
            do {
                try loop.add(fd, .httpConnection(id: id), events: SWARM_EPOLLIN | SWARM_EPOLLRDHUP)
                connections[id] = Connection(fd: fd, deadline: monotonicNow() + Self.timeout)
            } catch {
                close(fd)
            }
        }
    }

    func service(id: Int, events: UInt32, loop: EventLoop, route: (Request) -> Response) {
        guard let conn = connections[id] else { return }
        if events & SWARM_EPOLLERR != 0 { drop(id, loop: loop); return }
        if conn.answered {
            flush(id, loop: loop)
            return
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var peerClosed = false
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(conn.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                conn.input += buffer[0..<n]
                if conn.input.count > Self.maxHeadBytes { break }
                continue
            }
            if n == 0 || (errno != EINTR && errno != EAGAIN) { peerClosed = true }
            if n < 0 && errno == EINTR { continue }
            break
        }
        switch Self.parse(conn.input) {
        case .incomplete:
            if peerClosed { drop(id, loop: loop) }
        case .bad(let status, let why):
            answer(id, Response.text(status, why + "\n"), head: false, loop: loop)
        case .request(let request):
            let head = request.method == "HEAD"
            answer(id, route(request), head: head, loop: loop)
        }
    }

    enum Parsed {
        case incomplete
        case bad(Int, String)
        case request(Request)
    }

    /// Reads a request head: the request line and headers up to the empty line.
    static func parse(_ bytes: [UInt8]) -> Parsed {
        let end: Int? = {
            guard bytes.count >= 4 else { return nil }
            for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i }
            return nil
        }()
        guard let end else {
            return bytes.count > maxHeadBytes ? .bad(431, "request head larger than \(maxHeadBytes) bytes") : .incomplete
        }
        guard end <= maxHeadBytes else { return .bad(431, "request head larger than \(maxHeadBytes) bytes") }
        guard let head = String(validating: bytes[0..<end], as: UTF8.self) else { return .bad(400, "the request is not UTF-8") }
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard lines.count - 1 <= maxHeaders else { return .bad(431, "more than \(maxHeaders) header lines") }
        let parts = lines[0].split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { return .bad(400, "not an HTTP/1.x request line") }
        let method = String(parts[0])
        guard method == "GET" || method == "HEAD" else { return .bad(405, "read-only: GET and HEAD only") }
        let target = parts[1]
        guard target.hasPrefix("/") else { return .bad(400, "the request target must be a path") }
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        return .request(Request(method: method, path: String(path[0]), query: path.count > 1 ? String(path[1]) : ""))
    }

    private func answer(_ id: Int, _ response: Response, head: Bool, loop: EventLoop) {
        guard let conn = connections[id] else { return }
        let reason: String = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                              408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"][response.status] ?? "Status"
        var text = "HTTP/1.1 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(response.body.count)\r\n"
        text += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n"
        if response.status == 405 { text += "Allow: GET, HEAD\r\n" }
        text += "\r\n"
        conn.output = Array(text.utf8) + (head ? [] : response.body)
        conn.answered = true
        conn.deadline = monotonicNow() + Self.timeout
        Glibc.shutdown(conn.fd, Int32(SHUT_RD))
        flush(id, loop: loop)
    }

    private func flush(_ id: Int, loop: EventLoop) {
        guard let conn = connections[id] else { return }
        while conn.written < conn.output.count {
            let n = conn.output.withUnsafeBytes {
                send(conn.fd, $0.baseAddress! + conn.written, $0.count - conn.written, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if n > 0 { conn.written += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                loop.modify(conn.fd, .httpConnection(id: id), events: SWARM_EPOLLOUT | SWARM_EPOLLRDHUP)
                return
            }
            break
        }
        drop(id, loop: loop)
    }

    /// Closes connections past their deadline: a slow sender gets 408, a slow reader is hung up on.
    func expire(now: Double, loop: EventLoop) {
        for (id, conn) in connections where now >= conn.deadline {
            if !conn.answered && !conn.input.isEmpty {
                answer(id, .text(408, "request head not complete within \(Self.timeout) s\n"), head: false, loop: loop)
            }
            if let c = connections[id], c.answered && now < c.deadline { continue }
            drop(id, loop: loop)
        }
    }

    private func drop(_ id: Int, loop: EventLoop) {
        guard let conn = connections.removeValue(forKey: id) else { return }
        loop.remove(conn.fd)
        close(conn.fd)
    }

    /// Before an upgrade: connections close (clients retry), the listener stays open across exec.
    func handOver() -> Int32 {
        for (_, conn) in connections { close(conn.fd) }
        connections.removeAll()
        _ = swarm_set_inheritable(listenFd)
        return listenFd
    }

    func shutdown() {
        for (_, conn) in connections { close(conn.fd) }
        connections.removeAll()
        close(listenFd)
    }
}
