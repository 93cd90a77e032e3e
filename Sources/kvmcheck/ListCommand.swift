// `kvmcheck list`: suites, checks, the uAPI each exercises, and (with --mutants) their killers.
import ArgumentParser
import CheckKit
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

    @Flag(help: "For every check, the kernel mutants it kills (and every mutant and model).")
    var mutants = false

    func run() throws {
        let plan: [(Suite, [CheckInstance])]
        do { plan = try select(selectionOptions.selection, from: SuiteRegistry.all(includeHidden: hiddenSuitesEnabled())) } catch { fail("\(error)") }
        if mutants {
            for line in MutantCoverage.table(plan.flatMap(\.1)) { emit(line) }
            return
        }
        for (suite, instances) in plan {
            emit("\(suite.name) — \(suite.summary) [patches/\(suite.series).md]")
            for i in instances {
                let needs = i.check.requirements.map(\.summary)
                emit("  \(i.id)  uapi: \(i.check.uapi.joined(separator: ", "))"
                     + (needs.isEmpty ? "" : "  requires: \(needs.joined(separator: ", "))")
                     + (i.check.informational ? "  (informational)" : ""))
            }
        }
    }
}
