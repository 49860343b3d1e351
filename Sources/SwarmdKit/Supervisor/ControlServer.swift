#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Logging
import Shared

/// The control socket, served from the supervisor's epoll loop. Hostile or
/// broken clients are the normal case here: every connection has a size
/// limit, an idle deadline and a bounded output buffer, the number of
/// connections is capped, and every failure only ever closes that one connection.
final class ControlServer {
    struct Peer {
        let pid: Int32
        let uid: UInt32
        let gid: UInt32
        /// Its process name, for the log line of a changing command.
        var comm = ""
        var access = Access.full
    }

    /// What a peer may ask: everything (root, swarmd's own user,
    /// `socket_group`), or only to look (`socket_read_group`: status, metrics).
    enum Access: Equatable { case full, read }

    /// Who may do what: decided per connection from the peer's credentials,
    /// so one socket serves both kinds of peer.
    struct Groups {
        var full: gid_t?
        var read: gid_t?

        /// Only root and swarmd's user.
        init() {}

        init(full: String, read: String) throws {
            func gid(_ name: String, _ key: String) throws -> gid_t? {
                guard !name.isEmpty else { return nil }
                guard let g = resolveGroup(name) else {
                    throw SwarmError(.config, "[supervisor] \(key): there is no group named \"\(name)\" (getent group \(name))")
                }
                return g
            }
            self.full = try gid(full, "socket_group")
            self.read = try gid(read, "socket_read_group")
        }
    }

    final class Connection {
        let fd: Int32
        let peer: Peer
        var input = LineBuffer(limit: ControlProtocol.maxRequestBytes)
        var output: [UInt8] = []
        var deadline: Double
        var closeAfterWrite = false
        init(fd: Int32, peer: Peer, deadline: Double) {
            self.fd = fd
            self.peer = peer
            self.deadline = deadline
        }
    }

    static let maxConnections = 256
    static let maxPendingOutput = 4 << 20

    let path: String
    let listenFd: Int32
    let idleTimeout: Double
    let groups: Groups
    let logger: Logger
    private var connections: [Int: Connection] = [:]
    private var nextId = 1

    /// With a `readGroup`, the socket file is opened to everyone (0666) and
    /// each connection is checked here: the file's mode cannot say "these may
    /// look, those may act" (it has one group).
    init(path: String, mode: UInt32, groups: Groups, idleTimeout: Double, logger: Logger) throws {
        self.path = path
        self.idleTimeout = idleTimeout
        self.logger = logger
        self.groups = groups
        try Self.claim(path)
        let fd = swarm_unix_listen(path, 128)
        guard fd >= 0 else {
            throw SwarmError(.socket, "cannot listen on \(path): \(errnoText()) (set --socket or SWARMD_SOCKET to a writable place)")
        }
        listenFd = fd
        chmod(path, mode_t(groups.read == nil ? mode : 0o666))
        if let gid = groups.full { _ = chown(path, uid_t.max, gid) }
    }

    /// Takes over the listening socket an upgrading swarmd left open.
    init(adopting fd: Int32, path: String, groups: Groups, idleTimeout: Double, logger: Logger) {
        self.path = path
        self.idleTimeout = idleTimeout
        self.logger = logger
        self.groups = groups
        listenFd = fd
        _ = swarm_set_cloexec(fd)
    }

