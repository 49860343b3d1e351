import Foundation
import Shared
import XCTest

/// swarmd's sd_notify messages, received on a NOTIFY_SOCKET of the test's own.
final class SystemdNotifyTests: XCTestCase {
    final class NotifySocket {
        let path: String
        let fd: Int32
        private(set) var messages: [(time: Date, text: String)] = []

        init(dir: URL) {
            path = dir.appendingPathComponent("notify.sock").path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                let bytes = Array(path.utf8)
                precondition(bytes.count < raw.count, "socket path too long")
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            precondition(fd >= 0 && rc == 0, "cannot bind \(path)")
        }

        deinit { close(fd) }

        /// Reads whatever has arrived.
        func collect() {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                guard n > 0 else { return }
                for line in String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n") {
                    messages.append((Date(), String(line)))
                }
            }
        }

        func first(_ prefix: String) -> Date? { messages.first { $0.text.hasPrefix(prefix) }?.time }
        func count(_ prefix: String) -> Int { messages.filter { $0.text.hasPrefix(prefix) }.count }
    }

    func testReadyOnlyAfterEveryNodeReportedThenWatchdogPingsThatStopWhenTheLoopIsFrozen() throws {
        let dir = makeTempDir()
        let notify = NotifySocket(dir: dir)
        let started = Date()
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 2),
                                         environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "300000",
                                                       "TEST_NODE_MODE": "slowstart"])
        eventually("READY=1") { notify.collect(); return notify.first("READY=1") != nil }
        let ready = try XCTUnwrap(notify.first("READY=1"))
        XCTAssertGreaterThan(ready.timeIntervalSince(started), 1.4, "READY=1 came before the nodes' first reports (they wait 1.5 s)")
        XCTAssertEqual(swarmd.logCount("first healthy report"), 2)
        XCTAssertNotNil(notify.first("WATCHDOG=1"), "pings start before READY, from the loop")
        eventually("a STATUS line with both nodes") {
            notify.collect()
            return notify.messages.contains { $0.text.hasPrefix("STATUS=2/2 nodes consuming") }
        }

        // Nodes must not be able to speak for swarmd.
        let nodePid = try XCTUnwrap(swarmd.nodePids().first)
        let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(nodePid)/environ"))
        XCTAssertFalse(String(decoding: environ, as: UTF8.self).contains("NOTIFY_SOCKET"))

        // Freeze the loop: the pings must stop, so that systemd's watchdog fires.
        swarmd.signal(SIGSTOP)
        usleep(200_000)  // let a ping that was already in flight land
        notify.collect()
        let before = notify.count("WATCHDOG=1")
        let window = Date().addingTimeInterval(1.0)
        while Date() < window { notify.collect(); usleep(50_000) }
        XCTAssertEqual(notify.count("WATCHDOG=1"), before, "a frozen loop sent watchdog pings")
        swarmd.signal(SIGCONT)
        eventually("pings to resume") { notify.collect(); return notify.count("WATCHDOG=1") > before }

        swarmd.signal(SIGTERM)
        XCTAssertEqual(swarmd.waitForExit(), 0)
        notify.collect()
        XCTAssertNotNil(notify.first("STOPPING=1"))
    }

    func testReloadIsAnnouncedAsReloadingThenReady() throws {
        let dir = makeTempDir()
        let notify = NotifySocket(dir: dir)
        let swarmd = try SwarmdUnderTest(config: testNodeConfig(nodes: 1), environment: ["NOTIFY_SOCKET": notify.path])
        eventually("READY=1") { notify.collect(); return notify.first("READY=1") != nil }
        swarmd.signal(SIGHUP)
        swarmd.waitForLog("configuration reloaded: unchanged, nothing to do")
        notify.collect()
        XCTAssertEqual(notify.count("RELOADING=1"), 0, "an unchanged file is no reload for systemd either")
        try testNodeConfig(nodes: 1, extra: "report_interval = 0.3").write(toFile: swarmd.configPath, atomically: true, encoding: .utf8)
        swarmd.signal(SIGHUP)
        eventually("RELOADING=1 then READY=1") {
            notify.collect()
            return notify.count("RELOADING=1") == 1 && notify.count("READY=1") == 2
        }
    }
}
