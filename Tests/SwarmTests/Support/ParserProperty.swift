import Foundation
import Shared
@testable import SwarmdKit

/// A parser of untrusted bytes, inputs that look like what it is meant to
/// read, and what must hold for any input at all: nothing traps, and what is
/// accepted is within the documented ranges. `ParserFuzzTests` runs each
/// with seeded mutations; the libFuzzer target (`scripts/fuzz NAME`, Fuzz/)
/// runs the same property on coverage-guided input for as long as asked.
struct ParserProperty {
    let name: String
    /// How many mutated inputs the default suite tries (times `SWARM_FUZZ_SCALE`).
    let runs: Int
    let seeds: [[UInt8]]
    let dictionary: [[UInt8]]
    let check: ([UInt8]) throws -> Void

    init(name: String, runs: Int, seeds: [[UInt8]], dictionary: [[UInt8]] = [], _ check: @escaping ([UInt8]) throws -> Void) {
        self.name = name
        self.runs = runs
        self.seeds = seeds
        self.dictionary = dictionary
        self.check = check
    }

    static func report() -> ParserProperty {
        var r = NodeReport()
        r.kafka = .consuming
        r.handled = 12; r.lag = 40; r.holds = 2
        r.partitionLag = [TopicPartition(topic: "events", partition: 0): 40, TopicPartition(topic: "e.v-1", partition: 3): -1]
        r.batchBuckets = Array(repeating: 1, count: NodeReport.batchBucketsMs.count + 1)
        r.stuck = [TopicPartition(topic: "events", partition: 3)]
        let valid = Array(r.encoded().utf8.dropLast())
        let words = ["v=1", "handled=9007199254740992", "handled=9007199254740993", "lag=-1", "lag=-2", "=", ",", ":", "/",
                     "partition_lag=", "-9223372036854775808", "99999999999999999999", "stuck=a/", "batch_ms=", "reason=",
                     "kafka=idle", "health=unhealthy", " "].map { Array($0.utf8) }
        return ParserProperty(name: "NodeReport.parse", runs: 20_000, seeds: [valid, Array("v=1".utf8)], dictionary: words) { bytes in
            guard let report = try? NodeReport.parse(bytes) else { return }
            let counts = [report.handled, report.failed, report.inflight, report.inflightAgeMs, report.partitions, report.pollAgeMs,
                          report.retried, report.deadLettered, report.rebalances, report.holds, report.batchSumMs] + report.batchBuckets
            guard counts.allSatisfy({ (0...NodeReport.maxCount).contains($0) }), (-1...NodeReport.maxCount).contains(report.lag),
                  report.partitionLag.values.allSatisfy({ (-1...NodeReport.maxCount).contains($0) }),
                  report.partitionLag.keys.allSatisfy({ $0.partition >= 0 }), report.stuck.allSatisfy({ $0.partition >= 0 }) else {
                throw FuzzFailure("accepted an out-of-range value: \(report)")
            }
            // What swarmd accepted, it can say again: the wire form reads back the same.
            guard let again = try? NodeReport.parse(Array(report.encoded().utf8.dropLast())), again.handled == report.handled,
                  again.lag == report.lag, again.partitionLag.count == min(report.partitionLag.count, 200) else {
                throw FuzzFailure("an accepted report does not read back: \(report.encoded())")
            }
        }
    }

