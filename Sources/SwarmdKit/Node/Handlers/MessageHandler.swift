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

/// A handler that takes a batch before it answered the one before: an exec
/// program, which works in a process of its own while the node fetches and
/// frames the next batch (`[handler] pipeline`; swarm-handler(7), "Pipelining").
public protocol PipelinedHandler: MessageHandler {
    /// Hands a batch over without waiting for its answers; returns its ticket.
    @discardableResult func submit(_ batch: [KafkaMessage]) -> Int
    /// The outcomes of the oldest batch handed over and not yet collected
    /// (fewer than its messages when `shouldAbort` turned true).
    func collect(shouldAbort: () -> Bool) -> [HandleOutcome]
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
