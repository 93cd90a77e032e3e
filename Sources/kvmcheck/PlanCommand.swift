// `kvmcheck plan SERIES`: which suites cover a patch series, and what nothing covers.
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

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Read a patch series and say which suites cover the uAPI it adds, and what nothing covers.",
        discussion: "Exit status: 0 every added uAPI symbol is covered, 1 some symbol is not, 2 unreadable or malformed input.")

    @Argument(help: "A `git format-patch` directory, an mbox, or a single .patch file.")
    var series: String

    @Option(help: "Directory of series manifests (default: $KVMCHECK_PATCHES, or the patches/ of this checkout).")
    var patches: String?

    func run() throws {
        let input: [(name: String, text: String)]
        do { input = try loadSeries(at: series) } catch { fail("plan: \(error)") }
        var changes: [UAPIChange] = []
        var code = CodeTouched()
        for p in input {
            do {
                changes += try uapiChanges(in: p.text, name: p.name)
                code.formUnion(try codeTouched(in: p.text, name: p.name))
            } catch { fail("plan: \(error)") }
        }
        let located: String?
        do { located = try SeriesManifest.locateDirectory(explicit: patches, executable: selfExecutable()) } catch { fail("plan: \(error)") }
        guard let dir = located else { fail("plan: no patches/ directory found (use --patches DIR)") }
        let known = SuiteRegistry.all().map(\.name)
        let manifests: [SeriesManifest]
        do {
            manifests = try SeriesManifest.loadAll(from: dir)
            for m in manifests { try m.checkSuites(known: known) }
        } catch { fail("malformed series manifest: \(error)") }
        let plan = SeriesPlan(changes: changes, manifests: manifests, code: code, knownSuites: known)
        emit("series: \(input.count) patch(es) from \(TextInput.displayName(series))")
        if plan.changes.isEmpty {
            emit("no uAPI added or changed (no KVM_* #define or struct field in include/uapi, no api.rst section)")
        } else {
            emit("uAPI added or changed:")
            let width = plan.changes.map(\.symbol.count).max() ?? 0
            for c in plan.changes { emit("  \(c.symbol.padded(to: width))  \(c.kind.rawValue) in \(c.file) (\(c.patch))") }
        }
        if !plan.covered.isEmpty {
            emit("covered:")
            for (m, symbols) in plan.covered {
                wrapped("patches/\(m.series).md [\(m.status)] suites \(m.suites.joined(separator: ", ")): \(symbols.joined(separator: ", "))",
                        first: "  ", indent: "      ").forEach(emit)
            }
        }
        if !plan.touching.isEmpty {
            emit("kernel code named by manifests:")
            for (m, entries) in plan.touching {
                wrapped("patches/\(m.series).md [\(m.status)] suites \(m.suites.joined(separator: ", ")): \(entries.joined(separator: ", "))",
                        first: "  ", indent: "      ").forEach(emit)
            }
        }
        if !plan.changes.isEmpty {
            if plan.uncovered.isEmpty {
                emit("every symbol is covered")
            } else {
                emit("not covered by any suite:")
                for c in plan.uncovered { emit("  \(c.symbol)") }
            }
        }
        if !plan.suites.isEmpty { emit("run: kvmcheck run --suite \(plan.suites.joined(separator: ","))") }
        if !plan.uncovered.isEmpty { throw ExitCode(1) }
    }
}
