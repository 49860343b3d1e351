/// `swarmctl scale` and TTIN/TTOU: an absolute size or a change of it.
public enum ScaleTarget: Equatable, Sendable {
    case absolute(Int)
    case relative(Int)

    /// "12", "+2", "-1".
    public init?(_ text: String) {
        if text.hasPrefix("+") || text.hasPrefix("-") {
            guard let first = text.dropFirst().first, first.isASCII, first.isNumber, let d = Int(text.dropFirst()) else { return nil }
            self = .relative(text.hasPrefix("-") ? -d : d)
        } else {
            guard let n = Int(text) else { return nil }
            self = .absolute(n)
        }
    }

    /// The size this asks for, from the current one.
    public func size(from current: Int) -> Int {
        switch self {
        case .absolute(let n): return n
        case .relative(let d): return current.addingSaturating(d)  // near Int.max: refused by the size check, not trapped on
        }
    }
}
