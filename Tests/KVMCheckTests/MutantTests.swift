import CheckKit
import Foundation
import KernelDoubles
import Suites
import Testing

/// Each mutant against the checks that name it (`killedBy:`, `gapUnder:`, `positiveControls:`
/// where the check is written, inverted by MutantCoverage): its targets turn `not ok`, and nothing
/// else changes.
///
/// A mutant runs alone only over the suites that name it (`--suite`), compared with the plain run
/// of those suites.  That nothing changes in the other suites is shown per suite by one run with
/// every mutant that does not name it active at once, each child reporting which mutants changed
/// a call (KernelDoubles' ActionTrace judges that around the mutant, not from its body, except
/// for kvm_run's sync state, which a race check's second thread also writes: the mutants that
/// write it report their changes).  Up to
/// the first change, such a run is the plain run call for call; so where no mutant changed
/// anything, none would have alone either, and every check keeps its plain verdict under each of
/// them.  Mutants that did change something are run alone over that suite (compared with its
/// plain run) and the rest again together, until a run shows no change.
@Suite(.enabled(if: kvmUsable, kvmUnusableReason))
struct MutantTests {
    struct Outcome {
        let status: String
        let notes: [String]
    }

    static let instances = SuiteRegistry.all().flatMap(\.instances)
    static let suiteNames = SuiteRegistry.all().map(\.name)

