import CKVM

/// Byte views of uAPI structs with padding zeroed, so "byte for byte" compares only
/// defined fields (the kernel fills fields, not padding, when it copies into kvm_run.s).
public enum UAPILayout {
    public static func significantBytes(_ s: kvm_sregs) -> [UInt8] {
        var c = s
        c.cs.padding = 0; c.ds.padding = 0; c.es.padding = 0; c.fs.padding = 0
        c.gs.padding = 0; c.ss.padding = 0; c.tr.padding = 0; c.ldt.padding = 0
        c.gdt.padding = (0, 0, 0)
        c.idt.padding = (0, 0, 0)
        return uapiBytes(of: c)
    }

    public static func significantBytes(_ r: kvm_regs) -> [UInt8] { uapiBytes(of: r) }

    public static func significantBytes(_ e: kvm_vcpu_events) -> [UInt8] { uapiBytes(of: e) }

    /// Names the kvm_sregs field holding byte `offset`, for failure messages.
    public static func sregsField(at offset: Int) -> String {
        let segments = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"]
        let segmentSize = MemoryLayout<kvm_segment>.size
        if offset < segments.count * segmentSize {
            return "\(segments[offset / segmentSize]) +\(offset % segmentSize)"
        }
        let fields: [(String, PartialKeyPath<kvm_sregs>)] = [
            ("gdt", \.gdt), ("idt", \.idt), ("cr0", \.cr0), ("cr2", \.cr2), ("cr3", \.cr3), ("cr4", \.cr4),
            ("cr8", \.cr8), ("efer", \.efer), ("apic_base", \.apic_base), ("interrupt_bitmap", \.interrupt_bitmap),
        ]
        let starts = fields.map { ($0.0, MemoryLayout<kvm_sregs>.offset(of: $0.1)!) }
        let hit = starts.last { $0.1 <= offset }!
        return "\(hit.0) +\(offset - hit.1)"
    }

    /// Names the kvm_regs field holding byte `offset`.
    public static func regsField(at offset: Int) -> String {
        let names = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
                     "r14", "r15", "rip", "rflags"]
        return offset / 8 < names.count ? "\(names[offset / 8]) +\(offset % 8)" : "byte \(offset)"
    }

    /// Names the kvm_vcpu_events field holding byte `offset`.
    public static func eventsField(at offset: Int) -> String {
        let fields: [(String, PartialKeyPath<kvm_vcpu_events>)] = [
            ("exception", \.exception), ("interrupt", \.interrupt), ("nmi", \.nmi), ("sipi_vector", \.sipi_vector),
            ("flags", \.flags), ("smi", \.smi), ("reserved/triple_fault", \.reserved), ("exception_has_payload", \.exception_has_payload),
            ("exception_payload", \.exception_payload),
        ]
        let starts = fields.compactMap { f in MemoryLayout<kvm_vcpu_events>.offset(of: f.1).map { (f.0, $0) } }
        let hit = starts.last { $0.1 <= offset } ?? ("byte", 0)
        return "\(hit.0) +\(offset - hit.1)"
    }
}
