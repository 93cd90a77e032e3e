import CheckKit
import CKVM
import Glibc
import GuestKit
import KernelDoubles
import KVMKit
import Suites
import X86Asm

/// `kvmcheck bench`: what a debugger pays per debug event for each way of getting vCPU state
/// (seed 000's argument), and what this harness's Swift layer costs over a C loop.
///
/// Every variant runs `iterations` exits per batch, `repeats` batches, interleaved (repeat r
/// of every variant before repeat r+1 of any), so drift hits all alike.  A ratio is taken per
/// repeat, between a variant's batch and its baseline's batch of the same repeat (neighbours in
/// time, so host load cancels), and reported as the median of those paired ratios with their
/// interquartile range: many short interleaved batches reproduce better than a few long ones.
public struct BenchPlan: Sendable {
    public var iterations = 5_000
    public var repeats = 21
    public var levels: [GuestCPL] = [.cpl0, .cpl3]
    public var settings = CheckSettings()
    public init() {}
}

public struct BenchResult: Sendable, Codable, Equatable {
    public let variant: String
    public let level: String
    /// "real", "simulated" (a test-only model stands in for an unmerged patch), or "n/a".
    public let kind: String
    public let detail: String
    public let nsPerExit: Stats?
    /// Median over repeats of (this batch / the baseline's batch of the same repeat); nil for
    /// baselines and unavailable variants.
    public let ratio: Double?
    /// Interquartile range of those paired ratios (p75 - p25): the run-to-run variation to expect.
    public let ratioSpread: Double?
    public let baseline: String?

    public struct Stats: Sendable, Codable, Equatable {
        public let min: Double
        public let median: Double
        public let p90: Double
    }
}

/// One way of handling an exit, measured as a batch.
struct BenchVariant {

    let name: String
    let level: GuestCPL
    var kind = "real"
    var detail = ""
    let baseline: String?
    /// Builds the guest and does per-variant setup; nil = unavailable (with `detail` set).
    var prepare: (KVMSystem) throws -> Guest
    /// One batch of `count` exits.
    var batch: (Guest, Int) throws -> Void
}

extension BenchVariant {
    /// The same batch run through the test-only model of an unmerged uAPI this kernel lacks, labelled so.
    func simulated(by model: String, numbers: [String: Int]) -> BenchVariant {
        var v = self
        v.kind = "simulated"
        v.detail = "\(model) model: its cost is a userspace KVM_GET_SREGS, not the patch's"
        let inner = batch
        v.batch = { g, n in try Bench.withModel([model], numbers: numbers) { try inner(g, n) } }
        return v
    }
}

public enum Bench {
    static let stepReason = UInt32(KVM_EXIT_DEBUG)
    static let ioReason = UInt32(KVM_EXIT_IO)
    static let mmioReason = UInt32(KVM_EXIT_MMIO)

    /// Guest loops that exit on every iteration.
    static func loopGuest(_ kvm: KVMSystem, _ level: GuestCPL, options: GuestOptions = GuestOptions(),
                          _ body: @escaping (inout Assembler) -> Void) throws -> Guest {
        try Guest(system: kvm, cpl: level, options: options) { a in
            a.label("loop")
            body(&a)
            a.jmp("loop")
        }
    }

    /// Guests no longer enter with IOPL=3 by default: the port-I/O variant asks for it (at CPL3
    /// it measures an I/O exit only where the backend honours the IOPL the VMM set).
    static let portIOOptions: GuestOptions = { var o = GuestOptions(); o.extraRFLAGS = 0x3000; return o }()

    static func stepGuest(_ kvm: KVMSystem, _ level: GuestCPL) throws -> Guest {
        let g = try loopGuest(kvm, level) { a in for _ in 0..<8 { a.nop() } }
        try g.vcpu.setGuestDebug([.enable, .singleStep])
        return g
    }

    /// A batch of exits that must all be `reason`, with `after` run on each (what a debugger does per event).
    static func exits(_ g: Guest, _ count: Int, _ reason: UInt32, after: (Guest) throws -> Void = { _ in }) throws {
        for _ in 0..<count {
            let got = try g.vcpu.runRaw()
            guard got == reason else {
                throw KVMError("KVM_RUN", .protocolViolation("\(g.event(for: g.vcpu.lastExit)) instead of \(VCPUExit.name(ofReason: reason))"))
            }
            try after(g)
        }
    }

