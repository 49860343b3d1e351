/// Splits a byte stream into lines with a hard length limit, for the report
/// pipes and the control socket. A peer that sends an endless line gets an
/// `overflow` instead of growing our memory.
public struct LineBuffer {
    public enum Item: Equatable {
        case line([UInt8])
        case overflow
    }

    public let limit: Int
    private var pending: [UInt8] = []
    private var discarding = false

    public init(limit: Int) { self.limit = limit }

    public var isEmpty: Bool { pending.isEmpty }

    /// Feeds bytes, returning every complete line (without its newline).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [Item] {
        var out: [Item] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if discarding {
                    discarding = false
                } else {
                    if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
                    out.append(.line(pending))
                }
                pending.removeAll(keepingCapacity: true)
            } else if !discarding {
                if pending.count >= limit {
                    out.append(.overflow)
                    pending.removeAll()
                    discarding = true
                } else {
                    pending.append(byte)
                }
            }
        }
        return out
    }

    public mutating func feed(_ bytes: [UInt8]) -> [Item] {
        bytes.withUnsafeBytes { feed($0) }
    }
}
