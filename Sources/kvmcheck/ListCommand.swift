// `kvmcheck list`: suites, checks, the uAPI each exercises, and (with --mutants) their killers.
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

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List suites, checks and the uAPI each exercises.")

    @OptionGroup var selectionOptions: SelectionOptions

    @Option(help: "text (default, wrapped to 120 columns) or json.")
    var format: ListingFormat = .text

    @Flag(help: "For every check, the kernel mutants it kills (and every mutant and model).")
    var mutants = false

    func run() throws {
        let plan: [(Suite, [CheckInstance])]
        do { plan = try select(try selectionOptions.selection(), from: SuiteRegistry.all(includeHidden: hiddenSuitesEnabled())) } catch { fail("\(error)") }
        if mutants {
            // Each entry wrapped to 120 columns; continuation lines are indented further.
            if format == .json { return try emitJSON(MutantListing.duties(plan.flatMap(\.1))) }
            for line in MutantListing.table(plan.flatMap(\.1)) {
                let lead = String(line.prefix { $0 == " " })
                wrapped(String(line.dropFirst(lead.count)), first: lead, indent: lead + "      ").forEach(emit)
            }
            return
        }
        struct Entry: Encodable {
            let id, suite, series: String
            let uapi, requires: [String]
            let informational: Bool
        }
        if format == .json {
            return try emitJSON(plan.flatMap { suite, instances in
                instances.map { i in
                    Entry(id: i.id, suite: suite.name, series: suite.series, uapi: i.check.uapi,
                          requires: i.check.requirements.map(\.summary), informational: i.check.informational)
                }
            })
        }
        for (suite, instances) in plan {
            wrapped("\(suite.name) — \(suite.summary) [patches/\(suite.series).md]", first: "", indent: "    ").forEach(emit)
            for i in instances {
                emit("  \(i.id)" + (i.check.informational ? "  (informational)" : ""))
                wrapped(i.check.uapi.joined(separator: ", "), first: "      uapi: ", indent: "        ").forEach(emit)
                let needs = i.check.requirements.map(\.summary)
                if !needs.isEmpty { wrapped(needs.joined(separator: ", "), first: "      requires: ", indent: "        ").forEach(emit) }
            }
        }
    }
}
