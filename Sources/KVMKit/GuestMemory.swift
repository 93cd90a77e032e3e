import CKVM
import SystemPackage

/// Host memory that backs a guest-physical range.  All access is bounds-checked.
public final class GuestMemory {
    public let guestPhysical: UInt64
    public let size: Int
    /// SAFETY: the anonymous mapping, `size` bytes, valid from init to deinit; every access
    /// below goes through `offset`, which bounds-checks it.
    private let base: UnsafeMutableRawPointer

    init(guestPhysical: UInt64, size: Int) throws(KVMError) {
        var err: CInt = 0
        guard let p = ckvm_mmap_anonymous(size, &err) else {
            throw KVMError("mmap(\(size) bytes)", .failed(errno: Errno(rawValue: err)))
        }
        self.guestPhysical = guestPhysical
        self.size = size
        self.base = p
    }

    // SAFETY: `base` is the mapping made in init, of `size` bytes; nothing uses it after this.
    deinit { _ = ckvm_munmap(base, size) }

    /// For KVM_SET_USER_MEMORY_REGION (an integer, not dereferenced here).
    var hostAddress: UInt64 { UInt64(UInt(bitPattern: base)) }

    public func contains(_ gpa: UInt64, count: Int) -> Bool {
        gpa >= guestPhysical && gpa - guestPhysical + UInt64(count) <= UInt64(size)
    }

    private func offset(_ gpa: UInt64, _ count: Int) -> Int {
        precondition(contains(gpa, count: count),
                     "guest access [\(hex(gpa)), +\(count)) outside region at \(hex(guestPhysical)) of \(size) bytes")
        return Int(gpa - guestPhysical)
    }

    public func write(_ bytes: [UInt8], at gpa: UInt64) {
        let o = offset(gpa, bytes.count)
        guard !bytes.isEmpty else { return }
        // SAFETY: [o, o + count) is inside the mapping (offset checked it); the source is the array's own buffer.
        bytes.withUnsafeBytes { (base + o).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    public func read(at gpa: UInt64, count: Int) -> [UInt8] {
        let o = offset(gpa, count)
        // SAFETY: [o, o + count) is inside the mapping (offset checked it); the bytes are copied out.
        return Array(UnsafeRawBufferPointer(start: base + o, count: count))
    }

    public func store<T: FixedWidthInteger>(_ value: T, at gpa: UInt64) {
        let o = offset(gpa, MemoryLayout<T>.size)
        // SAFETY: the value's bytes are inside the mapping (offset checked it); storeBytes needs no alignment.
        (base + o).storeBytes(of: value.littleEndian, toByteOffset: 0, as: T.self)
    }

    public func load<T: FixedWidthInteger>(_ type: T.Type = T.self, at gpa: UInt64) -> T {
        let o = offset(gpa, MemoryLayout<T>.size)
        // SAFETY: the value's bytes are inside the mapping (offset checked it); an unaligned load.
        return T(littleEndian: (base + o).loadUnaligned(as: T.self))
    }

    public func fill(_ byte: UInt8, at gpa: UInt64, count: Int) {
        let o = offset(gpa, count)
        // SAFETY: [o, o + count) is inside the mapping (offset checked it) and holds plain bytes.
        (base + o).initializeMemory(as: UInt8.self, repeating: byte, count: count)
    }
}
