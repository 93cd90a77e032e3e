import Glibc
import SystemPackage

// The system calls the harness makes through buffers and thread handles, typed here so the
// pointer work stays in KVMKit (each block with its reason); files and directories are in
// SystemFiles.swift.

public enum SystemIO {
    /// One write(2) of `bytes`: the count written, or -1 with errno set.
    public static func write(_ fd: CInt, _ bytes: ArraySlice<UInt8>) -> Int {
        // SAFETY: write(2) reads at most bytes.count bytes from the slice's own contiguous storage.
        bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    public static func write(_ fd: CInt, _ bytes: [UInt8]) -> Int { write(fd, bytes[...]) }

    /// One read(2) into `buffer` (up to its count): the count read, or -1 with errno set.
    public static func read(_ fd: CInt, into buffer: inout [UInt8]) -> Int {
        // SAFETY: read(2) writes at most buffer.count bytes into the array's own storage.
        buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
    }
}

/// A POSIX thread running one closure (no Foundation or Dispatch needed).  The thread holds
/// the closure (and what it captures) until it returns.
public final class PosixThread: @unchecked Sendable {
    private var thread = pthread_t()
    private var joined = false

    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    private init() {}

    /// Starts `body` on a new thread, or returns pthread_create's error (nothing started).
    public static func start(_ body: @escaping @Sendable () -> Void) -> Result<PosixThread, Errno> {
        let t = PosixThread()
        // SAFETY: the +1 reference passed as the thread argument is taken back exactly once: by the
        // thread when it starts, or below when it could not be created.
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        let rc = pthread_create(&t.thread, nil, { arg in
            Unmanaged<Body>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, box)
        guard rc == 0 else {
            // SAFETY: no thread took the reference: release it here, once.
            Unmanaged<Body>.fromOpaque(box).release()
            return .failure(Errno(rawValue: rc))
        }
        return .success(t)
    }

    /// Waits for the thread to end.  Idempotent.
    public func join() {
        guard !joined else { return }
        pthread_join(thread, nil)
        joined = true
    }
}
