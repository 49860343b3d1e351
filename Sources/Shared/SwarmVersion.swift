#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux

/// swarm's version, and which build of it is running.
public enum SwarmVersion {
    /// The package's version where a package build stamped one in
    /// (debian/rules; `dpkg -l swarmd` shows the same), else the source's.
    public static let number: String = swarm_package_version().map { String(cString: $0) } ?? source

    /// The version of this source tree; debian/changelog's top entry matches
    /// it (PackageTests checks the two agree).
    public static let source = "0.3.0"

    /// "0.3.0 (build 2026-11-28 05:20:01 UTC)": the build is the executable
    /// file's modification time, so two builds (or a copied binary) of one
    /// version can be told apart, as `swarmctl upgrade` prints them.
    public static func describe() -> String {
        var st = stat()
        guard stat("/proc/self/exe", &st) == 0 else { return number }
        var t = time_t(st.st_mtim.tv_sec)
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(number) (build \(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday)) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) UTC)"
    }
}