    static func variants(_ plan: BenchPlan, _ kvm: KVMSystem) -> [BenchVariant] {
        var all: [BenchVariant] = []
        // The suites' own probes decide whether the kernel has each unmerged uAPI.
        let cr3Real = ((try? debugCR3Advertised(kvm, plan.settings))??.value ?? 0) != 0
        let conditionalReal = bit63Behaviour(kvm) == .conditional
        let numbers = plan.settings.proposedCapabilities.numbers
        for level in plan.levels {
            let step = "single-step exit"
            all.append(BenchVariant(name: "io exit (out)", level: level, baseline: nil, prepare: { try loopGuest($0, level, options: portIOOptions) { a in a.out(0x80, .al) } },
                                    batch: { try exits($0, $1, ioReason) }))
            all.append(BenchVariant(name: "mmio exit (store)", level: level, baseline: nil,
                                    prepare: { try loopGuest($0, level) { a in a.mov(qword: .absolute(GuestLayout.unbackedMMIO + 0x1000), 1) } },
                                    batch: { try exits($0, $1, mmioReason) }))
            all.append(BenchVariant(name: step, level: level, baseline: nil, prepare: { try stepGuest($0, level) },
                                    batch: { try exits($0, $1, stepReason) }))
            all.append(BenchVariant(name: "step + KVM_GET_SREGS", level: level, baseline: step, prepare: { try stepGuest($0, level) },
                                    batch: { try exits($0, $1, stepReason) { g in _ = try g.vcpu.sregs().cr3 } }))
            all.append(BenchVariant(name: "step + KVM_GET_REGS + KVM_GET_SREGS", level: level, baseline: step, prepare: { try stepGuest($0, level) },
                                    batch: { try exits($0, $1, stepReason) { g in _ = try g.vcpu.regs().rip; _ = try g.vcpu.sregs().cr3 } }))
            all.append(BenchVariant(name: "step + sync regs (kvm_valid_regs REGS|SREGS)", level: level, baseline: step,
                                    prepare: { kvm in
                                        let g = try stepGuest(kvm, level)
                                        g.vcpu.syncValidRegs = [.regs, .sregs]
                                        return g
                                    }, batch: { try exits($0, $1, stepReason) { g in _ = g.vcpu.syncedSregs.cr3 } }))
            let cr3 = BenchVariant(name: "step + cr3 in the exit (proposed)", level: level, baseline: step,
                                   prepare: { try stepGuest($0, level) },
                                   batch: { try exits($0, $1, stepReason) { g in _ = g.vcpu.debugExitCR3Slot } })
            all.append(cr3Real ? cr3 : cr3.simulated(by: "debug-cr3", numbers: numbers))
            let conditional = BenchVariant(name: "step + conditional sync (bit 63, DEBUG marked)", level: level, baseline: step,
                                           prepare: { kvm in
                                               let g = try stepGuest(kvm, level)
                                               var bitmap = [UInt64](repeating: 0, count: Int(CKVM_SAVE_REGS_ON_EXIT_WORDS))
                                               bitmap[0] = 1 << UInt64(KVM_EXIT_DEBUG)
                                               g.vcpu.saveRegsOnExitBitmap = bitmap
                                               g.vcpu.syncValidRegs = [.sregs, .conditional]
                                               return g
                                           }, batch: { try exits($0, $1, stepReason) { g in _ = g.vcpu.syncedSregs.cr3 } })
            all.append(conditionalReal ? conditional : conditional.simulated(by: "conditional-sync", numbers: numbers))
            // The harness's own overhead: the same plain step loop, C reference vs the Swift layer.
            all.append(BenchVariant(name: "overhead: C reference loop (step)", level: level, baseline: nil, prepare: { try stepGuest($0, level) },
                                    batch: { try $0.vcpu.runCReferenceLoop(count: $1, expecting: stepReason) }))
            all.append(BenchVariant(name: "overhead: Swift layer loop (step)", level: level, baseline: "overhead: C reference loop (step)",
                                    prepare: { try stepGuest($0, level) },
                                    batch: { try $0.vcpu.runSwiftLoop(count: $1, expecting: stepReason) }))
        }
        return all
    }

