import CheckKit
import Reporting
import SeriesPlan
import Foundation
import KVMKit
import Testing

/// Every suite under every mutant: the mutant's targets turn `not ok`, nothing else moves.
@Suite(.enabled(if: kvmUsable, kvmUnusableReason))
struct MutantTests {
    /// Check id → status ("pass", "fail", "skip", "informational", "timeout", "crash") of a full run.
    static func statuses(_ environment: [String: String]) throws -> [String: String] {
        let r = try kvmcheck(["run", "--format", "json"], environment: environment)
        let doc = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        let checks = try #require(doc["checks"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: checks.map { ($0["id"] as! String, $0["status"] as! String) })
    }

    static let baseline: [String: String]? = try? statuses([:])
    static let mutants = KernelDoubles.catalog.filter { $0.kind == .mutant }

    @Test(arguments: mutants.map(\.name))
    func mutantTurnsItsTargetsNotOkAndLeavesTheRestAlone(_ name: String) throws {
        let mutant = try #require(KernelDoubles.catalog.first { $0.name == name })
        let models = mutant.requires.isEmpty ? [:] : ["KVMCHECK_MODEL": mutant.requires.joined(separator: ",")]
        let before = try mutant.requires.isEmpty ? #require(Self.baseline) : Self.statuses(models)
        let after = try Self.statuses(models.merging(["KVMCHECK_MUTANT": name]) { $1 })
        #expect(Set(after.keys) == Set(before.keys), "the same checks run")
        var killed: [String] = []
        for (id, was) in before.sorted(by: { $0.key < $1.key }) {
            let now = after[id] ?? "missing"
            if mutant.kills.contains(where: { globMatch($0, id) }) {
                #expect(now != "crash" && now != "timeout", "\(name) made \(id) \(now): a mutant must fail checks, not break them")
                if was == "pass" {
                    #expect(now == "fail" || now == "informational", "\(name) must turn \(id) not ok (was pass, now \(now))")
                }
                if now == "fail" && was != "fail" { killed.append(id) }
            } else if mutant.becomesGap.contains(where: { globMatch($0, id) }) {
                #expect(now == was || now == "skip", "\(name) may only make \(id) a gap (was \(was), now \(now))")
            } else if was == "skip", mutant.makesObservable.contains(where: { globMatch($0, id) }) {
                #expect(now != "crash" && now != "timeout", "\(name) is \(id)'s positive control: it may get a verdict, not break")
            } else {
                #expect(now == was, "\(name) must leave \(id) alone (was \(was), now \(now))")
            }
        }
        // Where every target already fails (or skips) on this kernel, the kill cannot be shown here.
        let observable = before.filter { id, was in was == "pass" && mutant.kills.contains { globMatch($0, id) } }
        if !observable.isEmpty { #expect(!killed.isEmpty) }
    }

    @Test func everyCheckIsKilledByAMutantOrJustified() throws {
        let all = SuiteRegistry.all().flatMap(\.instances)
        #expect(MutantCoverage.uncovered(all).map(\.id) == [])
        for d in KernelDoubles.catalog where d.kind == .mutant {
            for pattern in d.kills {
                #expect(all.contains { globMatch(pattern, $0.id) }, "\(d.name) names '\(pattern)', which matches no check")
            }
        }
    }

    @Test func listMutantsShowsEveryDoubleAndEveryCheck() throws {
        let r = try kvmcheck(["list", "--mutants"])
        #expect(r.status == 0)
        for d in KernelDoubles.catalog { #expect(r.stdout.contains("  \(d.kind.rawValue) \(d.name): ")) }
        // An entry and its continuation lines (wrapped to 120 columns).
        let start = try #require(r.lines.firstIndex { $0.hasPrefix("  blockirq/steps_land_on_next_instruction/cpl0") })
        let entry = ([r.lines[start]] + r.lines[(start + 1)...].prefix { $0.hasPrefix("        ") }).joined(separator: " ")
        #expect(entry.contains("blockirq-ignored"), "\(entry)")
        #expect(r.lines.allSatisfy { $0.count <= 120 }, "fits a terminal")
        #expect(!r.stdout.contains("NONE (a defect"))
    }

    @Test func modelsRunTheUnmergedPositivePathsAndSaySo() throws {
        let cr3 = try kvmcheck(["run", "--suite", "debug-cr3", "--format", "json"], environment: ["KVMCHECK_MODEL": "debug-cr3"])
        let doc = try #require(JSONSerialization.jsonObject(with: Data(cr3.stdout.utf8)) as? [String: Any])
        #expect((doc["notes"] as? [String])?.first == "KERNEL DOUBLES ACTIVE (test-only; results describe them, not this kernel): model debug-cr3")
        let checks = try #require(doc["checks"] as? [[String: Any]])
        let status = Dictionary(uniqueKeysWithValues: checks.map { ($0["id"] as! String, $0["status"] as! String) })
        #expect(status["debug-cr3/cr3_slot_canary/cpl0"] == "pass", "cap advertised and the slot filled")
        let positive = status.filter { $0.key.contains("/cr3_on_") }
        // A positive path may SKIP only for a failed precondition (e.g. single-step at that CPL), never for the cap.
        let capSkips = checks.filter { ($0["id"] as! String).contains("/cr3_on_") && $0["status"] as? String == "skip"
            && ($0["reason"] as? String)?.hasPrefix("precondition failed: ") != true }
        #expect(capSkips.isEmpty, "the model advertises the cap, so no positive path skips for it: \(capSkips)")
        #expect(positive.values.contains("pass"), "at least one positive path runs to the end under the model: \(positive)")
        let sync = try kvmcheck(["run", "--suite", "sync-regs", "--filter", "*conditional*", "--format", "json"],
                                environment: ["KVMCHECK_MODEL": "conditional-sync"])
        #expect(sync.stdout.contains("\"status\" : \"pass\""), "conditional sync runs and passes under its model")
    }

    @Test func doublesAreNeverOnByAccidentAndBadNamesAreRejected() throws {
        let plain = try kvmcheck(["run", "--suite", "debug-cr3", "--filter", "*canary/cpl0"])
        #expect(!plain.stdout.contains("KERNEL DOUBLES"))
        let unknown = try kvmcheck(["run"], environment: ["KVMCHECK_MUTANT": "nope"])
        #expect(unknown.status == 2 && unknown.stdout.isEmpty && unknown.stderr.contains("unknown kernel double 'nope'"))
        let orphan = try kvmcheck(["run"], environment: ["KVMCHECK_MUTANT": "cr3-stale-root"])
        #expect(orphan.status == 2 && orphan.stderr.contains("set KVMCHECK_MODEL=debug-cr3"))
    }
}
