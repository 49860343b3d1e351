/// Turns a TOML file into a validated `SwarmConfig`. Every error names the
/// file, the line, the key and what is wrong, and unknown keys are refused:
/// a misspelt `report_timout` must not silently fall back to a default.
public struct ConfigLoader {
    public var path: String

    public init(path: String) { self.path = path }

    /// What a file said: the configuration, and which settings it set
    /// (`section.key`, for `--check` and `--print`).
    public struct Loaded: Sendable {
        public var config: SwarmConfig
        public var setKeys: Set<String>

        public init(config: SwarmConfig, setKeys: Set<String>) {
            self.config = config
            self.setKeys = setKeys
        }
    }

    /// Reads and validates the file at `path`.
    public func load() throws -> SwarmConfig { try read().config }

    /// Reads and validates the file at `path`, remembering which keys it set.
    public func read() throws -> Loaded {
        let bytes: [UInt8]
        do {
            bytes = try readFileBytes(path)
        } catch let error as SwarmError {
            throw SwarmError(.config, "\(path): \(error.message)")
        }
        return try parse(bytes: bytes)
    }

    /// The `[supervisor] socket` a file names ("" when it names none), for
    /// `swarmctl --config`. Only the TOML is read: swarmctl needs neither the
    /// rest validated nor the right to read the secrets the file points at.
    public static func socket(inFile path: String) throws -> String {
        let bytes: [UInt8]
        do { bytes = try readFileBytes(path) } catch let error as SwarmError {
            throw SwarmError(.config, "\(path): \(error.message)")
        }
        let root: TOMLTable
        do { root = try TOMLParser.parse(bytes: bytes) } catch let error as TOMLError {
            throw SwarmError(.config, "\(path):\(error.line): \(error.message)")
        }
        guard case .table(let s)? = root["supervisor"], let v = s["socket"] else { return "" }
        guard case .string(let socket) = v else { throw SwarmError(.config, "\(path): [supervisor] socket must be a string") }
        return socket
    }

    /// Validates a configuration given as TOML text.
    public func parse(_ text: String) throws -> SwarmConfig { try parse(bytes: Array(text.utf8)).config }

    /// Validates a configuration given as the bytes of a file.
    public func parse(bytes: [UInt8]) throws -> Loaded {
        let root: TOMLTable
        do {
            root = try TOMLParser.parse(bytes: bytes)
        } catch let error as TOMLError {
            throw SwarmError(.config, "\(path):\(error.line): \(error.message)")
        }
        var config = SwarmConfig()
        var setKeys: Set<String> = []
        var top = Section(file: path, name: "", table: root)
        try top.allow(["supervisor", "kafka", "handler", "embedded", "http", "autoscale", "cluster"])
        if let t = try top.table("supervisor") { try supervisor(t, into: &config, setKeys: &setKeys) }
        if let t = try top.table("kafka") { try kafka(t, into: &config, setKeys: &setKeys) }
        if let t = try top.table("handler") { try handler(t, into: &config, setKeys: &setKeys) }
        if let t = try top.table("embedded") { try embedded(t, into: &config, setKeys: &setKeys) }
        if let t = try top.table("http") { try http(t, into: &config, setKeys: &setKeys) }
        if let t = try top.table("autoscale") { try autoscale(t, into: &config, setKeys: &setKeys) }
        if let t = try top.table("cluster") { try cluster(t, into: &config, setKeys: &setKeys) }
        try top.finish()
        return Loaded(config: config, setKeys: setKeys)
    }

