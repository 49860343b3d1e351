#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Shared

/// The supervisor's one epoll instance and its one timerfd. Every fd the
/// supervisor watches is registered here under a `Token`; the loop never
/// polls process state, it only sleeps until the kernel or the timer wakes it.
struct EventLoop {
    /// What an epoll event is about. Node events carry the spawn id (not the
    /// slot), so an event from a replaced process can never be mistaken for
    /// its successor's.
    enum Token: Hashable {
        case signal
        case timer
        case listener
        case pidfd(spawn: Int)
        case report(spawn: Int)
        case connection(id: Int)
        case httpListener
        case httpConnection(id: Int)

        var raw: UInt64 {
            switch self {
            case .signal: return 1 << 56
            case .timer: return 2 << 56
            case .listener: return 3 << 56
            case .pidfd(let s): return (4 << 56) | UInt64(s)
            case .report(let s): return (5 << 56) | UInt64(s)
            case .connection(let id): return (6 << 56) | UInt64(id)
            case .httpListener: return 7 << 56
            case .httpConnection(let id): return (8 << 56) | UInt64(id)
            }
        }

        init?(raw: UInt64) {
            let id = Int(raw & ((1 << 56) - 1))
            switch raw >> 56 {
            case 1: self = .signal
            case 2: self = .timer
            case 3: self = .listener
            case 4: self = .pidfd(spawn: id)
            case 5: self = .report(spawn: id)
            case 6: self = .connection(id: id)
            case 7: self = .httpListener
            case 8: self = .httpConnection(id: id)
            default: return nil
            }
        }
    }

    let epollFd: Int32
    let timerFd: Int32
    private var armedFor: Double = 0

    init() throws {
        epollFd = swarm_epoll_create()
        guard epollFd >= 0 else { throw SwarmError(.epoll, "epoll_create1: \(errnoText())") }
        timerFd = swarm_timerfd_create()
        guard timerFd >= 0 else { throw SwarmError(.timerfd, "timerfd_create: \(errnoText())") }
        try add(timerFd, .timer)
    }

    func add(_ fd: Int32, _ token: Token, events: UInt32 = SWARM_EPOLLIN) throws {
        guard swarm_epoll_add(epollFd, fd, events, token.raw) == 0 else {
            throw SwarmError(.epoll, "epoll_ctl(ADD, \(fd)): \(errnoText())")
        }
    }

    func modify(_ fd: Int32, _ token: Token, events: UInt32) {
        _ = swarm_epoll_mod(epollFd, fd, events, token.raw)
    }

    func remove(_ fd: Int32) {
        _ = swarm_epoll_del(epollFd, fd)
    }

    /// Arms the timer for the earliest deadline (monotonic seconds), or disarms it.
    mutating func arm(at deadline: Double?) {
        guard let deadline else {
            if armedFor != 0 { _ = swarm_timerfd_arm(timerFd, 0); armedFor = 0 }
            return
        }
        if deadline == armedFor { return }
        armedFor = deadline
        let ns = max(Int64(1), Int64(saturating: (deadline - monotonicNow()) * 1e9))
        _ = swarm_timerfd_arm(timerFd, ns)
    }

    /// Consumes the timer's expiry count so it stops being readable.
    mutating func drainTimer() {
        var count: UInt64 = 0
        _ = read(timerFd, &count, 8)
        armedFor = 0
    }

    /// Blocks until something happens.
    func wait(max: Int = 64) -> [(Token, UInt32)] {
        var datas = [UInt64](repeating: 0, count: max)
        var events = [UInt32](repeating: 0, count: max)
        let n = swarm_epoll_wait(epollFd, &datas, &events, Int32(max), -1)
        guard n > 0 else { return [] }
        return (0..<Int(n)).compactMap { i in Token(raw: datas[i]).map { ($0, events[i]) } }
    }
}