    /// Check id → outcome of `kvmcheck run` over `suites` (all when empty) with `environment`.
    static func run(_ suites: [String], _ environment: [String: String], only ids: [String] = []) throws -> [String: Outcome] {
        let selection = (suites.isEmpty ? [] : ["--suite", suites.joined(separator: ",")]) + (ids.isEmpty ? [] : ["--filter", ids.joined(separator: ",")])
        // Races at 1 s (the default 0.1 s samples a tenth as long): sync-regs-invalid-state-entered
        // must be caught even when every mutant run shares the cores.
        let r = try runProcess(fastKvmcheckBinary, ["run", "--format", "json", "--race-seconds", "1", "--jobs", "\(Runner.onlineCores)"] + selection,
                               environment: environment)
        let doc = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        let checks = try #require(doc["checks"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: checks.map {
            ($0["id"] as! String, Outcome(status: $0["status"] as! String, notes: $0["notes"] as? [String] ?? []))
        })
    }

    static func environment(models: [ModelID], mutants: [MutantID]) -> [String: String] {
        // Doubles are honoured only under the self-test switch (see activateKernelDoubles).
        var env: [String: String] = models.isEmpty && mutants.isEmpty ? [:] : ["KVMCHECK_HARNESS_SELFTEST": "1"]
        if !models.isEmpty { env["KVMCHECK_MODEL"] = models.map(\.rawValue).joined(separator: ",") }
        if !mutants.isEmpty { env["KVMCHECK_MUTANT"] = mutants.map(\.rawValue).joined(separator: ",") }
        return env
    }

    /// The plain run of every suite (the baseline of mutants that need no model).
    static let plain: [String: Outcome]? = try? run([], [:])

    static func baseline(_ suites: [String], models: [ModelID]) throws -> [String: Outcome] {
        if models.isEmpty { return try #require(plain).filter { id, _ in suites.contains(suite(of: id)) } }
        return try run(suites, environment(models: models, mutants: []))
    }

    static func suite(of id: String) -> String { String(id.prefix { $0 != "/" }) }
    static func models(of mutant: MutantID) -> [ModelID] { KernelDoubles.double(mutant)?.requires ?? [] }

    /// Holds `mutant`'s run over `suites` to its duty: its targets turn `not ok`, gaps may SKIP,
    /// positive controls may get a verdict, every other check keeps its verdict.
    static func expectDuty(_ mutant: MutantID, over suites: [String]) throws {
        let duty = MutantCoverage.duty(of: mutant, over: instances)
        let models = models(of: mutant)
        let before = try baseline(suites, models: models)
        var after = try run(suites, environment(models: models, mutants: [mutant]))
        let name = mutant.rawValue
        #expect(Set(after.keys) == Set(before.keys), "the same checks run")
        // A kill that depends on two threads overlapping (the sync-regs races) may not happen in
        // one run on a loaded host: a target still passing is given up to eight more runs (of
        // only the missed checks, 1 s each) to turn.  Measured at load 12 on 2 cores: the CR4
        // race caught sync-regs-invalid-state-entered in 2-3 of 6 one-second runs, and three
        // retries were not enough once in a fresh-clone CI run beside two emulator boots.
        for _ in 0..<8 {
            let missed = duty.kills.filter { before[$0]?.status == "pass" && after[$0]?.status == "pass" }
            if missed.isEmpty { break }
            after.merge(try run(suites, environment(models: models, mutants: [mutant]), only: missed)) { $1 }
        }
        var killed: [String] = []
        for (id, was) in before.map({ ($0.key, $0.value.status) }).sorted(by: { $0.0 < $1.0 }) {
            let now = after[id]?.status ?? "missing"
            if duty.kills.contains(id) {
                #expect(now != "crash" && now != "timeout", "\(name) made \(id) \(now): a mutant must fail checks, not break them")
                if was == "pass" {
                    #expect(now == "fail" || now == "informational", "\(name) must turn \(id) not ok (was pass, now \(now))")
                }
                if now == "fail" && was != "fail" { killed.append(id) }
            } else if duty.gaps.contains(id) {
                #expect(now == was || now == "skip", "\(name) may only make \(id) a gap (was \(was), now \(now))")
            } else if was == "skip", duty.controls.contains(id) {
                #expect(now != "crash" && now != "timeout", "\(name) is \(id)'s positive control: it may get a verdict, not break")
            } else {
                #expect(now == was, "\(name) must leave \(id) alone (was \(was), now \(now))")
            }
        }
        // Where every target already fails (or skips) on this kernel, the kill cannot be shown here.
        if before.contains(where: { duty.kills.contains($0.key) && $0.value.status == "pass" }) { #expect(!killed.isEmpty) }
    }

    @Test(arguments: MutantID.allCases)
    func mutantTurnsItsTargetsNotOkAndLeavesTheRestOfTheirSuitesAlone(_ mutant: MutantID) throws {
        let suites = MutantCoverage.duty(of: mutant, over: Self.instances).suites
        try #require(!suites.isEmpty, "no check names \(mutant.rawValue)")
        try Self.expectDuty(mutant, over: suites)
    }

    @Test(arguments: suiteNames)
    func mutantsThatDoNotNameASuiteChangeNothingThere(_ suite: String) throws {
        let strangers = MutantID.allCases.filter { !MutantCoverage.duty(of: $0, over: Self.instances).suites.contains(suite) }
        // Mutants of a model run over the modelled kernel: one group per set of models.
        for models in Set(strangers.map(Self.models(of:))) {
            var together = strangers.filter { Self.models(of: $0) == models }
            while !together.isEmpty {
                let outcomes = try Self.run([suite], Self.environment(models: models, mutants: together))
                // The first mutant to change a call in a check saw the plain run until then: it
                // really changes something there.  Later ones may only react to it.
                let first = Set(outcomes.values.compactMap { o in
                    o.notes.first { $0.hasPrefix(ActionTrace.notePrefix) }
                        .flatMap { $0.dropFirst(ActionTrace.notePrefix.count).split(separator: ", ").first }
                        .flatMap { MutantID(rawValue: String($0)) }
                })
                // A check that died cannot say which mutants changed something: doubt them all.
                let broken = outcomes.values.contains { $0.status == "crash" || $0.status == "timeout" }
                let alone = broken ? together : together.filter(first.contains)
                if alone.isEmpty {
                    if models.isEmpty, let plain = Self.plain {
                        for (id, o) in outcomes { #expect(o.status == plain[id]?.status, "\(id) changed under \(together) although none acted") }
                    }
                    break
                }
                for mutant in alone { try Self.expectDuty(mutant, over: [suite]) }
                together.removeAll { alone.contains($0) }
            }
        }
    }

    @Test func listMutantsShowsEveryDoubleAndEveryCheck() throws {
        let r = try kvmcheck(["list", "--mutants"])
        #expect(r.status == 0)
        for d in KernelDoubles.catalog { #expect(r.stdout.contains("  \(d.kind) \(d.name): ")) }
        // An entry and its continuation lines (wrapped to 120 columns).
        let start = try #require(r.lines.firstIndex { $0.hasPrefix("  blockirq/steps_land_on_next_instruction/cpl0") })
        let entry = ([r.lines[start]] + r.lines[(start + 1)...].prefix { $0.hasPrefix("        ") }).joined(separator: " ")
        #expect(entry.contains("blockirq-ignored"), "\(entry)")
        #expect(r.lines.allSatisfy { $0.count <= 120 }, "fits a terminal")
        #expect(!r.stdout.contains("NONE (a defect"))
    }

    @Test func modelsRunTheUnmergedPositivePathsAndSaySo() throws {
        let cr3 = try kvmcheck(["run", "--suite", "debug-cr3", "--format", "json"], environment: ["KVMCHECK_MODEL": "debug-cr3", "KVMCHECK_HARNESS_SELFTEST": "1"])
        let doc = try #require(JSONSerialization.jsonObject(with: Data(cr3.stdout.utf8)) as? [String: Any])
        #expect((doc["notes"] as? [String])?.first == "KERNEL DOUBLES ACTIVE (test-only; results describe them, not this kernel): model debug-cr3")
        #expect(cr3.stderr.contains("kvmcheck: KERNEL DOUBLES ACTIVE (test-only; results describe them, not this kernel): model debug-cr3"),
                "said on stderr too, where a CI log shows it: \(cr3.stderr)")
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
                                environment: ["KVMCHECK_MODEL": "conditional-sync", "KVMCHECK_HARNESS_SELFTEST": "1"])
        #expect(sync.stdout.contains("\"status\" : \"pass\""), "conditional sync runs and passes under its model")
    }

    @Test func doublesAreNeverOnByAccidentAndBadNamesAreRejected() throws {
        let plain = try kvmcheck(["run", "--suite", "debug-cr3", "--filter", "*canary/cpl0"])
        #expect(!plain.stdout.contains("KERNEL DOUBLES"))
        #expect(!plain.stderr.contains("KERNEL DOUBLES"))
        let unknown = try kvmcheck(["run"], environment: ["KVMCHECK_MUTANT": "nope", "KVMCHECK_HARNESS_SELFTEST": "1"])
        #expect(unknown.status == 2 && unknown.stdout.isEmpty && unknown.stderr.contains("unknown kernel double 'nope'"))
        let orphan = try kvmcheck(["run"], environment: ["KVMCHECK_MUTANT": "cr3-stale-root", "KVMCHECK_HARNESS_SELFTEST": "1"])
        #expect(orphan.status == 2 && orphan.stderr.contains("set KVMCHECK_MODEL=debug-cr3"))
        // Without the self-test switch a double is a usage error, not a silently perverted run.
        for variable in ["KVMCHECK_MUTANT", "KVMCHECK_MODEL"] {
            let stray = try kvmcheck(["run", "--suite", "debug-cr3"], environment: [variable: variable == "KVMCHECK_MODEL" ? "debug-cr3" : "blockirq-ignored"])
            #expect(stray.status == 2 && stray.stdout.isEmpty && stray.stderr.contains("set KVMCHECK_HARNESS_SELFTEST=1"), "\(variable): \(stray.stderr)")
        }
    }

    @Test func aMutantThatChangesNothingSaysSoAndOneThatDoesIsNamed() throws {
        // vmm-rflags-if-forced acts on every KVM_SET_REGS with IF clear; one-reg-on-vm-fd only on ONE_REG of a VM fd.
        let r = try Self.run(["guest-debug"], Self.environment(models: [], mutants: [.oneRegOnVMFD, .vmmRFLAGSIFForced]))
        let notes = r["guest-debug/vmm_rflags_if_clear_reaches_guest/cpl0"]?.notes ?? []
        #expect(notes.contains(ActionTrace.notePrefix + "vmm-rflags-if-forced"), "\(notes)")
        #expect(!r.values.contains { $0.notes.contains { $0.contains("one-reg-on-vm-fd") } })
    }
}

/// The killers the checks declare, without KVM.
@Suite struct MutantCoverageTests {
    @Test func everyCheckIsKilledByAMutantOrJustified() throws {
        let all = SuiteRegistry.all().flatMap(\.instances)
        #expect(MutantCoverage.uncovered(all).map(\.id) == [])
        for i in all {
            #expect(i.check.killedBy.isEmpty || i.check.unkillable == nil, "\(i.id) has killers and says it has none")
            #expect(Set(i.check.killedBy).count == i.check.killedBy.count, "\(i.id) names a killer twice")
        }
    }

    @Test func everyMutantHasOneDoubleAndSomethingToDo() throws {
        let all = SuiteRegistry.all().flatMap(\.instances)
        for mutant in MutantID.allCases {
            #expect(KernelDoubles.mutants.filter { $0.mutant == mutant }.count == 1, "\(mutant.rawValue): one double")
            #expect(!MutantCoverage.duty(of: mutant, over: all).suites.isEmpty, "no check names \(mutant.rawValue)")
        }
        #expect(KernelDoubles.mutants.count == MutantID.allCases.count)
    }

    @Test func aPreconditionsKillerMayMakeItsDependentsSkipAndNoOneElse() throws {
        let all = SuiteRegistry.all().flatMap(\.instances)
        let steps = try #require(all.first { $0.id == "blockirq/steps_land_on_next_instruction/cpl0" })
        // single-step-dropped kills guest-debug/single_step_stops_after_each_instruction, a precondition here.
        #expect(MutantCoverage.isGap(steps.check, cpl: steps.cpl, under: .singleStepDropped))
        #expect(!MutantCoverage.isGap(steps.check, cpl: steps.cpl, under: .oneRegOnVMFD))
        let duty = MutantCoverage.duty(of: .singleStepDropped, over: all)
        #expect(duty.kills.contains("guest-debug/single_step_stops_after_each_instruction/cpl3"))
        #expect(duty.gaps.contains(steps.id) && !duty.kills.contains(steps.id))
        #expect(Set(duty.suites) == Set(duty.kills.map { String($0.prefix { $0 != "/" }) } + duty.gaps.map { String($0.prefix { $0 != "/" }) }))
    }
}

/// The release build of kvmcheck (`swift build -c release --product kvmcheck`) when it was built
/// after the last change to the sources (Package.swift, Sources/, Suites/): its children start
/// several times faster, which is most of what the mutant runs cost.  Otherwise the debug build.
let fastKvmcheckBinary: String = {
    let debug = URL(fileURLWithPath: kvmcheckBinary)
    let release = debug.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("release/kvmcheck")
    func modified(_ url: URL) -> Date? { (try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date }
    guard let built = modified(release) else { return debug.path }
    var newest = modified(repositoryRoot.appendingPathComponent("Package.swift")) ?? .distantFuture
    for dir in ["Sources", "Suites"] {
        let root = repositoryRoot.appendingPathComponent(dir)
        for case let file as URL in FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.contentModificationDateKey]) ?? .init() {
            newest = max(newest, modified(file) ?? .distantFuture)
        }
    }
    return newest <= built ? release.path : debug.path
}()