    private func supervisor(_ t: TOMLTable, into config: inout SwarmConfig, setKeys: inout Set<String>) throws {
        var s = Section(file: path, name: "supervisor", table: t)
        let d = config.supervisor
        if case .string(let word)? = t["nodes"] {
            _ = s.value("nodes")
            guard word == "auto" else {
                throw s.error("nodes", "must be an integer from 1 to \(SupervisorSettings.maxNodes) or \"auto\", not \"\(word)\"")
            }
            let budget = CPUBudget.current()
            config.supervisor.nodes = budget.nodes
            config.supervisor.nodesAuto = budget.derivation
        } else {
            config.supervisor.nodes = try s.int("nodes", d.nodes, min: 1, max: SupervisorSettings.maxNodes)
        }
        config.supervisor.nodeCommand = try s.strings("node_command", d.nodeCommand)
        config.supervisor.instancePrefix = try s.string("instance_prefix", d.instancePrefix)
        config.supervisor.reportInterval = try s.seconds("report_interval", d.reportInterval, min: 0.05)
        config.supervisor.reportTimeout = try s.seconds("report_timeout", d.reportTimeout, min: 0.1)
        config.supervisor.killTimeout = try s.seconds("kill_timeout", d.killTimeout, min: 0.1)
        config.supervisor.shutdownTimeout = try s.seconds("shutdown_timeout", d.shutdownTimeout, min: 0.1)
        config.supervisor.quitTimeout = try s.seconds("quit_timeout", d.quitTimeout, min: 0.1)
        config.supervisor.memoryLimit = try s.bytes("memory_limit", d.memoryLimit)
        config.supervisor.memoryHigh = try s.bytes("memory_high", d.memoryHigh)
        config.supervisor.memoryMax = try s.bytes("memory_max", d.memoryMax)
        config.supervisor.restartBackoffMax = try s.seconds("restart_backoff_max", d.restartBackoffMax, min: 0.1)
        config.supervisor.restartResetAfter = try s.seconds("restart_reset_after", d.restartResetAfter, min: 0.1)
        config.supervisor.crashLoopAfter = try s.int("crash_loop_after", d.crashLoopAfter, min: 1, max: 1000)
        config.supervisor.socket = try s.string("socket", d.socket)
        config.supervisor.socketMode = try s.mode("socket_mode", d.socketMode)
        config.supervisor.socketGroup = try s.string("socket_group", d.socketGroup)
        config.supervisor.socketReadGroup = try s.string("socket_read_group", d.socketReadGroup)
        config.supervisor.logFormat = try s.choice("log_format", d.logFormat)
        config.supervisor.controlTimeout = try s.seconds("control_timeout", d.controlTimeout, min: 0.1)
        config.supervisor.readyTimeout = try s.seconds("ready_timeout", d.readyTimeout, min: 0.1)
        config.supervisor.disconnectedAfter = try s.seconds("disconnected_after", d.disconnectedAfter, min: 0.1)
        config.supervisor.rebalanceLimit = try s.seconds("rebalance_limit", d.rebalanceLimit, min: 1)
        try s.finish()
        if config.supervisor.reportTimeout <= config.supervisor.reportInterval {
            throw s.error("report_timeout", "(\(config.supervisor.reportTimeout) s) must be longer than report_interval (\(config.supervisor.reportInterval) s)")
        }
        setKeys.formUnion(s.present)
    }

    private func kafka(_ t: TOMLTable, into config: inout SwarmConfig, setKeys: inout Set<String>) throws {
        var s = Section(file: path, name: "kafka", table: t)
        config.kafka.topics = try s.strings("topics", config.kafka.topics)
        if config.kafka.topics.isEmpty || config.kafka.topics.contains(where: \.isEmpty) {
            throw s.error("topics", "needs at least one topic name, and no empty names")
        }
        config.kafka.groupId = try s.string("group_id", config.kafka.groupId)
        if config.kafka.groupId.isEmpty { throw s.error("group_id", "must not be empty") }
        if let p = try s.table("properties") {
            var props = Section(file: path, name: "kafka.properties", table: p)
            config.kafka.properties = try props.properties()
            for (key, value) in KafkaSettings.defaults where config.kafka.properties[key] == nil {
                config.kafka.properties[key] = value
            }
            for reserved in ["group.id", "group.instance.id", "enable.auto.offset.store"] where config.kafka.properties[reserved] != nil {
                throw props.error(reserved, "is set by swarm itself (use [kafka] group_id; instance ids come from instance_prefix and the slot; offsets are stored only after handling)")
            }
            setKeys.formUnion(props.present)
        }
        try s.finish()
        setKeys.formUnion(s.present.subtracting(["kafka.properties"]))
    }

