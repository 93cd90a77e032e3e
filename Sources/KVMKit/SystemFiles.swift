// The small system helpers every layer uses (read a file, list a directory, is-directory):
// one copy, here because listing a directory reads a C struct through a pointer.
import Glibc
import SystemPackage

/// Why `readToEnd` stopped short.
public enum ReadToEndError: Error, Sendable, Equatable {
    case failed(Errno)
    /// More than the limit: the reader refuses to grow memory without bound.
    case tooLarge(limit: Int)
}

/// Reads `fd` to end of file, at most `limit` bytes.  EINTR is retried; a non-blocking
/// descriptor with nothing to read yet (a pipe on stdin) is waited for.
public func readToEnd(_ fd: CInt, limit: Int) -> Result<[UInt8], ReadToEndError> {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        // SAFETY: read(2) writes at most chunk.count bytes into chunk's own buffer.
        let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            if errno == EAGAIN {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&p, 1, -1)
                continue
            }
            return .failure(.failed(Errno(rawValue: errno)))
        }
        if n == 0 { return .success(bytes) }
        guard bytes.count + n <= limit else { return .failure(.tooLarge(limit: limit)) }
        bytes += chunk[..<n]
    }
}

/// A small file's text (procfs, sysfs, a setting), or nil when it cannot be opened or read or
/// is larger than `limit`.  With `followSymlinks: false` a final symlink is refused.
public func readText(_ path: String, limit: Int = 1 << 20, followSymlinks: Bool = true) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | (followSymlinks ? 0 : O_NOFOLLOW))
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return try? readToEnd(fd, limit: limit).map { String(decoding: $0, as: UTF8.self) }.get()
}

public func isDirectory(_ path: String) -> Bool {
    guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.directory, .closeOnExec]) else { return false }
    try? fd.close()
    return true
}

/// The names in a directory (without "." and ".."), sorted.
public func directoryEntries(_ path: String) throws(Errno) -> [String] {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw Errno(rawValue: errno) }
    defer { close(fd) }
    return try directoryEntries(fd: fd)
}

/// The names in the directory open as `fd` (which stays open and usable), sorted.
public func directoryEntries(fd: CInt) throws(Errno) -> [String] {
    let copy = dup(fd)
    guard copy >= 0 else { throw Errno(rawValue: errno) }
    guard let dir = fdopendir(copy) else { let e = errno; close(copy); throw Errno(rawValue: e) }
    defer { closedir(dir) }
    rewinddir(dir)
    var names: [String] = []
    while let entry = readdir(dir) {
        // SAFETY: d_name is a NUL-terminated array inside the dirent readdir returned, valid until the next readdir.
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}
