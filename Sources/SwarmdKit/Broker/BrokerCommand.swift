#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux
import Shared
import SwarmKafka

/// `swarmd broker`: a stand-alone development broker for tests and demos
/// that must outlive one swarmd (a restart that resumes from committed offsets).
public enum BrokerCommand {
    public static func run(brokers: Int, topics: [(String, Int)]) -> Int32 {
        do {
            let cluster = try MockCluster(brokers: brokers)
            for (name, partitions) in topics { try cluster.createTopic(name, partitions: partitions) }
            _ = writeAll(1, cluster.bootstrapServers + "\n")
            // Serve until TERM/INT (signalfd, blocked since main) or EOF on stdin.
            let signals: [Int32] = [SIGTERM, SIGINT]
            let sfd = signals.withUnsafeBufferPointer { swarm_signalfd($0.baseAddress, Int32($0.count)) }
            // stdin counts only when it is a pipe: `swarmd broker </dev/null &` must keep serving.
            var st = stat()
            let watchStdin = fstat(0, &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO
            var fds = [pollfd(fd: sfd, events: Int16(POLLIN), revents: 0), pollfd(fd: 0, events: Int16(POLLIN), revents: 0)]
            while true {
                guard poll(&fds, watchStdin ? 2 : 1, -1) > 0 else { continue }
                if fds[0].revents != 0 { break }
                if fds[1].revents != 0 {
                    var byte: UInt8 = 0
                    if read(0, &byte, 1) <= 0 { break }
                }
            }
            withExtendedLifetime(cluster) {}
            return 0
        } catch {
            _ = writeAll(2, "swarmd broker: \(error)\n")
            return ExitStatus.unavailable
        }
    }
}
