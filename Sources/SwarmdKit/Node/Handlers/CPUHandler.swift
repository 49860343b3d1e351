import Shared
import SwarmKafka

/// `rounds` of SHA-256 over each message's value: the CPU-bound work swarm
/// exists for, in a form whose cost is the same on every run.
public final class CPUHandler: MessageHandler {
    let rounds: Int
    /// Keeps the optimizer from dropping the work.
    public private(set) var checksum: UInt8 = 0

    public init(rounds: Int) { self.rounds = rounds }

    public func handle(_ batch: [KafkaMessage], shouldAbort: () -> Bool) -> [HandleOutcome] {
        var out: [HandleOutcome] = []
        out.reserveCapacity(batch.count)
        for message in batch {
            if shouldAbort() { break }
            var digest = message.value ?? []
            for _ in 0..<rounds { digest = SHA256.hash(digest) }
            checksum ^= digest.first ?? 0
            out.append(.ok)
        }
        return out
    }

    public func shutdown(now: Bool) {}
}
