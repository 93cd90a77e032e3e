import CKVM
import Glibc
import MutantIDs

/// Which mutants changed something in this process, in the order they first did.
///
/// Why: MutantTests runs the mutants that do not name a suite all at once over that suite
/// instead of one run each.  Up to the first change any mutant makes, such a run *is* the plain
/// run, call for call; so a mutant that never changed anything in a check's process would have
/// seen the same calls alone and changed nothing there either: that check's verdict under it is
/// the plain one.  Whether a mutant changed something is judged here, around it, not by trusting
/// its body: what it passed on against what it got (the argument's bytes, kvm_run, the call
/// itself), what it returned against what the kernel returned, how often it forwarded, and the
/// writing ioctls it made on the side.  Doubts count as changes (they only cost a separate run).
public enum ActionTrace {
    nonisolated(unsafe) public private(set) static var acted: [MutantID] = []
    /// Writing ioctls the doubles made on the side (see realIoctl).
    nonisolated(unsafe) static var sideWrites = 0

    static func reset() { acted = []; sideWrites = 0 }
    static func record(_ id: MutantID) { if !acted.contains(id) { acted.append(id) } }

    public static let notePrefix = "kernel mutants that changed a call (first first): "
    /// The line a check's child adds to its notes (nil when no mutant changed anything).
    public static var note: String? { acted.isEmpty ? nil : notePrefix + acted.map(\.rawValue).joined(separator: ", ") }

    /// Runs mutant `id`'s handler on `call` (`next` is the rest of the chain) and records
    /// whether it changed anything, at the moment it did: a change to what it passes on (or a
    /// second forward, or a write on the side) before the rest of the chain runs, a change to
    /// what it returns when it returns.  So `acted.first` is the first change in the process:
    /// the mutants the chain had not reached yet saw the plain run until then.
    static func watching(_ id: MutantID, _ call: IoctlCall, _ handle: ((IoctlCall) -> Int) -> Int,
                         next: @escaping (IoctlCall) -> Int) -> Int {
        let entry = Snapshot(call)
        // kvm_run's sync state (kvm_dirty_regs, s) is written by other threads of a check while
        // KVM_RUN runs (the sync-regs racers), so its bytes cannot show who changed them: the
        // comparisons leave them out, and the mutants that write them record their changes
        // themselves (SyncRegs.swift; a new one must too).
        func same(_ a: Snapshot?, _ b: Snapshot) -> Bool { a.map { call.run != nil ? $0.equalOutsideSyncState(b) : $0 == b } ?? false }
        let writesBefore = sideWrites
        var forwards = 0, writesInside = 0
        var inner: (result: Int, after: Snapshot)?
        let r = handle { passed in // (what the mutant passes on to the rest of the chain)
            forwards += 1
            let unchanged = passed.fd == call.fd && passed.request == call.request && passed.arg == call.arg
                && same(Snapshot(passed, room: entry.room), entry)
            if forwards > 1 || !unchanged || sideWrites - writesBefore - writesInside != 0 { record(id) }
            let w = sideWrites
            let x = next(passed)
            writesInside += sideWrites - w
            inner = (x, Snapshot(passed, room: entry.room))
            return x
        }
        let ownWrites = sideWrites - writesBefore - writesInside
        if forwards != 1 || inner?.result != r || !same(inner?.after, Snapshot(call, room: entry.room)) || ownWrites != 0 { record(id) }
        return r
    }
}

/// The bytes a mutant could change in a call: kvm_run for KVM_RUN, else the argument struct
/// (its size is in the request number), with the variable-length parts the doubles touch
/// (MSR entries, index and register lists) and the value a ONE_REG call points at.
/// A new mutant that edits some other memory must add it here.
struct Snapshot: Equatable {
    var bytes: [UInt8] = []
    /// False where a ONE_REG value address is not readable (the EFAULT checks pass bad ones).
    var readable = true
    /// Entries the caller made room for in a variable-length list, as the count said at entry
    /// (the kernel rewrites the count, e.g. to the size it needs with E2BIG: never read past the room).
    var room = 0