    private func handler(_ t: TOMLTable, into config: inout SwarmConfig, setKeys: inout Set<String>) throws {
        var s = Section(file: path, name: "handler", table: t)
        let d = config.handler
        config.handler.kind = try s.choice("kind", d.kind)
        config.handler.command = try s.strings("command", d.command)
        config.handler.protocolVersion = try s.int("protocol", d.protocolVersion, min: 1, max: 2)
        config.handler.cpuRounds = try s.int("cpu_rounds", d.cpuRounds, min: 0, max: 100_000_000)
        config.handler.batchSize = try s.int("batch_size", d.batchSize, min: 1, max: 100_000)
        config.handler.pipeline = try s.int("pipeline", d.pipeline, min: 1, max: 16)
        config.handler.batchTimeout = try s.seconds("batch_timeout", d.batchTimeout, min: 0.1)
        config.handler.retries = try s.int("retries", d.retries, min: 0, max: 1000)
        config.handler.retryBackoff = try s.seconds("retry_backoff", d.retryBackoff, min: 0)
        config.handler.onFailure = try s.choice("on_failure", d.onFailure)
        config.handler.ordering = try s.choice("ordering", d.ordering)
        config.handler.deadLetterTopic = try s.string("dead_letter_topic", d.deadLetterTopic)
        config.handler.commitInterval = try s.seconds("commit_interval", d.commitInterval, min: 0.1)
        config.handler.stderrLevel = try s.choice("stderr_level", d.stderrLevel)
        config.handler.stderrRate = try s.int("stderr_rate", d.stderrRate, min: 0, max: 1_000_000)
        if config.handler.kind == .exec && config.handler.command.isEmpty {
            throw s.error("command", "is required when kind = \"exec\": the handler program and its arguments, e.g. [\"python3\", \"handler.py\"]")
        }
        if config.handler.onFailure == .deadLetter && config.handler.deadLetterTopic.isEmpty {
            throw s.error("dead_letter_topic", "is required when on_failure = \"dead-letter\"")
        }
        try s.finish()
        setKeys.formUnion(s.present)
    }

    private func http(_ t: TOMLTable, into config: inout SwarmConfig, setKeys: inout Set<String>) throws {
        var s = Section(file: path, name: "http", table: t)
        config.http.listen = try s.string("listen", config.http.listen)
        if !config.http.listen.isEmpty {
            guard let (host, port) = HTTPSettings.parse(config.http.listen), port > 0 else {
                throw s.error("listen", "must be \"host:port\", \"[v6 address]:port\" or a port (loopback), not \"\(config.http.listen)\"")
            }
            guard host.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) else {
                throw s.error("listen", "needs a numeric address (\"127.0.0.1:9464\", \"[::1]:9464\", \"0.0.0.0:9464\"), not the name \"\(host)\"")
            }
        }
        try s.finish()
        setKeys.formUnion(s.present)
    }

    private func cluster(_ t: TOMLTable, into config: inout SwarmConfig, setKeys: inout Set<String>) throws {
        var s = Section(file: path, name: "cluster", table: t)
        let d = config.cluster
        config.cluster.statusTopic = try s.string("status_topic", d.statusTopic)
        config.cluster.publishInterval = try s.seconds("publish_interval", d.publishInterval, min: 0.5)
        config.cluster.staleAfter = try s.seconds("stale_after", d.staleAfter, min: 1)
        if config.cluster.staleAfter < 2 * config.cluster.publishInterval {
            throw s.error("stale_after", "(\(config.cluster.staleAfter) s) must be at least twice publish_interval (\(config.cluster.publishInterval) s): one late record must not make a swarm stale")
        }
        try s.finish()
        setKeys.formUnion(s.present)
    }

    private func autoscale(_ t: TOMLTable, into config: inout SwarmConfig, setKeys: inout Set<String>) throws {
        var s = Section(file: path, name: "autoscale", table: t)
        let d = config.autoscale
        config.autoscale.enabled = try s.bool("enabled", d.enabled)
        config.autoscale.min = try s.int("min", d.min, min: 1, max: SupervisorSettings.maxNodes)
        config.autoscale.max = try s.int("max", d.max, min: 0, max: SupervisorSettings.maxNodes)
        config.autoscale.targetDrainSeconds = try s.seconds("target_drain_seconds", d.targetDrainSeconds, min: 1)
        config.autoscale.cooldownUp = try s.seconds("cooldown_up", d.cooldownUp, min: 0)
        config.autoscale.cooldownDown = try s.seconds("cooldown_down", d.cooldownDown, min: 0)
        if config.autoscale.max > 0 && config.autoscale.min > config.autoscale.max {
            throw s.error("min", "(\(config.autoscale.min)) must not be above max (\(config.autoscale.max))")
        }
        try s.finish()
        setKeys.formUnion(s.present)
    }

    private func embedded(_ t: TOMLTable, into config: inout SwarmConfig, setKeys: inout Set<String>) throws {
        var s = Section(file: path, name: "embedded", table: t)
        let d = config.embedded
        config.embedded.brokers = try s.int("brokers", d.brokers, min: 1, max: 16)
        config.embedded.partitions = try s.int("partitions", d.partitions, min: 1, max: 10_000)
        config.embedded.produceRate = try s.int("produce_rate", d.produceRate, min: 0, max: 10_000_000)
        config.embedded.messageSize = try s.int("message_size", d.messageSize, min: 0, max: 1_000_000)
        try s.finish()
        setKeys.formUnion(s.present)
    }
}

