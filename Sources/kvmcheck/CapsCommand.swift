// `kvmcheck caps`: one row per uAPI and CPL, decided by the checks whose subject it is.
import ArgumentParser
import CheckKit
import CProcess
import CKVM
import FoundationEssentials
import Glibc
import GuestKit
import KVMKit
import Suites

struct Caps: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Table of each uAPI of the series: advertised by its cap, observed by a probe, and the verdict.")

    @OptionGroup var device: DeviceOptions

    func run() throws {
        let settings = try device.resolvedSettings()
        let host = HostInfo.current()
        emit("kernel \(host.kernelRelease), KVM flavour \(host.kvmFlavour), CPU vendor \(host.cpuVendor)")
        let system: KVMSystem
        switch openKVM(device.device) {
        case .success(let opened): system = opened.0; emit("KVM API version \(opened.1)")
        case .failure(let reason): emit(reason.description); finish(4)
        }
        if let doubles = activateKernelDoubles(settings) { emit(doubles) }
        let rows = SuiteRegistry.all().flatMap { suite in suite.features.map { (suite.name, $0) } }
        // One row per uAPI and level, decided by the checks whose subject it is (run in-process
        // with their preconditions); "decided by" names the check, so the row can be reproduced.
        var table = [["uAPI", "CPL", "advertised by", "cap", "status", "decided by", "suite", "detail"]]
        for (suite, feature) in rows {
            let advertised = feature.advertised(system, settings)
            let cap = advertised.map { $0 ? "yes" : "no" } ?? "n/a"
            for row in feature.rows(system: system, settings: settings) {
                table.append([feature.name, row.level.map { "\($0.rawValue)" } ?? "-", feature.advertisement, cap,
                              row.status.rawValue, row.decidedBy, suite, row.detail])
            }
        }
        let widths = (0..<table[0].count).map { c in table.map { $0[c].count }.max() ?? 0 }
        for row in table {
            emit(row.enumerated().map { c, cell in c == row.count - 1 ? cell : cell.padding(to: widths[c]) }
                .joined(separator: "  "))
        }
    }
}
