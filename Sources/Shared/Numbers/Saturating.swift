/// Conversions from measured `Double`s that cannot trap.
///
/// The rule: every integer swarm derives from a measurement (a rate, a
/// duration, an ETA, memory, lag, a timeout from the configuration) goes
/// through `init(saturating:)`, never `Int(_:)`. Swift's `Int(Double)` traps
/// on NaN, on infinities and beyond the type's range, and a trap in swarmd
/// takes every node with it: an autoscaler log line once formatted a drain
/// time of lag / 0 msg/s and killed the supervisor (issue #27). Here NaN is
/// 0 and anything out of range is the nearest bound; like `Int(_:)`, the
/// fraction is dropped (round first where the nearest integer is wanted).
extension FixedWidthInteger {
    @inlinable
    public init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value <= Double(Self.min) {
            self = Self.min
        } else if value >= Double(Self.max) {
            // Double(Int64.max) rounds up to 2^63, which Int64 cannot hold.
            self = Self.max
        } else {
            self = Self(value)
        }
    }
}

extension Double {
    /// Seconds as whole milliseconds, saturating (see `init(saturating:)`).
    @inlinable
    public var milliseconds: Int64 { Int64(saturating: (self * 1000).rounded()) }
}

extension FixedWidthInteger {
    /// `self + other`, or the nearest bound where that would overflow. For
    /// counters that add up what nodes report across restarts and slots:
    /// each report is range-checked, but their totals over a long life are
    /// not bounded by any one of them.
    @inlinable
    public func addingSaturating(_ other: Self) -> Self {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}