/// One table of the file being read: typed getters that remember which keys
/// were used, so `finish()` can refuse the ones nobody asked for.
struct Section {
    var file: String
    var name: String
    var table: TOMLTable
    var used: Set<String> = []
    /// `section.key` of every key asked for that the file set.
    var present: Set<String> = []

    init(file: String, name: String, table: TOMLTable) {
        self.file = file
        self.name = name
        self.table = table
    }

    func error(_ key: String, _ message: String) -> SwarmError {
        let line = table.line(of: key).map { ":\($0)" } ?? ""
        let where_ = name.isEmpty ? key : "[\(name)] \(key)"
        return SwarmError(.config, "\(file)\(line): \(where_) \(message)")
    }

    mutating func allow(_ keys: [String]) throws {
        for key in table.keys where !keys.contains(key) {
            throw error(key, "is not a known section; expected one of \(keys.map { "[\($0)]" }.joined(separator: ", "))")
        }
    }

    mutating func finish() throws {
        for key in table.keys where !used.contains(key) {
            throw error(key, "is not a known setting (see swarmd.toml(5))")
        }
    }

    mutating func value(_ key: String) -> TOMLValue? {
        used.insert(key)
        if table[key] != nil { present.insert(name.isEmpty ? key : "\(name).\(key)") }
        return table[key]
    }

    mutating func table(_ key: String) throws -> TOMLTable? {
        guard let v = value(key) else { return nil }
        guard case .table(let t) = v else { throw error(key, "must be a table, not \(v.typeName)") }
        return t
    }

    mutating func int(_ key: String, _ def: Int, min: Int, max: Int) throws -> Int {
        guard let v = value(key) else { return def }
        guard case .integer(let i) = v else { throw error(key, "must be an integer, not \(v.typeName)") }
        guard i >= min && i <= max else { throw error(key, "must be between \(min) and \(max), not \(i)") }
        return Int(i)
    }

    mutating func bool(_ key: String, _ def: Bool) throws -> Bool {
        guard let v = value(key) else { return def }
        guard case .boolean(let b) = v else { throw error(key, "must be true or false, not \(v.typeName)") }
        return b
    }

    mutating func seconds(_ key: String, _ def: Double, min: Double) throws -> Double {
        guard let v = value(key) else { return def }
        let d: Double
        switch v {
        case .integer(let i): d = Double(i)
        case .float(let f): d = f
        default: throw error(key, "must be a number of seconds, not \(v.typeName)")
        }
        guard d.isFinite, d >= min, d <= 86_400 * 365 else {
            throw error(key, "must be a number of seconds from \(min) up to a year, not \(d)")
        }
        return d
    }

    mutating func string(_ key: String, _ def: String) throws -> String {
        guard let v = value(key) else { return def }
        guard case .string(let s) = v else { throw error(key, "must be a string, not \(v.typeName)") }
        return s
    }

