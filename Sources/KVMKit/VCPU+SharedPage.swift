import CKVM

// Fields of the mmap'd kvm_run besides the exit: sync regs (kvm_run.s) and the proposed,
// unmerged fields a series under test adds.

extension VCPU {
    /// kvm_run.kvm_valid_regs: register classes the kernel should copy out on exit.
    public var syncValidRegs: SyncRegSet {
        // SAFETY: `shared` is mapped for the vCPU's lifetime; a plain u64 field.
        get { SyncRegSet(rawValue: shared.pointee.kvm_valid_regs) }
        set { shared.pointee.kvm_valid_regs = newValue.rawValue }
    }

    /// kvm_run.kvm_dirty_regs: register classes userspace changed in kvm_run.s.
    public var syncDirtyRegs: SyncRegSet {
        // SAFETY: as syncValidRegs.
        get { SyncRegSet(rawValue: shared.pointee.kvm_dirty_regs) }
        set { shared.pointee.kvm_dirty_regs = newValue.rawValue }
    }

    public var syncedRegs: kvm_regs {
        // SAFETY: `shared` is mapped for the vCPU's lifetime; s.regs is a plain struct in it.
        get { shared.pointee.s.regs.regs }
        set { shared.pointee.s.regs.regs = newValue }
    }

    public var syncedSregs: kvm_sregs {
        // SAFETY: as syncedRegs.
        get { shared.pointee.s.regs.sregs }
        set { shared.pointee.s.regs.sregs = newValue }
    }

    public var syncedEvents: kvm_vcpu_events {
        // SAFETY: as syncedRegs.
        get { shared.pointee.s.regs.events }
        set { shared.pointee.s.regs.events = newValue }
    }

    /// Fills kvm_run.s with one byte, so a later copy-out by the kernel is distinguishable from no copy.
    public func poisonSyncRegs(_ byte: UInt8) {
        // SAFETY: the buffer is exactly kvm_run.s (plain bytes, no references), inside the mapping.
        withUnsafeMutableBytes(of: &shared.pointee.s) { _ = $0.initializeMemory(as: UInt8.self, repeating: byte) }
    }

    /// Proposed (unmerged) per-exit-reason bitmap after kvm_run.s; lives in the mmap'd page.
    public var saveRegsOnExitBitmap: [UInt64] {
        get {
            // SAFETY: kvm_run is 2,352 bytes (pinned in ckvm.h) and the mapping at least a 4 KiB page, so the 16
            // words after it are mapped; the offset is 8-byte aligned.
            let p = UnsafeRawPointer(shared) + MemoryLayout<kvm_run>.size
            return (0..<Int(CKVM_SAVE_REGS_ON_EXIT_WORDS)).map { p.load(fromByteOffset: $0 * 8, as: UInt64.self) }
        }
        set {
            precondition(newValue.count == Int(CKVM_SAVE_REGS_ON_EXIT_WORDS), "bitmap is 16 words")
            // SAFETY: as the getter.
            let p = UnsafeMutableRawPointer(shared) + MemoryLayout<kvm_run>.size
            for (i, w) in newValue.enumerated() { p.storeBytes(of: w, toByteOffset: i * 8, as: UInt64.self) }
        }
    }

    /// The proposed kvm_debug_exit_arch.cr3 slot (8 bytes after dr7 in the exit union).
    public var debugExitCR3Slot: UInt64 {
        get {
            // SAFETY: the offset is inside kvm_run's 256-byte exit union (pinned by a _Static_assert
            // in ckvm.h); unaligned load because the union's alignment is not promised.
            (UnsafeRawPointer(shared) + Int(ckvm_debug_exit_cr3_offset)).loadUnaligned(as: UInt64.self)
        }
        set {
            // SAFETY: as the getter; storeBytes has no alignment requirement.
            (UnsafeMutableRawPointer(shared) + Int(ckvm_debug_exit_cr3_offset)).storeBytes(of: newValue, as: UInt64.self)
        }
    }
}