    /// Before swarmd re-executes itself: every answer queued goes out, every
    /// connection is closed cleanly (a client reconnects to the new swarmd),
    /// and the listener stays open across exec, so no connection is refused.
    func handOver() -> Int32 {
        for (_, conn) in connections {
            while !conn.output.isEmpty {
                let n = conn.output.withUnsafeBytes { send(conn.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { break }
                conn.output.removeFirst(n)
            }
            close(conn.fd)
        }
        connections.removeAll()
        _ = swarm_set_inheritable(listenFd)
        return listenFd
    }

    /// Makes sure no other swarmd serves `path`: a live one is an error naming
    /// its pid, a stale socket file is removed, a missing directory is created.
    static func claim(_ path: String) throws {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            let dir = String(path[..<slash])
            if access(dir, F_OK) != 0 {
                var prefix = ""
                for part in dir.split(separator: "/") {
                    prefix += "/" + part
                    mkdir(prefix, 0o755)
                }
            }
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw SwarmError(.socket, "\(path) exists and is not a socket; remove it or choose another --socket")
        }
        let fd = swarm_unix_connect(path)
        if fd >= 0 {
            close(fd)
            let pid = (try? ControlClient(path: path, timeout: 2).send(ControlRequest(cmd: .status)))?.status?.pid
            throw SwarmError(.socket, "another swarmd\(pid.map { " (pid \($0))" } ?? "") is already serving \(path); stop it first or use another --socket")
        }
        unlink(path)
    }

    var nextDeadline: Double? { connections.values.map(\.deadline).min() }

    func acceptAll(loop: EventLoop) {
        while true {
            let fd = swarm_accept(listenFd)
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE {
                    logger.error("control: out of file descriptors; refusing connections")
                }
                return
            }
            var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
            guard swarm_peercred(fd, &pid, &uid, &gid) == 0 else { close(fd); continue }
            var peer = Peer(pid: pid, uid: uid, gid: gid)
            peer.comm = String(((try? readTextFile("/proc/\(pid)/comm")) ?? "").prefix { $0 != "\n" })
            guard let access = permission(peer, fd: fd) else {
                logger.warning("control: connection refused: permission denied", metadata: ["peer_uid": "\(uid)", "peer_pid": "\(pid)", "peer_comm": "\(peer.comm)"])
                refuse(fd, .failure(.permissionDenied, "permission denied: uid \(uid) may not use this swarmd (root, uid \(geteuid())\(groups.full.map { ", group \($0)" } ?? "")\(groups.read.map { "; group \($0) to look" } ?? ""))"))
                continue
            }
            peer.access = access
            if connections.count >= Self.maxConnections, let idlest = connections.min(by: { $0.value.deadline < $1.value.deadline }) {
                // A flood of idle clients must not lock the operator out: the one idle longest makes room.
                drop(idlest.key, loop: loop)
            }
            let id = nextId
            nextId += 1
            let conn = Connection(fd: fd, peer: peer, deadline: monotonicNow() + idleTimeout)
            do {
                try loop.add(fd, .connection(id: id), events: SWARM_EPOLLIN | SWARM_EPOLLRDHUP)
                connections[id] = conn
            } catch {
                close(fd)
            }
        }
    }

    /// Answers a refused client without blocking and hangs up.
    private func refuse(_ fd: Int32, _ response: ControlResponse) {
        let bytes = ControlProtocol.line(response)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        close(fd)
    }

    /// What the peer may do, or nil for nothing. Its groups are the ones its
    /// process had when it connected (SO_PEERGROUPS), not what /etc/group
    /// says now: `newgrp`, `sg` and `setpriv --groups` count, as for a file.
    private func permission(_ peer: Peer, fd: Int32) -> Access? {
        if peer.uid == 0 || peer.uid == geteuid() { return .full }
        if groups.full == nil && groups.read == nil { return nil }
        var ids = [UInt32](repeating: 0, count: 256)
        let n = swarm_peergroups(fd, &ids, Int32(ids.count))
        var all = Set(n > 0 ? Array(ids.prefix(Int(n))) : [])
        all.insert(peer.gid)
        if n < 0, let pw = getpwuid(peer.uid) {
            // A kernel before 4.13: the user's groups from the database instead.
            var count: Int32 = 256
            var list = [gid_t](repeating: 0, count: 256)
            if getgrouplist(pw.pointee.pw_name, pw.pointee.pw_gid, &list, &count) >= 0 { all.formUnion(list.prefix(Int(count))) }
        }
        if let g = groups.full, all.contains(g) { return .full }
        if let g = groups.read, all.contains(g) { return .read }
        return nil
    }

