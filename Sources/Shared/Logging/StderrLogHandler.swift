#if canImport(Glibc)
import Glibc
#endif
import Logging

/// One line per event on stderr: `time level [label] message key=value…`,
/// the pairs in logfmt (values with spaces or quotes quoted and escaped).
/// Under systemd (`JOURNAL_STREAM` set) the line starts with the journald
/// priority `<N>` instead of a time stamp, so `journalctl -p warning` works.
public struct StderrLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let journald: Bool

    public init(label: String, journald: Bool) {
        self.label = label
        self.journald = journald
    }

    /// Sets up swift-log for a swarm binary: `SWARM_LOG_LEVEL` picks the level.
    public static func bootstrap() {
        let env = currentEnvironment()
        let journald = env["JOURNAL_STREAM"] != nil
        let level = env["SWARM_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { name in
            var handler = StderrLogHandler(label: name, journald: journald)
            handler.logLevel = level
            return handler
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// journald priorities (sd-daemon.h) for swift-log's levels.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public func log(event: LogEvent) {
        var line = ""
        if journald {
            line = "<\(Self.priority(event.level))>"
        } else {
            line = Self.timestamp() + " " + event.level.rawValue.uppercased() + " "
        }
        line += "[\(label)] \(event.message)"
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        for key in all.keys.sorted() {
            line += " \(key)=\(Self.logfmt("\(all[key]!)"))"
        }
        line += "\n"
        _ = writeAll(2, line)
    }

    /// A value as logfmt writes it: bare when it can be, else in double
    /// quotes with `\\`, `"`, line breaks and control characters escaped, so
    /// that logfmt readers (Loki, Vector, lnav) see `reason="spawned pid 10678"`
    /// as one value. The quoted form is TOML's basic string, which swarm
    /// already writes (`ConfigPrinter.string`): the same escapes.
    public static func logfmt(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7F }
        return needsQuotes ? ConfigPrinter.string(value) : value
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = ts.tv_nsec / 1_000_000
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)).\(msText)Z"
    }
}
