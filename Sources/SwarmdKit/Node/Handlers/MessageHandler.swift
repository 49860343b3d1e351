import Shared
import SwarmKafka

/// What a handler says about one message.
public enum HandleOutcome: Equatable, Sendable {
    case ok
    case failed(String)
    /// Not handled, deliver again (after a failure earlier in the same
    /// partition, say): with `ordering = "partition"` the partition rewinds
    /// to it without counting an attempt; with `"none"` it counts as a failure.
    case deferred
    /// The handler died before answering (an exec program that crashed):
    /// not known to be this message's fault. In order mode its partition is
    /// retried one message at a time until the culprit is found.
    case lost(String)
}

/// Handles batches of messages for a node. A handler answers every message
/// of a batch, in order; the node stores offsets only after that.
public protocol MessageHandler: AnyObject {
    /// Handles a batch. `shouldAbort` turns true when the node must leave at
    /// once (QUIT): a handler that can stop early returns what it has, and the
    /// unanswered messages count as not handled (so they are not committed).
    func handle(_ batch: [KafkaMessage], shouldAbort: () -> Bool) -> [HandleOutcome]
    /// Releases what the handler holds (an external process, say): at once
    /// when `now` (QUIT), else giving it the time a graceful stop allows.
    func shutdown(now: Bool)
}

/// Builds the configured handler.
public func makeHandler(_ settings: HandlerSettings, slot: Int, logger: Logger, killTimeout: Double = 10) -> MessageHandler {
    switch settings.kind {
    case .sink: return SinkHandler()
    case .cpu: return CPUHandler(rounds: settings.cpuRounds)
    case .exec:
        return ExecHandler(command: settings.command, protocol: settings.protocolVersion, slot: slot, logger: logger,
                           stderrLevel: Logger.Level(rawValue: settings.stderrLevel.rawValue) ?? .info,
                           stderrRate: settings.stderrRate, killTimeout: killTimeout)
    }
}

import Logging
