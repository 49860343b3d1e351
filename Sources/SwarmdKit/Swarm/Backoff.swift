/// Restart delays for a node that keeps failing: the first failure restarts
/// at once (most crashes are one-offs), then 0.5 s, 1 s, 2 s … up to the cap,
/// so a node that dies at start-up costs the machine almost nothing.
struct Backoff {
    let cap: Double

    /// The delay before the restart that follows the `failures`-th quick failure in a row.
    func delay(afterFailures failures: Int) -> Double {
        guard failures > 1 else { return 0 }
        let exponent = min(failures - 2, 30)
        return min(cap, 0.5 * Double(1 << exponent))
    }
}
