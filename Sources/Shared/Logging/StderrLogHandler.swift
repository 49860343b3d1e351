#if canImport(Glibc)
import Glibc
#endif
import Logging

/// One line per event on stderr, in one of two formats:
///
/// - logfmt (the default): `time level [label] message key=value…`, values
///   with spaces or quotes quoted and escaped;
/// - json: `{"time":…,"level":…,"logger":…,"msg":…,<metadata>}`, one object per line.
///
/// Under systemd (`JOURNAL_STREAM` set) a line starts with the journald
/// priority `<N>` instead of a time stamp, so `journalctl -p warning` works;
/// and when stderr is the journal itself, each event goes to journald's
/// native socket instead, with the metadata as fields (`JournalWriter`).
public struct StderrLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let journald: Bool
    let journal: JournalWriter?

    /// The line format: set once at start (swarmd from `[supervisor]
    /// log_format`, a node from the configuration swarmd hands it), before
    /// any thread logs.
    nonisolated(unsafe) public static var format = LogFormat.logfmt

    public init(label: String, journald: Bool, journal: JournalWriter? = nil) {
        self.label = label
        self.journald = journald
        self.journal = journal
    }

    /// Sets up swift-log for a swarm binary: `SWARM_LOG_LEVEL` picks the
    /// level, `SWARM_LOG_FORMAT` the format until the configuration says.
    /// A value that is not one of them is an error naming the choices (the
    /// caller exits 78): a typo must not silently log at another level.
    public static func bootstrap() throws {
        let env = currentEnvironment()
        let journald = env["JOURNAL_STREAM"] != nil
        var level = Logger.Level.info
        if let raw = env["SWARM_LOG_LEVEL"] {
            guard let l = Logger.Level(rawValue: raw.lowercased()) else {
                throw SwarmError(.config, "SWARM_LOG_LEVEL must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(raw)\"")
            }
            level = l
        }
        if let raw = env["SWARM_LOG_FORMAT"] {
            guard let f = LogFormat(rawValue: raw) else {
                throw SwarmError(.config, "SWARM_LOG_FORMAT must be one of \(LogFormat.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(raw)\"")
            }
            format = f
        }
        let journal = JournalWriter.forStderr(environment: env)
        LoggingSystem.bootstrap { name in
            var handler = StderrLogHandler(label: name, journald: journald, journal: journal)
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
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let pairs = all.keys.sorted().map { ($0, "\(all[$0]!)") }
        let text = Self.format(label: label, level: event.level, message: "\(event.message)", pairs: pairs, time: journald ? nil : Self.timestamp())
        if let journal, journal.send(Self.journalFields(level: event.level, text: text, label: label, pairs: pairs)) {
            return
        }
        var line = journald ? "<\(Self.priority(event.level))>" : ""
        line += text
        line += "\n"
        _ = writeAll(2, line)
    }

    /// One event in the configured format, without the line break.
    public static func format(label: String, level: Logger.Level, message: String, pairs: [(String, String)], time: String?) -> String {
        switch format {
        case .logfmt:
            var line = time.map { $0 + " " + level.rawValue.uppercased() + " " } ?? ""
            line += "[\(label)] \(message)"
            for (key, value) in pairs { line += " \(key)=\(logfmt(value))" }
            return line
        case .json:
            var line = "{"
            if let time { line += "\"time\":\(jsonString(time))," }
            line += "\"level\":\(jsonString(level.rawValue)),\"logger\":\(jsonString(label)),\"msg\":\(jsonString(message))"
            for (key, value) in pairs where !["time", "level", "logger", "msg"].contains(key) { line += ",\(jsonString(key)):\(jsonString(value))" }
            return line + "}"
        }
    }

    /// The journal fields of one event: MESSAGE (the line stderr would have
    /// carried, pairs included, so `journalctl -u swarmd` reads as before),
    /// PRIORITY, SYSLOG_IDENTIFIER, and each metadata key as `SWARM_<KEY>`.
    /// A node's pid beside a slot is `SWARM_NODE_PID`, so `journalctl
    /// SWARM_NODE_PID=…` finds one process.
    static func journalFields(level: Logger.Level, text: String, label: String, pairs: [(String, String)]) -> [(String, String)] {
        var fields = [("MESSAGE", text), ("PRIORITY", "\(priority(level))"), ("SYSLOG_IDENTIFIER", label)]
        let hasSlot = pairs.contains { $0.0 == "slot" }
        for (key, value) in pairs {
            fields.append((key == "pid" && hasSlot ? "SWARM_NODE_PID" : JournalWriter.fieldName(key), value))
        }
        return fields
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

    /// A JSON string: TOML's basic-string escapes are all valid JSON escapes.
    static func jsonString(_ value: String) -> String {
        ConfigPrinter.string(value)
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