    func service(id: Int, events: UInt32, loop: EventLoop, handler: (ControlRequest, Peer) -> ControlResponse) {
        guard let conn = connections[id] else { return }
        if events & (SWARM_EPOLLERR) != 0 { drop(id, loop: loop); return }
        if events & SWARM_EPOLLOUT != 0 { flush(id, loop: loop) }
        guard connections[id] != nil else { return }
        if events & (SWARM_EPOLLIN | SWARM_EPOLLHUP | SWARM_EPOLLRDHUP) != 0 {
            var buffer = [UInt8](repeating: 0, count: 16384)
            var peerClosed = false
            var items: [LineBuffer.Item] = []
            while !conn.closeAfterWrite {
                let n = buffer.withUnsafeMutableBytes { recv(conn.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 {
                    items += buffer.withUnsafeBytes { conn.input.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                    if items.count > 64 { break }
                    continue
                }
                if n == 0 { peerClosed = true }
                else if errno == EINTR { continue }
                else if errno != EAGAIN { peerClosed = true }
                break
            }
            conn.deadline = monotonicNow() + idleTimeout
            if peerClosed && !conn.input.isEmpty && !conn.closeAfterWrite {
                // A last request without its newline is still answered.
                items += conn.input.feed([UInt8(ascii: "\n")])
            }
            for item in items where !conn.closeAfterWrite {
                switch item {
                case .overflow:
                    queue(conn, .failure(.tooLarge, "request longer than \(ControlProtocol.maxRequestBytes) bytes"))
                    conn.closeAfterWrite = true
                case .line(let line):
                    if line.allSatisfy({ $0 == 32 || $0 == 9 }) { continue }
                    let response: ControlResponse
                    do {
                        let request = try ControlProtocol.decoder.decode(ControlRequest.self, from: line)
                        response = handler(request, conn.peer)
                    } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
                        response = .failure(.badArgument, "wrong type for \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\"")
                    } catch DecodingError.keyNotFound(let key, _) {
                        response = .failure(.badRequest, "missing \"\(key.stringValue)\"; a request looks like {\"v\":1,\"cmd\":\"status\"}")
                    } catch let DecodingError.dataCorrupted(ctx) where !ctx.codingPath.isEmpty {
                        response = .failure(.badArgument, "\"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\": \(ctx.debugDescription)")
                    } catch let error as JSONSyntaxError {
                        response = .failure(.badRequest, "not a JSON request (\(error)); a request looks like {\"v\":1,\"cmd\":\"status\"}")
                    } catch {
                        response = .failure(.badRequest, "not a JSON request; a request looks like {\"v\":1,\"cmd\":\"status\"}")
                    }
                    queue(conn, response)
                }
            }
            if peerClosed { conn.closeAfterWrite = true }  // hang up once the answers are out
            flush(id, loop: loop)
        }
    }

    private func queue(_ conn: Connection, _ response: ControlResponse) {
        conn.output += ControlProtocol.line(response)
        if conn.output.count > Self.maxPendingOutput { conn.output.removeAll(); conn.closeAfterWrite = true }
    }

    private func flush(_ id: Int, loop: EventLoop) {
        guard let conn = connections[id] else { return }
        while !conn.output.isEmpty {
            let n = conn.output.withUnsafeBytes { send(conn.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n > 0 { conn.output.removeFirst(n); continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                loop.modify(conn.fd, .connection(id: id), events: SWARM_EPOLLIN | SWARM_EPOLLOUT | SWARM_EPOLLRDHUP)
                return
            }
            drop(id, loop: loop)
            return
        }
        loop.modify(conn.fd, .connection(id: id), events: SWARM_EPOLLIN | SWARM_EPOLLRDHUP)
        if conn.closeAfterWrite { drop(id, loop: loop) }
    }

    func expire(now: Double, loop: EventLoop) {
        for (id, conn) in connections where now >= conn.deadline {
            if conn.output.isEmpty && conn.input.isEmpty == false {
                queue(conn, .failure(.timeout, "request not finished within \(idleTimeout) s"))
                conn.closeAfterWrite = true
                flush(id, loop: loop)
            }
            if connections[id] != nil { drop(id, loop: loop) }
        }
    }

    private func drop(_ id: Int, loop: EventLoop) {
        guard let conn = connections.removeValue(forKey: id) else { return }
        loop.remove(conn.fd)
        close(conn.fd)
    }

    func shutdown() {
        for (_, conn) in connections { close(conn.fd) }
        connections.removeAll()
        close(listenFd)
        unlink(path)
    }
}