    static func control() throws -> ParserProperty {
        let config = try ConfigLoader(path: "fuzz.toml").parse("[supervisor]\nnodes = 2\n[kafka.properties]\n\"bootstrap.servers\" = \"embedded\"\n")
        var swarm = Swarm(config: config, pid: 1, now: 0)
        _ = swarm.handle(.start, now: 0)
        let lines = [#"{"v":1,"cmd":"status"}"#, #"{"v":1,"cmd":"scale","nodes":3}"#, #"{"v":1,"cmd":"scale","delta":-1}"#,
                     #"{"v":1,"cmd":"drain","slots":[0,1]}"#, #"{"v":1,"cmd":"resume"}"#, #"{"v":1,"cmd":"restart","slots":[1]}"#,
                     #"{"v":1,"cmd":"upgrade","binary":"/usr/sbin/swarmd"}"#, #"{"v":1,"cmd":"autoscale","on":true}"#,
                     #"{"v":1,"cmd":"stop","now":false}"#].map { Array($0.utf8) }
        let words = ["9223372036854775807", "-9223372036854775808", "1e999", "-0", "null", "[]", "{}", "\"", "\\u0000",
                     "\"delta\":", "\"nodes\":", "\"slots\":[", "\"v\":2"].map { Array($0.utf8) }
        return ParserProperty(name: "control request", runs: 6000, seeds: lines, dictionary: words) { bytes in
            guard let request = try? ControlProtocol.decoder.decode(ControlRequest.self, from: bytes) else { return }
            guard case .success(.command(let command)) = ControlMapping.command(for: request) else { return }
            if case .stop = command { return }  // keep the swarm running for the next input
            _ = swarm.handle(.command(command, from: .control(uid: 0, pid: 1)), now: 1)
            guard swarm.wanted >= 1 && swarm.wanted <= SupervisorSettings.maxNodes else {
                throw FuzzFailure("wanted \(swarm.wanted) after \(command)")
            }
        }
    }

    static func http() -> ParserProperty {
        let heads = ["GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD /readyz?x=1 HTTP/1.0\r\n\r\n", "GET / HTTP/1.1\r\n\r\n"].map { Array($0.utf8) }
        let words = ["\r\n", "\r\n\r\n", " ", "POST", "HTTP/1.", "%00", "?", "\u{FF}"].map { Array($0.utf8) }
        return ParserProperty(name: "HTTPServer.parse", runs: 6000, seeds: heads, dictionary: words) { bytes in
            switch HTTPServer.parse(bytes) {
            case .incomplete:
                guard bytes.count <= HTTPServer.maxHeadBytes else { throw FuzzFailure("an oversized head is still incomplete") }
            case .bad(let status, _):
                guard [400, 405, 431].contains(status) else { throw FuzzFailure("status \(status)") }
            case .request(let r):
                guard r.method == "GET" || r.method == "HEAD", r.path.hasPrefix("/") else { throw FuzzFailure("accepted \(r)") }
            }
        }
    }

    static func exec() -> ParserProperty {
        let answers = ["ok", "ok 12", "fail", "fail bad json", "defer", "defer 3", ""].map { Array($0.utf8) }
        let words = ["ok ", "defer ", "9223372036854775807", "999999999", "0", "-1", "+1", "\u{0}"].map { Array($0.utf8) }
        return ParserProperty(name: "ExecAnswer.parse", runs: 8000, seeds: answers, dictionary: words) { bytes in
            guard let answer = ExecAnswer.parse(bytes) else { return }
            switch answer {
            case .ok(let n), .deferred(let n):
                guard (1...999_999_999).contains(n) else { throw FuzzFailure("count \(n) from \(bytes)") }
            case .fail(let reason):
                guard reason.utf8.count <= 500 * 4 else { throw FuzzFailure("reason of \(reason.utf8.count) bytes") }
            case .blank:
                guard bytes.isEmpty else { throw FuzzFailure("blank from \(bytes)") }
            }
        }
    }

    static func cluster() throws -> ParserProperty {
        let node = ClusterRecord.Node(slot: 0, pid: 100, state: "running", health: "ok", rate: 10, lag: 5,
                                      partitions: [PartitionLag(topic: "events", partition: 0, lag: 5)])
        let record = ClusterRecord(prefix: "h1", host: "h1", group: "g", pid: 42, version: "0.3.0", at: 1, interval: 1, state: "running",
                                   wanted: 1, running: 1, healthy: 1, rate: 20, lag: 10, nodes: [node, node])
        let valid = try record.encoded()
        let words = ["1e308", "-1e308", "9223372036854775807", "-9223372036854775808", "NaN", "\"lag\":", "\"rate\":", "[", "]"].map { Array($0.utf8) }
        return ParserProperty(name: "ClusterRecord.decode", runs: 4000, seeds: [valid], dictionary: words) { bytes in
            _ = try? JSONValue.parse(bytes)
            guard let r = ClusterRecord.decode(bytes) else { return }
            // What the cluster view does with any record must not trap either.
            let view = ClusterView(group: "g", records: [r, record], topics: ["events": 4], now: 2, staleAfter: 4)
            _ = view.render()
        }
    }

    static func config(demo: [UInt8]) -> ParserProperty {
        let small = Array("[supervisor]\nnodes = 3\nmemory_limit = \"1GiB\"\n[kafka]\ntopics = [\"a\"]\n[kafka.properties]\n\"bootstrap.servers\" = \"embedded\"\n".utf8)
        let words = ["=", "[", "]", "\"", "'''", "\"\"\"", "\n", "1e999", "inf", "nan", "0x", "99999999999999999999", "99999999999999999999G",
                     "{", "}", ",", ".", "[[a]]", "nodes = ", "kill_timeout = "].map { Array($0.utf8) }
        return ParserProperty(name: "ConfigLoader.parse", runs: 3000, seeds: [demo, small], dictionary: words) { bytes in
            _ = try? TOMLParser.parse(bytes: bytes)
            _ = try? ConfigLoader(path: "fuzz.toml").parse(bytes: bytes)
        }
    }
}
