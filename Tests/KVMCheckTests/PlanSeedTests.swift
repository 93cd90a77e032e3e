import CheckKit
import Reporting
import SeriesPlan
import Foundation
import Testing

/// `plan` on what kernel developers have (issue 17 item 5): each saved review thread names
/// the suites that cover its series. Four of the five quote the diff with `> ` (before: exit 2
/// "no diff found"); two change behaviour without new uAPI and are matched on the kernel code
/// their manifests name (before: no suite suggested).
@Suite struct PlanSeedTests {
    static let threads = repositoryRoot.appendingPathComponent("Tests/Fixtures/threads").path

    struct Case: Sendable, CustomStringConvertible {
        let file: String
        let status: Int32
        let suites: String
        let mustContain: [String]
        var description: String { file }
    }

    static let cases: [Case] = [
        Case(file: "cr3-debug-exit-review.txt", status: 0, suites: "sync-regs,debug-cr3,sync-regs-upstream", mustContain: [
            "  struct kvm_debug_exit_arch.cr3  ", "  struct kvm_run.kvm_save_regs_on_exit  ", "  KVM_SYNC_REGS_CONDITIONAL  ",
            "every symbol is covered",
        ]),
        Case(file: "blockirq-review.txt", status: 0, suites: "blockirq,guest-debug,debug-regs", mustContain: [
            "patches/guestdbg-blockirq.md [merged, Linux 5.15] suites blockirq, guest-debug, debug-regs: KVM_GUESTDBG_BLOCKIRQ\n",
        ]),
        Case(file: "pvm-guest-debug-patch.txt", status: 0, suites: "pvm-guest-debug", mustContain: [
            "no uAPI added or changed",
            "kernel code named by manifests:\n  patches/pvm-guest-debug.md [RFC, not upstream] suites pvm-guest-debug: pvm_set_dr7(), pvm_eff_dr7(), pvm_sync_dirty_debug_regs()\n",
        ]),
        // The RFC's KVM_X86_REG_MSR matches the manifest's KVM_X86_REG_MSR(); its struct
        // kvm_x86_reg_id and KVM_X86_REG_SYNTHETIC_MSR never merged and no suite tests them.
        Case(file: "x86-one-reg-rfc-review.txt", status: 1, suites: "one-reg,msrs", mustContain: [
            "patches/x86-one-reg.md [merged, Linux 6.18 (kvm-x86-cet-6.18)] suites one-reg, msrs: KVM_X86_REG_MSR\n",
            "not covered by any suite:\n  KVM_X86_REG_SYNTHETIC_MSR\n  struct kvm_x86_reg_id.index\n",
        ]),
        Case(file: "debugctl-freeze-in-smm-review.txt", status: 0, suites: "debugctl", mustContain: [
            "no uAPI added or changed",
            "suites debugctl: DEBUGCTLMSR_FREEZE_IN_SMM, HOST_OWNED_DEBUGCTL, KVM_RUN_LOAD_DEBUGCTL, vmx_reload_guest_debugctl()",
        ]),
    ]

    @Test(arguments: cases)
    func planNamesTheSuitesCoveringEachThread(_ c: Case) throws {
        let r = try runBounded(["plan", "\(Self.threads)/\(c.file)"], timeout: 30)
        #expect(r.status == c.status, "\(r)\n\(r.stdout)")
        #expect(r.stdout.hasSuffix("run: kvmcheck run --suite \(c.suites)\n"), "\(r.stdout)")
        // Long entries wrap at 120 columns onto lines indented by six spaces: read them joined.
        let unwrapped = r.stdout.replacingOccurrences(of: "\n      ", with: " ")
        for text in c.mustContain { #expect(unwrapped.contains(text), "\(text)\n--- in ---\n\(r.stdout)") }
        #expect(r.stdout.split(separator: "\n").allSatisfy { $0.count <= 120 }, "fits 120 columns")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
    }

    @Test func quotedDiffsAreReadAtTheirQuotingDepth() throws {
        // A review reply: the diff at depth 2, the reviewer's words at 0 and 1 even inside the hunk.
        let reply = """
            On Fri, someone wrote:
            > > diff --git a/include/uapi/linux/kvm.h b/include/uapi/linux/kvm.h
            > > --- a/include/uapi/linux/kvm.h
            > > +++ b/include/uapi/linux/kvm.h
            > > @@ -1,3 +1,5 @@ struct kvm_run {
            > > +\t__u64 new_field;
            > I do not like this.
            +1, agreed
            > > +#define KVM_NEW_THING 1
            > >  /* context */
            """
        #expect(try uapiChanges(in: reply, name: "r").map(\.symbol) == ["struct kvm_run.new_field", "KVM_NEW_THING"])
        let file = try temporaryFile(reply, suffix: ".txt")
        #expect(try loadSeries(at: file).count == 1, "a quoted `diff --git` is a diff")
    }

    @Test func functionLikeMacroInAManifestMatchesItsDefine() throws {
        let manifest = try SeriesManifest.parse("""
            # T
            - **subject**: s
            - **link**: l
            - **status**: merged
            - **suites**: one-reg
            ## uAPI symbols
            - `KVM_X86_REG_MSR()` — a builder
            - `kvm_run.bitmap[16]` — a field
            """, series: "t", file: "t.md")
        let changes = [UAPIChange(symbol: "KVM_X86_REG_MSR", kind: .define, file: "f", patch: "p"),
                       UAPIChange(symbol: "struct kvm_run.bitmap", kind: .field, file: "f", patch: "p")]
        let plan = SeriesPlan(changes: changes, manifests: [manifest])
        #expect(plan.uncovered.isEmpty && plan.suites == ["one-reg"])
    }

    @Test func kernelCodeEntriesMatchFilesDirectoriesAndIdentifiers() throws {
        let patch = """
            diff --git a/arch/x86/kvm/pvm/pvm.c b/arch/x86/kvm/pvm/pvm.c
            --- a/arch/x86/kvm/pvm/pvm.c
            +++ b/arch/x86/kvm/pvm/pvm.c
            @@ -10,6 +10,7 @@ static void pvm_vcpu_load(struct kvm_vcpu *vcpu, int cpu)
             unchanged_context_call();
            +\tpvm->host_debugctlmsr = get_debugctlmsr();
            """
        let touched = try codeTouched(in: patch, name: "p")
        #expect(touched.files == ["arch/x86/kvm/pvm/pvm.c"])
        for entry in ["arch/x86/kvm/pvm/pvm.c", "arch/x86/kvm/pvm/", "pvm.c", "get_debugctlmsr()", "host_debugctlmsr", "pvm_vcpu_load()"] {
            #expect(touched.touches(entry), "\(entry)")
        }
        for entry in ["arch/x86/kvm/vmx/", "x86.c", "unchanged_context_call()", "debugctlmsr", "arch/x86/kvm/pvm"] {
            #expect(!touched.touches(entry), "\(entry): context lines and partial names do not count")
        }
        #expect(throws: ManifestError.self) {
            try SeriesManifest.parse("# T\n- **subject**: s\n- **link**: l\n- **status**: s\n- **suites**: a\n## Kernel code\n- no backticks\n",
                                     series: "t", file: "t.md")
        }
    }

    @Test func everyShippedManifestNamesOnlyExistingSuites() throws {
        let known = SuiteRegistry.all().map(\.name)
        for m in try SeriesManifest.loadAll(from: repositoryRoot.appendingPathComponent("patches").path) {
            try m.checkSuites(known: known)
        }
    }
}
