import FoundationEssentials
import Glibc
import KVMKit

/// `kvmcheck run --coverage DIR`: the running kernel's gcov counters for its KVM code, one set
/// per check.  Before each check's child starts, every counter is zeroed
/// (`/sys/kernel/debug/gcov/reset`); after the child ends, the KVM `.gcda` files are copied to
/// `DIR/<check directory>/<path under the gcov root>`, and `DIR/index.json` maps check ids to
/// directories.  `ci/coverage-report` turns that into per-series patch coverage.
///
/// The counters are kernel-global, so checks must run one at a time (the run forces --jobs 1).
/// kvmcheck runs as root: DIR is created 0700 (or must be an empty directory this user owns),
/// is never followed through a symlink, and everything below it is created relative to its
/// descriptor with O_NOFOLLOW/O_EXCL, so nothing can steer the writes elsewhere.
public final class CoverageCollector: @unchecked Sendable {
    public static let defaultGcovRoot = "/sys/kernel/debug/gcov"
    /// Only KVM's objects: a kernel profiled whole (GCOV_PROFILE_ALL) would otherwise copy
    /// thousands of files per check.
    static let kvmDirectories = ["/arch/x86/kvm/", "/virt/kvm/"]

    public let directory: String
    let gcovRoot: String
    private let dirFD: CInt
    private var entries: [(id: String, directory: String, files: Int)] = []
    /// What the header should say (debugfs mounted, where the counters go).
    public private(set) var notes: [String] = []

    /// The directory name for a check id: bytes outside `[A-Za-z0-9._-]` become `%XX`, so `/`
    /// is `%2F` and the name is one path component, distinct for distinct ids, and reversible.
    public static func directoryName(for checkID: String) -> String {
        var name = ""
        for byte in checkID.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if byte < 0x80 && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-") {
                name.append(c)
            } else {
                name += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        switch name { case ".": return "%2E"; case "..": return "%2E%2E"; default: return name }
    }

    /// Where debugfs is mounted by `locateGcov` when it was not; the run unmounts it at its end.
    public static let debugfsPath = "/sys/kernel/debug"

    /// Where the running kernel keeps its counters, mounting debugfs when the kernel has gcov
    /// but debugfs is not mounted (a note says so; `releaseDebugfs` puts it back).  A failure,
    /// with why, when the kernel has no gcov.
    public static func locateGcov(root: String = defaultGcovRoot, notes: inout [String]) -> Result<String, CoverageUnavailable> {
        if isDirectory(root) { return .success(root) }
        let debugfs = debugfsPath
        guard root == defaultGcovRoot, isDirectory(debugfs), !isMountPoint(debugfs) else {
            return .failure(CoverageUnavailable("\(root) does not exist: this kernel has no CONFIG_GCOV_KERNEL (or no profiled code)"))
        }
        guard mount("debugfs", debugfs, "debugfs", 0, nil) == 0 else {
            return .failure(CoverageUnavailable("cannot mount debugfs on \(debugfs) to look for \(root): \(Errno(rawValue: errno).symbolicName)"))
        }
        guard isDirectory(root) else {
            umount(debugfs) // put the system back as it was: nothing here needs it
            return .failure(CoverageUnavailable("\(root) does not exist: this kernel has no CONFIG_GCOV_KERNEL (or no profiled code)"))
        }
        notes.append(mountedNote)
        return .success(root)
    }

    static let mountedNote = "coverage: mounted debugfs on \(debugfsPath) (it was not mounted; unmounted at the end of the run)"

    /// Unmounts debugfs if `locateGcov` mounted it (its notes say so): the run leaves the system
    /// as it found it.
    public static func releaseDebugfs(notes: [String]) {
        if notes.contains(mountedNote) { umount(debugfsPath) }
    }

