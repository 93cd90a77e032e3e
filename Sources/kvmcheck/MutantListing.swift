// `kvmcheck list --mutants`: every kernel double, and for every check the mutants it names.
import CheckKit
import KernelDoubles

enum MutantListing {
    /// The text listing (one entry per line; the caller wraps them to 120 columns).
    static func table(_ instances: [CheckInstance]) -> [String] {
        var lines = ["kernel doubles (test-only; KVMCHECK_MUTANT=name / KVMCHECK_MODEL=name):"]
        for d in KernelDoubles.catalog {
            let needs = d.requires.isEmpty ? "" : " [needs model \(d.requires.map(\.rawValue).joined(separator: ", "))]"
            lines.append("  \(d.kind) \(d.name): \(d.summary)" + needs)
        }
        lines.append("checks and the mutants they kill:")
        let width = instances.map(\.id.count).max() ?? 0
        for i in instances {
            let cell: String
            if !i.check.killedBy.isEmpty { cell = i.check.killedBy.map(\.rawValue).joined(separator: ", ") }
            else if i.check.informational { cell = "(informational: records behaviour, never fails)" }
            else if let why = i.check.unkillable { cell = "none at the ioctl seam: \(why)" }
            else { cell = "NONE (a defect: add a mutant or a justification)" }
            lines.append("  " + i.id + String(repeating: " ", count: max(0, width - i.id.count)) + "  " + cell)
        }
        return lines
    }

    struct Entry: Encodable {
        let mutant, summary: String
        let requires, kills, gaps, controls, suites: [String]
    }

    /// `--format json`: per mutant, what it must do to the selected instances.
    static func duties(_ instances: [CheckInstance]) -> [Entry] {
        KernelDoubles.mutants.compactMap { d in
            guard let id = d.mutant else { return nil }
            let duty = MutantCoverage.duty(of: id, over: instances)
            return Entry(mutant: d.name, summary: d.summary, requires: d.requires.map(\.rawValue), kills: duty.kills,
                         gaps: duty.gaps, controls: duty.controls, suites: duty.suites)
        }
    }
}