    static func == (a: Snapshot, b: Snapshot) -> Bool {
        guard a.bytes.count == b.bytes.count, a.readable == b.readable else { return false }
        // SAFETY: both buffers hold the same number of bytes.
        return a.bytes.withUnsafeBytes { x in b.bytes.withUnsafeBytes { y in x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
    }

    /// kvm_run.exit_reason, kvm_run.kvm_dirty_regs and kvm_run.s: what userspace threads may write
    /// while KVM_RUN runs (the sync-regs racers; exit_reason: the conditional-sync guard's race).
    /// In ascending order, not overlapping.
    static let syncState: [Range<Int>] = [
        MemoryLayout<kvm_run>.offset(of: \kvm_run.exit_reason)!..<MemoryLayout<kvm_run>.offset(of: \kvm_run.exit_reason)! + 4,
        MemoryLayout<kvm_run>.offset(of: \kvm_run.kvm_dirty_regs)!..<MemoryLayout<kvm_run>.offset(of: \kvm_run.kvm_dirty_regs)! + 8,
        MemoryLayout<kvm_run>.offset(of: \kvm_run.s)!..<MemoryLayout<kvm_run>.size,
    ]

    /// Equal except in the sync state (a KVM_RUN snapshot starts with kvm_run).
    func equalOutsideSyncState(_ other: Snapshot) -> Bool {
        guard bytes.count == other.bytes.count, readable == other.readable else { return false }
        let skipped = Snapshot.syncState
        let starts = [0] + skipped.map(\.upperBound), ends = skipped.map(\.lowerBound) + [bytes.count]
        let kept = zip(starts, ends).map { $0..<$1 }
        // SAFETY: both buffers hold bytes.count bytes and every kept range lies inside them.
        return bytes.withUnsafeBytes { a in
            other.bytes.withUnsafeBytes { b in
                kept.allSatisfy { $0.isEmpty || memcmp(a.baseAddress! + $0.lowerBound, b.baseAddress! + $0.lowerBound, $0.count) == 0 }
            }
        }
    }

    init(_ call: IoctlCall, room entryRoom: Int? = nil) {
        if let run = call.run {
            // SAFETY: run maps a whole page; kvm_run and the conditional bitmap after it fit in it.
            append(UnsafeRawPointer(run), MemoryLayout<kvm_run>.size + Int(CKVM_SAVE_REGS_ON_EXIT_WORDS) * 8)
        }
        guard let arg = call.arg, call.request != CKVM_REQ_CHECK_EXTENSION, call.request != CKVM_REQ_RUN else { return }
        let fixed = Int((call.request >> 16) & 0x3FFF) // _IOC_SIZE
        // SAFETY: the request's _IOC_SIZE is the size of the struct the caller passed.
        append(UnsafeRawPointer(arg), fixed)
        let limit = 4096 // entries; every list a check passes is smaller
        switch call.request {
        case CKVM_REQ_GET_MSRS, CKVM_REQ_SET_MSRS:
            // SAFETY: struct kvm_msrs is followed by the nmsrs entries the caller allocated (counted at entry).
            room = entryRoom ?? min(Int(arg.load(as: UInt32.self)), limit)
            append(UnsafeRawPointer(arg) + MemoryLayout<kvm_msrs>.size, room * MemoryLayout<kvm_msr_entry>.stride)
        case CKVM_REQ_GET_MSR_INDEX_LIST:
            // SAFETY: struct kvm_msr_list is followed by room for nmsrs indices (counted at entry).
            room = entryRoom ?? min(Int(arg.load(as: UInt32.self)), limit)
            append(UnsafeRawPointer(arg) + MemoryLayout<kvm_msr_list>.size, room * 4)
        case CKVM_REQ_GET_REG_LIST:
            // SAFETY: struct kvm_reg_list is followed by room for n ids (counted at entry).
            room = entryRoom ?? min(Int(arg.load(as: UInt64.self)), limit)
            append(UnsafeRawPointer(arg) + MemoryLayout<kvm_reg_list>.size, room * 8)
        case CKVM_REQ_GET_NESTED_STATE, CKVM_REQ_SET_NESTED_STATE:
            // SAFETY: kvm_nested_state's size field (at entry) is how many bytes the caller's buffer holds, header included.
            let header = Int(CKVM_NESTED_STATE_HEADER_SIZE)
            room = entryRoom ?? min(Int(arg.load(fromByteOffset: 4, as: UInt32.self)), header + 2 * 4096)
            append(UnsafeRawPointer(arg) + header, max(room - header, 0))
        case CKVM_REQ_GET_ONE_REG, CKVM_REQ_SET_ONE_REG:
            // SAFETY: ONE_REG's argument is a struct kvm_one_reg (its _IOC_SIZE, read just above).
            let reg = arg.load(as: kvm_one_reg.self)
            // The doubles edit 64-bit register values only: their 8 bytes (or fewer) are what can change.
            let size = 1 << Int((reg.id >> 52) & 0xF) // KVM_REG_SIZE
            if let copy = SafeRead.bytes(at: UInt(reg.addr), count: min(size, 8)) { bytes += copy } else { readable = false }
        default:
            break
        }
    }

    // SAFETY: every caller above passes a range it showed to be the caller's memory.
    private mutating func append(_ p: UnsafeRawPointer, _ count: Int) {
        bytes += UnsafeRawBufferPointer(start: p, count: count)
    }
}

/// Reads memory that may not be mapped (a ONE_REG address a check made bad on purpose) without
/// faulting: the kernel copies it into a pipe and says EFAULT if it cannot.
enum SafeRead {
    nonisolated(unsafe) private static var pipeFDs: (CInt, CInt)? = {
        var fds: [CInt] = [-1, -1]
        // Blocking is harmless: at most 256 bytes go into an empty pipe and come straight back out.
        return pipe(&fds) == 0 ? (fds[0], fds[1]) : nil
    }()

    static func bytes(at address: UInt, count: Int) -> [UInt8]? {
        guard address != 0, let (readEnd, writeEnd) = pipeFDs else { return nil }
        // SAFETY: write(2) only reads [address, address+count) and fails with EFAULT where it is not mapped.
        let written = write(writeEnd, UnsafeRawPointer(bitPattern: address), count)
        var out = [UInt8](repeating: 0, count: count)
        if written > 0 { _ = read(readEnd, &out, written) } // drained even when short, so no byte is left behind
        return written == count ? out : nil
    }
}
