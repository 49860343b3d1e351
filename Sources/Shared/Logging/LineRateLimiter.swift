/// Lets lines through at a steady rate with a burst allowance (a token
/// bucket), and counts what it held back so one `suppressed N lines` line
/// can say so per interval.
///
/// Why: a handler's stderr goes to swarmd's log, and from there to journald,
/// which drops a whole service's lines once it passes `RateLimitBurst`
/// (10,000 per 30 s by default) — swarmd's own lines with them. Measured here
/// before this: a handler writing 10 KB of stderr per message made swarmd log
/// 121 MB, 416,810 lines, in 20 s. With the defaults (20 lines/s, 200 at
/// once, per node) 16 chatty nodes stay under journald's limit.
///
/// Pure: the caller passes the time, so tests drive it with a fake clock.
public struct LineRateLimiter: Sendable {
    public let rate: Double
    public let burst: Double
    /// How often a `suppressed` count is reported while lines are held back.
    public let reportEvery: Double
    private var tokens: Double
    private var last: Double
    private var suppressed = 0
    private var lastReport: Double

    public init(linesPerSecond rate: Double, burst: Int, reportEvery: Double = 10, now: Double) {
        self.rate = rate
        self.burst = Double(burst)
        self.reportEvery = reportEvery
        self.tokens = Double(burst)
        self.last = now
        self.lastReport = now
    }

    public enum Verdict: Equatable, Sendable {
        /// Log the line; `suppressedBefore` lines were held back since the last report (0: none).
        case pass(suppressedBefore: Int)
        /// Hold the line back; `report` is non-nil when it is time to say how many were.
        case drop(report: Int?)
    }

    /// Whether a line arriving at `now` may be logged. A rate of 0 or less lets every line through.
    public mutating func admit(now: Double) -> Verdict {
        guard rate > 0 else { return .pass(suppressedBefore: 0) }
        tokens = min(burst, tokens + (now - last) * rate)
        last = now
        if tokens >= 1 {
            tokens -= 1
            defer { suppressed = 0; lastReport = now }
            return .pass(suppressedBefore: suppressed)
        }
        suppressed += 1
        if now - lastReport >= reportEvery {
            defer { suppressed = 0; lastReport = now }
            return .drop(report: suppressed)
        }
        return .drop(report: nil)
    }

    /// Lines held back and not yet reported (said when the stream ends).
    public var pending: Int { suppressed }
}
