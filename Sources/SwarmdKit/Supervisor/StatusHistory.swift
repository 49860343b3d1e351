import Shared

/// The last 15 minutes of each slot's messages/s and lag, for the web page's
/// charts: one sample every 5 s, 180 per slot, in fixed rings of Float
/// (1.4 KB a slot, 92 KB for 64 slots). Kept only while `[http]` is on;
/// sampled from the status swarmd already has, so it costs no read of its own.
struct StatusHistory {
    static let interval = 5.0
    static let length = 180

    struct Ring {
        var rate = [Float](repeating: .nan, count: StatusHistory.length)
        var lag = [Float](repeating: .nan, count: StatusHistory.length)
    }

    private(set) var rings: [Int: Ring] = [:]
    /// Index of the next sample to write (the same for every ring).
    private(set) var next = 0
    private(set) var lastAt = -Double.infinity

    /// Records one sample per slot if `interval` has passed; slots gone are forgotten.
    mutating func record(_ status: SwarmStatus, now: Double) {
        guard now - lastAt >= Self.interval else { return }
        lastAt = now
        let present = Set(status.nodes.map(\.slot))
        rings = rings.filter { present.contains($0.key) }
        for n in status.nodes {
            var ring = rings[n.slot] ?? Ring()
            ring.rate[next] = Float(n.rate)
            ring.lag[next] = n.lag.map(Float.init) ?? .nan
            rings[n.slot] = ring
        }
        next = (next + 1) % Self.length
    }

    /// `{"interval_s":5,"slots":{"0":{"rate":[…],"lag":[…]}}}`, oldest first, null for no sample.
    func json() -> String {
        func series(_ values: [Float]) -> String {
            let ordered = values[next...] + values[..<next]
            return "[" + ordered.map { $0.isNaN ? "null" : "\(($0 * 10).rounded() / 10)" }.joined(separator: ",") + "]"
        }
        let slots = rings.keys.sorted().map { "\"\($0)\":{\"rate\":\(series(rings[$0]!.rate)),\"lag\":\(series(rings[$0]!.lag))}" }
        return "{\"interval_s\":\(Int(saturating: Self.interval)),\"slots\":{\(slots.joined(separator: ","))}}"
    }
}
