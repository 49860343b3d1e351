import Shared
@testable import SwarmdKit
import XCTest

/// The control decisions the shell makes without I/O, driven directly.
final class ControlPolicyTests: XCTestCase {
    func testAReadOnlyPeerMayLookButNotAct() {
        for command in ControlCommand.allCases.map(\.rawValue) + ["no-such-command"] {
            let refusal = ControlPolicy.refusal(of: command, access: .read, uid: 1000)
            if command == "status" || command == "metrics" {
                XCTAssertNil(refusal, command)
            } else {
                XCTAssertEqual(refusal?.code, ControlErrorCode.permissionDenied.rawValue, command)
                XCTAssertTrue(refusal?.message.contains("uid 1000 may only use status and metrics") == true, refusal?.message ?? "")
            }
            XCTAssertNil(ControlPolicy.refusal(of: command, access: .full, uid: 0), "a full peer: \(command)")
        }
        let long = String(repeating: "x", count: 10_000)
        XCTAssertLessThan(ControlPolicy.refusal(of: long, access: .read, uid: 1)!.message.count, 300, "a command name is quoted cut")
    }

    func testAReloadMayNotSwitchTheEmbeddedBrokerOnOrOffAndDefersTheClusterLink() {
        let embedded = SwarmConfig()
        XCTAssertTrue(embedded.usesEmbeddedBroker)
        var external = embedded
        external.kafka.properties["bootstrap.servers"] = "kafka-1:9092"
        XCTAssertEqual(ControlPolicy.reloadRefusal(running: embedded, next: external)?.message,
                       "switching the embedded broker on or off needs a restart of swarmd")
        XCTAssertNotNil(ControlPolicy.reloadRefusal(running: external, next: embedded))
        var moreNodes = external
        moreNodes.supervisor.nodes = 9
        XCTAssertNil(ControlPolicy.reloadRefusal(running: external, next: moreNodes))
        XCTAssertNil(ControlPolicy.reloadDeferred(running: external, next: moreNodes))
        var linked = external
        linked.cluster.statusTopic = "swarm.status"
        XCTAssertEqual(ControlPolicy.reloadDeferred(running: external, next: linked)?.hasPrefix("[cluster] changed"), true)
    }

    func testAnUpgradeIsRefusedWhileStoppingWhileAnotherIsUnderWayAndWithTheEmbeddedBroker() {
        XCTAssertNil(ControlPolicy.upgradeRefusal(stopping: false, upgradePending: false, embeddedBroker: false))
        XCTAssertEqual(ControlPolicy.upgradeRefusal(stopping: true, upgradePending: true, embeddedBroker: true)?.code,
                       ControlErrorCode.shuttingDown.rawValue, "stopping comes first")
        XCTAssertEqual(ControlPolicy.upgradeRefusal(stopping: false, upgradePending: true, embeddedBroker: false)?.code,
                       ControlErrorCode.busy.rawValue)
        let broker = ControlPolicy.upgradeRefusal(stopping: false, upgradePending: false, embeddedBroker: true)
        XCTAssertEqual(broker?.code, ControlErrorCode.badArgument.rawValue)
        XCTAssertTrue(broker?.message.contains("embedded development broker") == true)
    }
}