    static func withModel<R>(_ names: [String], numbers: [String: Int], _ body: () throws -> R) throws -> R {
        KernelDoubles.proposedCapabilities = numbers
        try KernelDoubles.activate(names)
        defer { try? KernelDoubles.activate([]) }
        return try body()
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Runs the plan; `progress` gets a line per finished repeat (for people watching).
    public static func run(_ plan: BenchPlan, system kvm: KVMSystem, progress: (String) -> Void = { _ in }) -> [BenchResult] {
        var vs = variants(plan, kvm)
        var guests: [Guest?] = []
        var samples: [[Double]] = Array(repeating: [], count: vs.count)
        // Prepare and warm up each variant once; one that cannot run is reported, not fatal.
        for i in vs.indices {
            do {
                let g = try vs[i].prepare(kvm)
                try Watchdog.guarding(milliseconds: 5000) { try vs[i].batch(g, min(100, plan.iterations)) }
                guests.append(g)
            } catch {
                vs[i].kind = "n/a"
                vs[i].detail = "\(error)"
                guests.append(nil)
            }
        }
        for r in 1...plan.repeats {
            for i in vs.indices {
                guard let g = guests[i] else { continue }
                do {
                    let t0 = now()
                    try Watchdog.guarding(milliseconds: 30_000) { try vs[i].batch(g, plan.iterations) }
                    samples[i].append(Double(now() - t0) / Double(plan.iterations))
                } catch {
                    vs[i].kind = "n/a"
                    vs[i].detail = "failed in repeat \(r): \(error)"
                    guests[i] = nil
                }
            }
            progress("repeat \(r)/\(plan.repeats) done")
        }
        func quantile(_ sorted: [Double], _ q: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * q + 0.5))] }
        let stats: [BenchResult.Stats?] = samples.map { s in
            guard !s.isEmpty else { return nil }
            let sorted = s.sorted()
            let p90 = sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)]
            return BenchResult.Stats(min: sorted[0], median: sorted[sorted.count / 2], p90: p90)
        }
        return vs.indices.map { i in
            let v = vs[i]
            let base = v.baseline.flatMap { b in vs.indices.first { vs[$0].name == b && vs[$0].level == v.level } }
            let paired: [Double] = {
                guard let b = base, v.kind != "n/a", vs[b].kind != "n/a" else { return [] }
                return zip(samples[i], samples[b]).compactMap { $1 > 0 ? $0 / $1 : nil }.sorted()
            }()
            return BenchResult(variant: v.name, level: "CPL\(v.level.rawValue)", kind: v.kind, detail: v.detail,
                               nsPerExit: v.kind == "n/a" ? nil : stats[i],
                               ratio: paired.isEmpty ? nil : quantile(paired, 0.5),
                               ratioSpread: paired.isEmpty ? nil : quantile(paired, 0.75) - quantile(paired, 0.25),
                               baseline: v.baseline)
        }
    }

    /// The human table.
    public static func table(_ results: [BenchResult], plan: BenchPlan) -> [String] {
        var rows = [["level", "variant", "min ns", "median ns", "p90 ns", "ratio", "note"]]
        for r in results {
            let s = r.nsPerExit
            func f(_ v: Double?) -> String { v.map { String(Int($0.rounded())) } ?? "-" }
            let ratio = r.ratio.map { format2($0) + "x" + (r.ratioSpread.map { " ±" + format2($0 / 2) } ?? "") } ?? "-"
            let note = r.kind == "real" ? (r.baseline.map { "vs \($0)" } ?? "baseline") : "\(r.kind.uppercased()): \(r.detail)"
            rows.append([r.level, r.variant, f(s?.min), f(s?.median), f(s?.p90), ratio, note])
        }
        return ["\(plan.iterations) exits per batch x \(plan.repeats) repeats, interleaved; ns per exit (min/median/p90 of batch means); ratio: median of per-repeat paired ratios ± half their IQR"]
            + alignedColumns(rows, rightAligned: [2, 3, 4, 5])
    }

    static func format2(_ v: Double) -> String {
        let hundredths = Int((v * 100).rounded())
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
    }
}