    mutating func strings(_ key: String, _ def: [String]) throws -> [String] {
        guard let v = value(key) else { return def }
        guard case .array(let items) = v else { throw error(key, "must be an array of strings, not \(v.typeName)") }
        return try items.map {
            guard case .string(let s) = $0 else { throw error(key, "must be an array of strings, but holds \($0.typeName)") }
            return s
        }
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ def: T) throws -> T where T.RawValue == String {
        let raw = try string(key, def.rawValue)
        guard let v = T(rawValue: raw) else {
            throw error(key, "must be one of \(T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), not \"\(raw)\"")
        }
        return v
    }

    /// Bytes, as an integer or a string with a unit: "512MiB", "2G", "100k".
    mutating func bytes(_ key: String, _ def: Int64) throws -> Int64 {
        guard let v = value(key) else { return def }
        switch v {
        case .integer(let i) where i >= 0: return i
        case .string(let s):
            if let b = parseByteSize(s) { return b }
            throw error(key, "\"\(s)\" is not a size; write e.g. \"512MiB\", \"2GiB\" or a number of bytes")
        default:
            throw error(key, "must be a size such as \"512MiB\" or a number of bytes")
        }
    }

    mutating func mode(_ key: String, _ def: UInt32) throws -> UInt32 {
        guard let v = value(key) else { return def }
        guard case .string(let s) = v, let m = UInt32(s, radix: 8), m <= 0o777 else {
            throw error(key, "must be an octal file mode as a string, e.g. \"0660\"")
        }
        return m
    }

    /// A table of librdkafka properties: every value becomes the text
    /// librdkafka receives, and only where that text is exactly what the file
    /// says. A secret may come from a file: `"sasl.password" = { file = "/run/credentials/swarmd/kafka" }`.
    mutating func properties() throws -> [String: String] {
        var out: [String: String] = [:]
        for key in table.keys {
            _ = value(key)
            switch table[key]! {
            case .string(let s): out[key] = s
            case .integer(let i): out[key] = String(i)
            case .boolean(let b): out[key] = b ? "true" : "false"
            case .float:
                throw error(key, "is a floating-point number; librdkafka reads its properties as text, so write it as a string (e.g. \"0.5\") to say exactly what it receives")
            case .table(let t):
                guard t.keys == ["file"], case .string(let file)? = t["file"] else {
                    throw error(key, "takes a string, an integer, a boolean, or { file = \"/path\" } to read the value from a file")
                }
                out[key] = try credential(key, file)
            case let other:
                throw error(key, "must be a string, an integer or a boolean, not \(other.typeName)")
            }
        }
        return out
    }

    /// The value of a property kept in a file of its own (systemd's
    /// `LoadCredential=`): its text without the final newline.
    private func credential(_ key: String, _ file: String) throws -> String {
        let bytes: [UInt8]
        do {
            bytes = try readFileBytes(file)
        } catch let e as SwarmError {
            throw error(key, "cannot read its file \(file): \(e.message)")
        }
        var text = bytes[...]
        if text.last == 0x0A { text = text.dropLast() }
        if text.last == 0x0D { text = text.dropLast() }
        guard let value = String(validating: text, as: UTF8.self) else {
            throw error(key, "its file \(file) is not UTF-8 text")
        }
        guard !value.isEmpty else { throw error(key, "its file \(file) is empty") }
        return value
    }
}

/// Parses "512MiB", "2G", "100k", "1048576" into bytes.
public func parseByteSize(_ text: String) -> Int64? {
    let s = text.trimmingSpaces().lowercased()
    let digits = s.prefix { $0.isNumber || $0 == "." }
    guard let number = Double(digits), number >= 0 else { return nil }
    let unit = s.dropFirst(digits.count).trimmingSpaces()
    let scale: Double
    switch unit {
    case "", "b": scale = 1
    case "k", "kb", "kib": scale = 1024
    case "m", "mb", "mib": scale = 1024 * 1024
    case "g", "gb", "gib": scale = 1024 * 1024 * 1024
    default: return nil
    }
    // Beyond what an Int64 holds is refused, not wrapped or trapped on.
    let bytes = number * scale
    guard bytes < 0x1p63 else { return nil }
    return Int64(bytes)
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