    /// Opens (creating 0700) the output directory.  Refused: a symlink, anything but a
    /// directory, a directory another user owns or others may write to, and a non-empty one
    /// (counters from an earlier run would be read as this run's).
    public init(directory: String, gcovRoot: String, notes: [String] = []) throws(CoverageError) {
        guard !directory.isEmpty else { throw CoverageError("--coverage: empty directory name") }
        self.directory = directory
        self.gcovRoot = gcovRoot
        self.notes = notes
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw CoverageError("--coverage \(directory): cannot create it: \(Errno(rawValue: errno).symbolicName)")
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let why = errno == ELOOP || errno == ENOTDIR ? "not a directory (or a symlink); refusing to write through it" : Errno(rawValue: errno).symbolicName
            throw CoverageError("--coverage \(directory): \(why)")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw CoverageError("--coverage \(directory): \(Errno(rawValue: errno).symbolicName)") }
        guard st.st_uid == geteuid() else {
            close(fd)
            throw CoverageError("--coverage \(directory): owned by uid \(st.st_uid), not by this user (uid \(geteuid())); refusing to write there")
        }
        guard st.st_mode & 0o022 == 0 else {
            close(fd)
            throw CoverageError("--coverage \(directory): writable by group or others (mode \(String(st.st_mode & 0o777, radix: 8))); refusing to write there")
        }
        guard Self.entryNames(fd).isEmpty else {
            close(fd)
            throw CoverageError("--coverage \(directory): not empty; give a new or empty directory (old counters would be mixed with this run's)")
        }
        dirFD = fd
        self.notes.append("coverage: per-check gcov counters from \(gcovRoot) into \(directory) (checks run one at a time: the counters are kernel-global)")
    }

    deinit { close(dirFD) }

    /// Zeroes every gcov counter in the kernel; a note when it could not.
    public func reset() -> String? {
        let fd = open(gcovRoot + "/reset", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return "coverage: cannot open \(gcovRoot)/reset: \(Errno(rawValue: errno).symbolicName); counters include earlier checks" }
        defer { close(fd) }
        let n = write(fd, "1", 1)
        return n == 1 ? nil : "coverage: writing \(gcovRoot)/reset failed: \(Errno(rawValue: errno).symbolicName); counters include earlier checks"
    }

    /// Copies the KVM `.gcda` files into the check's directory and rewrites index.json; notes
    /// on whatever could not be copied (the check's verdict does not depend on it).
    public func collect(checkID: String) -> [String] {
        let name = Self.directoryName(for: checkID)
        var problems: [String] = []
        guard mkdirat(dirFD, name, 0o700) == 0 else {
            return ["coverage: cannot create \(directory)/\(name): \(Errno(rawValue: errno).symbolicName)"]
        }
        let target = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard target >= 0 else { return ["coverage: cannot open \(directory)/\(name): \(Errno(rawValue: errno).symbolicName)"] }
        defer { close(target) }
        var copied = 0
        for relative in Self.counterFiles(under: gcovRoot) {
            do throws(CoverageError) {
                let data = try Self.readFile(gcovRoot + "/" + relative)
                try Self.writeFile(data, at: relative.split(separator: "/").map(String.init), under: target)
                copied += 1
            } catch {
                problems.append("coverage: \(relative): \(error)")
            }
        }
        entries.append((checkID, name, copied))
        if let why = writeIndex() { problems.append(why) }
        if copied == 0 && problems.isEmpty { problems.append("coverage: no KVM .gcda files under \(gcovRoot) (is KVM built with GCOV_PROFILE?)") }
        return problems
    }

    /// `index.json`: the check ids in run order and their directories, written to a temporary
    /// name and renamed, so a run stopped midway leaves a complete index of what it collected.
    func writeIndex() -> String? {
        let index = CoverageIndex(format: "kvmcheck-coverage/1", gcovRoot: gcovRoot, kernel: kernelRelease(),
                                  checks: entries.map { CoverageIndex.Check(id: $0.id, directory: $0.directory, files: $0.files) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(index) else { return "coverage: index.json: cannot encode" }
        let json = String(decoding: data, as: UTF8.self) + "\n"
        let temporary = ".index.json.tmp"
        unlinkat(dirFD, temporary, 0)
        do throws(CoverageError) {
            try Self.writeFile(Array(json.utf8), at: [temporary], under: dirFD)
        } catch { return "coverage: index.json: \(error)" }
        guard renameat(dirFD, temporary, dirFD, "index.json") == 0 else {
            return "coverage: index.json: rename failed: \(Errno(rawValue: errno).symbolicName)"
        }
        return nil
    }

    /// The `.gcda` files of KVM objects under `root`, as paths relative to it (symlinks, such
    /// as the `.gcno` links debugfs makes, are not followed).
    static func counterFiles(under root: String) -> [String] {
        var found: [String] = []
        func walk(_ relative: String) {
            let path = relative.isEmpty ? root : root + "/" + relative
            guard let names = try? directoryEntries(path) else { return }
            for name in names {
                let child = relative.isEmpty ? name : relative + "/" + name
                var st = stat()
                guard lstat(root + "/" + child, &st) == 0 else { continue }
                switch st.st_mode & S_IFMT {
                case S_IFDIR: walk(child)
                case S_IFREG where name.hasSuffix(".gcda") && kvmDirectories.contains(where: { ("/" + child).contains($0) }):
                    found.append(child)
                default: continue
                }
            }
        }
        walk("")
        return found.sorted()
    }

    /// A debugfs file's bytes (stat says size 0: read to end of file).
    static func readFile(_ path: String) throws(CoverageError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw CoverageError("cannot read: \(Errno(rawValue: errno).symbolicName)") }
        defer { close(fd) }
        do { return try TextInput.readAll(fd: fd, name: path, limit: 64 << 20) } catch { throw CoverageError("\(error)") }
    }

    /// Writes `data` to `components` below the directory `base`, creating directories 0700 on
    /// the way; every step is relative to its parent's descriptor and refuses symlinks.
    static func writeFile(_ data: [UInt8], at components: [String], under base: CInt) throws(CoverageError) {
        guard let leaf = components.last, components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw CoverageError("unusable path \(components.joined(separator: "/"))")
        }
        var parent = dup(base)
        defer { close(parent) }
        for component in components.dropLast() {
            if mkdirat(parent, component, 0o700) != 0 && errno != EEXIST {
                throw CoverageError("cannot create directory \(component): \(Errno(rawValue: errno).symbolicName)")
            }
            let next = openat(parent, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { throw CoverageError("cannot open directory \(component): \(Errno(rawValue: errno).symbolicName)") }
            close(parent)
            parent = next
        }
        let fd = openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoverageError("cannot create \(leaf): \(Errno(rawValue: errno).symbolicName)") }
        defer { close(fd) }
        var rest = data[...]
        while !rest.isEmpty {
            let n = SystemIO.write(fd, rest)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CoverageError("write failed: \(Errno(rawValue: errno).symbolicName)") }
            rest = rest.dropFirst(n)
        }
    }

    static func entryNames(_ fd: CInt) -> [String] { (try? directoryEntries(fd: fd)) ?? ["?"] }

    /// A mount point has a different device than its parent.
    static func isMountPoint(_ path: String) -> Bool {
        var here = stat(), parent = stat()
        return stat(path, &here) == 0 && stat(path + "/..", &parent) == 0 && here.st_dev != parent.st_dev
    }

    func kernelRelease() -> String { HostInfo.current().kernelRelease }
}

/// `DIR/index.json`, read by ci/coverage-report.
struct CoverageIndex: Codable {
    struct Check: Codable { var id, directory: String; var files: Int }
    var format, gcovRoot, kernel: String
    var checks: [Check]
}

public struct CoverageError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

public struct CoverageUnavailable: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
