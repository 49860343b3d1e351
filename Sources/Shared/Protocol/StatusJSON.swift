/// The status response written straight to bytes, keys already in sorted
/// order, with exactly what the Codable path writes (a test compares them).
///
/// Why: with 256 nodes, encoding the status through Codable into a tree of
/// `JSONValue`s and sorting every object's keys again was most of what a
/// `swarmctl status` cost swarmd (BENCHMARKS.md, large swarms).
public enum StatusJSON {
    static func line(_ response: ControlResponse, _ status: SwarmStatus) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(300 + status.nodes.count * 320)
        var w = Writer(out: out)
        w.open()
        if let m = response.message { w.key("message"); w.string(m) }
        w.key("ok"); w.raw(response.ok ? "true" : "false")
        w.key("status"); write(status, &w)
        w.key("v"); w.raw(String(response.v))
        w.close()
        w.out.append(UInt8(ascii: "\n"))
        return w.out
    }

    /// The status object alone, as `GET /status.json` serves it.
    public static func document(_ status: SwarmStatus) -> [UInt8] {
        var w = Writer(out: [])
        write(status, &w)
        return w.out
    }

    private static func write(_ s: SwarmStatus, _ w: inout Writer) {
        w.open()
        if let a = s.autoscale {
            w.key("autoscale"); w.open()
            w.key("active"); w.raw(a.active ? "true" : "false")
            if let d = a.lastDecision { w.key("last_decision"); w.string(d) }
            w.key("max"); w.raw(String(a.max))
            w.key("min"); w.raw(String(a.min))
            w.key("next_change_in_s"); w.raw(a.nextChangeInS.description)
            if let r = a.reason { w.key("reason"); w.string(r) }
            w.close()
        }
        if let c = s.client { w.key("client"); w.string(c) }
        if let c = s.cluster, let json = try? ControlProtocol.encoder.encode(c) {
            // Small (a few swarms), and only with [cluster]: the Codable path, sorted keys as everywhere.
            w.key("cluster"); w.raw(json.text)
        }
        if let c = s.config { w.key("config"); w.string(c) }
        w.key("failed"); w.raw(String(s.failed))
        w.key("handled"); w.raw(String(s.handled))
        w.key("healthy"); w.raw(String(s.healthy))
        w.key("malformed_reports"); w.raw(String(s.malformedReports))
        w.key("nodes"); w.openArray()
        for n in s.nodes { w.element(); write(n, &w) }
        w.closeArray()
        w.key("pid"); w.raw(String(s.pid))
        w.key("rate"); w.raw(s.rate.description)
        w.key("restarts"); w.raw(String(s.restarts))
        w.key("running"); w.raw(String(s.running))
        w.key("state"); w.string(s.state.rawValue)
        if let lags = s.unownedLag { w.key("unowned_lag"); write(lags, &w) }
        if let u = s.upgrades { w.key("upgrades"); w.raw(String(u)) }
        w.key("uptime_s"); w.raw(s.uptimeS.description)
        if let v = s.version { w.key("version"); w.string(v) }
        w.key("wanted"); w.raw(String(s.wanted))
        w.close()
    }

    private static func write(_ lags: [PartitionLag], _ w: inout Writer) {
        w.openArray()
        for l in lags {
            w.element(); w.open()
            w.key("lag"); w.raw(String(l.lag))
            w.key("partition"); w.raw(String(l.partition))
            w.key("topic"); w.string(l.topic)
            w.close()
        }
        w.closeArray()
    }

    private static func write(_ n: NodeStatus, _ w: inout Writer) {
        w.open()
        if let c = n.client { w.key("client"); w.string(c) }
        w.key("failed"); w.raw(String(n.failed))
        if let g = n.groupProtocol { w.key("group_protocol"); w.string(g) }
        w.key("handled"); w.raw(String(n.handled))
        w.key("health"); w.string(n.health.rawValue)
        if let k = n.kafka { w.key("kafka"); w.string(k) }
        if let l = n.lag { w.key("lag"); w.raw(String(l)) }
        if let e = n.lastExit { w.key("last_exit"); w.string(e) }
        if let lags = n.partitionLag { w.key("partition_lag"); write(lags, &w) }
        w.key("partitions"); w.raw(String(n.partitions))
        if let p = n.pid { w.key("pid"); w.raw(String(p)) }
        if let procs = n.processes {
            w.key("processes"); w.openArray()
            for p in procs {
                w.element(); w.open()
                w.key("name"); w.string(p.name)
                w.key("pid"); w.raw(String(p.pid))
                if let pss = p.pssBytes { w.key("pss_bytes"); w.raw(String(pss)) }
                w.key("rss_bytes"); w.raw(String(p.rssBytes))
                w.close()
            }
            w.closeArray()
        }
        if let p = n.pssBytes { w.key("pss_bytes"); w.raw(String(p)) }
        w.key("rate"); w.raw(n.rate.description)
        if let r = n.reason { w.key("reason"); w.string(r) }
        if let a = n.reportAgeMs { w.key("report_age_ms"); w.raw(String(a)) }
        w.key("restarts"); w.raw(String(n.restarts))
        if let r = n.rssBytes { w.key("rss_bytes"); w.raw(String(r)) }
        w.key("slot"); w.raw(String(n.slot))
        w.key("state"); w.string(n.state.rawValue)
        w.key("uptime_s"); w.raw(n.uptimeS.description)
        w.close()
    }

    /// Commas between members and elements; strings escaped as `JSONValue` does.
    private struct Writer {
        var out: [UInt8]
        var first = true

        mutating func open() { out.append(UInt8(ascii: "{")); first = true }
        mutating func close() { out.append(UInt8(ascii: "}")); first = false }
        mutating func openArray() { out.append(UInt8(ascii: "[")); first = true }
        mutating func closeArray() { out.append(UInt8(ascii: "]")); first = false }
        mutating func element() {
            if !first { out.append(UInt8(ascii: ",")) }
            first = true
        }
        mutating func key(_ k: String) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONValue.writeString(k, into: &out)
            out.append(UInt8(ascii: ":"))
        }
        mutating func raw(_ text: String) { out += text.utf8 }
        mutating func string(_ s: String) { JSONValue.writeString(s, into: &out) }
    }
}
