// `kvmcheck caps`: one row per uAPI and CPL, decided by the checks whose subject it is.
import ArgumentParser
import CheckKit
import Reporting
import SeriesPlan
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

    @Option(help: "text (default: the verdict first, wrapped to 120 columns) or json.")
    var format: ListingFormat = .text

    func run() throws {
        let settings = try device.resolvedSettings()
        let host = HostInfo.current()
        var header = ["kernel \(host.kernelRelease), KVM flavour \(host.kvmFlavour), CPU vendor \(host.cpuVendor)"]
        let system: KVMSystem
        switch openKVM(device.device) {
        case .success(let opened): system = opened.0; header.append("KVM API version \(opened.1)")
        case .failure(let reason):
            if format == .json { try emitJSON(["notes": header + [reason.description]]) } else { (header + [reason.description]).forEach(emit) }
            finish(4)
        }
        if let doubles = activateKernelDoubles(settings) { header.append(doubles) }
        header += settings.proposedCapabilities.notes
        if format == .text { header.forEach(emit) }
        let features = SuiteRegistry.all().flatMap { suite in suite.features.map { (suite.name, $0) } }
        // One row per uAPI and level, decided by the checks whose subject it is (run in-process
        // with their preconditions); "decided by" names the check, so the row can be reproduced.
        struct Row: Encodable {
            let uapi, advertisedBy, cap, status, decidedBy, suite, detail: String
            let cpl: Int?
        }
        var rows: [Row] = []
        for (suite, feature) in features {
            let advertised = feature.advertised(system, settings)
            let cap = advertised.map { $0 ? "yes" : "no" } ?? "n/a"
            for row in feature.rows(system: system, settings: settings) {
                rows.append(Row(uapi: feature.name, advertisedBy: feature.advertisement, cap: cap, status: row.status.rawValue,
                                decidedBy: row.decidedBy, suite: suite, detail: row.detail, cpl: row.level.map { Int($0.rawValue) }))
            }
        }
        struct Document: Encodable { let notes: [String]; let rows: [Row] }
        if format == .json { return try emitJSON(Document(notes: header, rows: rows)) }
        // Verdict first, then what decided it, wrapped to fit a terminal.
        let statusWidth = rows.map(\.status.count).max() ?? 0
        for r in rows {
            let level = r.cpl.map { "CPL\($0)" } ?? "-"
            emit(r.status.padded(to: statusWidth) + "  \(r.uapi)  \(level)  [\(r.suite)]")
            wrapped("\(r.cap) (\(r.advertisedBy))", first: "    advertised: ", indent: "      ").forEach(emit)
            wrapped(r.decidedBy, first: "    decided by: ", indent: "      ").forEach(emit)
            if !r.detail.isEmpty { wrapped(r.detail, first: "    ", indent: "      ").forEach(emit) }
        }
    }
}
