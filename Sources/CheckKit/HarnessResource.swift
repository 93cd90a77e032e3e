import KVMKit
import SystemPackage

/// Tells a refusal of the harness's own resources (file descriptors, threads, timers) from a
/// kernel verdict.  With `ulimit -n 5` or `ulimit -u 2` the checks cannot be run at all; saying
/// "KVM_RUN did not return (watchdog)" or "KVM_CREATE_VM failed" would blame the kernel.
public enum HarnessResource {
    /// Errnos that mean "this process may not have another one" whatever the operation.
    static let exhausted: Set<Errno> = [.tooManyOpenFiles, .tooManyOpenFilesInSystem]
    /// Operations of the harness itself (not KVM ioctls) whose EAGAIN means a thread/timer limit.
    static let ownOperations = ["timer_create", "pthread_create", "posix_spawn"]

    /// Why `error` is the harness's own resource failure, or nil when it is an ordinary error.
    public static func refusal(_ error: any Error) -> String? {
        guard let e = error as? KVMError, let errno = e.errno else { return nil }
        if exhausted.contains(errno) {
            return "\(e.operation): \(errno.symbolicName): the process's file descriptor limit (RLIMIT_NOFILE) is exhausted"
        }
        if errno == .resourceTemporarilyUnavailable, ownOperations.contains(where: { e.operation.hasPrefix($0) }) {
            return "\(e.operation): EAGAIN: the harness could not create a thread or timer (RLIMIT_NPROC or RLIMIT_SIGPENDING)"
        }
        return nil
    }
}
