import Shared
import SwarmKafka

/// Accepts and discards every message: measures the consumer's own speed.
public final class SinkHandler: MessageHandler {
    public init() {}
    public func handle(_ batch: [KafkaMessage], shouldAbort: () -> Bool) -> [HandleOutcome] {
        Array(repeating: .ok, count: batch.count)
    }
    public func shutdown(now: Bool) {}
}
