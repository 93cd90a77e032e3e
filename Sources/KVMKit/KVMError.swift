import CKVM
import Glibc
@_exported import struct SystemPackage.Errno
import SystemPackage

/// A failed KVM operation: which ioctl (or syscall) and the errno the kernel gave.
public struct KVMError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// The named ioctl/syscall returned -1 with this errno.
        case failed(errno: Errno)
        /// KVM_RUN was interrupted by the watchdog: the guest did not exit in time.
        case watchdogExpired(milliseconds: Int)
        /// The kernel returned something the uAPI does not allow (e.g. a short mmap size).
        case protocolViolation(String)
    }

    public let operation: String
    public let kind: Kind

    public init(_ operation: String, _ kind: Kind) {
        self.operation = operation
        self.kind = kind
    }

    public var errno: Errno? {
        if case .failed(let e) = kind { return e }
        return nil
    }

    /// "EINVAL" for a failed ioctl, else the full description (for compact reports).
    public var shortName: String { errno?.symbolicName ?? description }

    public var description: String {
        switch kind {
        case .failed(let e): return "\(operation) failed: \(e.symbolicName) (\(e.message))"
        case .watchdogExpired(let ms): return "\(operation) did not return within \(ms) ms (watchdog)"
        case .protocolViolation(let why): return "\(operation): \(why)"
        }
    }
}

extension Errno {
    /// The errno macro name, e.g. "EINVAL", as kernel developers read it.
    public var symbolicName: String {
        ckvm_errno_name(rawValue).map { String(cString: $0) } ?? "errno \(rawValue)"
    }

    /// strerror(3) text.
    public var message: String { String(cString: ckvm_strerror(rawValue)) }
}

/// Turns a shim result (>= 0 or -errno) into a value or a typed error.
@inline(__always)
func checked(_ result: Int, _ operation: String) throws(KVMError) -> Int {
    if result < 0 { throw KVMError(operation, .failed(errno: Errno(rawValue: CInt(-result)))) }
    return result
}

/// As `checked`, as a value: the shape of the `try…` calls that probe expected failures.
@inline(__always)
func attempt(_ result: Int, _ operation: String) -> Result<Int, KVMError> {
    result < 0 ? .failure(KVMError(operation, .failed(errno: Errno(rawValue: CInt(-result))))) : .success(result)
}

extension Result where Failure == KVMError {
    /// The error of a `try…` call that failed, nil if it succeeded.
    public var error: KVMError? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
