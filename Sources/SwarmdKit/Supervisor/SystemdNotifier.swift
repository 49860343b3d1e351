#if canImport(Glibc)
import Glibc
#endif
import CSystemd
import Shared

/// systemd's notify protocol through libsystemd's `sd_notify`. Every call is a
/// no-op when `NOTIFY_SOCKET` is not set, so swarmd behaves the same outside
/// systemd.
struct SystemdNotifier {
    /// Half of `WATCHDOG_USEC`, in seconds, when systemd wants keep-alives.
    let watchdogInterval: Double?
    /// True under systemd (or anything else that set `NOTIFY_SOCKET`).
    let isActive: Bool
    private var lastStatus = ""

    init() {
        isActive = getenv("NOTIFY_SOCKET") != nil
        var usec: UInt64 = 0
        if sd_watchdog_enabled(0, &usec) > 0, usec > 0 {
            watchdogInterval = Double(usec) / 1e6 / 2
        } else {
            watchdogInterval = nil
        }
    }

    func ready() { send("READY=1") }
    func reloading() { send("RELOADING=1") }
    func stopping() { send("STOPPING=1") }
    /// Sent from the event loop only, so that a frozen loop stops the pings.
    func watchdog() { send("WATCHDOG=1") }

    /// Updates the one-line STATUS shown by `systemctl status`, when it changed.
    mutating func status(_ text: String) {
        guard text != lastStatus else { return }
        lastStatus = text
        send("STATUS=\(text)")
    }

    private func send(_ message: String) {
        _ = sd_notify(0, message)
    }
}
