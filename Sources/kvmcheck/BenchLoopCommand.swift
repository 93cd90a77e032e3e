// `kvmcheck __bench-loop raw|c|swift N`: the loop `bench --callgrind` counts instructions of.
import ArgumentParser
import CheckKit
import CKVM
import GuestKit
import KVMKit

/// `kvmcheck __bench-loop raw|c|swift N`: N single-step exits at CPL0 in one loop (for callgrind).
struct BenchLoop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__bench-loop", shouldDisplay: false)
    @Argument var kind: String
    @Argument var count: Int
    @OptionGroup var device: DeviceOptions

    func validate() throws {
        guard ["raw", "c", "swift"].contains(kind) else { throw ValidationError("__bench-loop: the kind is raw, c or swift, not \(messageQuoted(kind))") }
        guard count > 0 else { throw ValidationError("__bench-loop: the count must be positive") }
    }

    func run() throws {
        do {
            let g = try Guest(system: try KVMSystem(path: device.device), cpl: .cpl0) { a in
                a.label("loop"); for _ in 0..<8 { a.nop() }; a.jmp("loop")
            }
            try g.vcpu.setGuestDebug([.enable, .singleStep])
            switch kind {
            case "raw": try g.vcpu.runRawSyscallLoop(count: count, expecting: UInt32(KVM_EXIT_DEBUG))
            case "c": try g.vcpu.runCReferenceLoop(count: count, expecting: UInt32(KVM_EXIT_DEBUG))
            default: try g.vcpu.runSwiftLoop(count: count, expecting: UInt32(KVM_EXIT_DEBUG))
            }
        } catch { fail("\(error)", code: 1) }
    }
}
