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

/// A pthread mutex and condition variable at stable addresses (a `pthread_mutex_t` stored in
/// a Swift property and passed with `&` has no address Swift promises to keep).
public final class ConditionLock: @unchecked Sendable {
    // SAFETY: both are allocated once here, initialized in init, destroyed and freed once in
    // deinit, and only ever passed to pthread calls.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` with the mutex held.
    public func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Inside withLock: waits for a broadcast, or at most `milliseconds` when given.
    public func wait(milliseconds: Int? = nil) {
        guard let milliseconds else { pthread_cond_wait(condition, mutex); return }
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_nsec += milliseconds * 1_000_000
        deadline.tv_sec += deadline.tv_nsec / 1_000_000_000
        deadline.tv_nsec %= 1_000_000_000
        pthread_cond_timedwait(condition, mutex, &deadline)
    }

    /// Inside withLock: wakes every waiter.
    public func broadcast() { pthread_cond_broadcast(condition) }
}
