import CKVM
import SystemPackage

/// What kernel and KVM backend we are talking to, for the report header and skip reasons.
public struct HostInfo: Sendable, Equatable {
    public let kernelRelease: String
    /// kvm_intel, kvm_amd, kvm_pvm, or "unknown" (e.g. no KVM module loaded).
    public let kvmFlavour: String
    /// CPUID vendor string from /proc/cpuinfo (GenuineIntel, AuthenticAMD, …).
    public let cpuVendor: String

    public init(kernelRelease: String, kvmFlavour: String, cpuVendor: String) {
        self.kernelRelease = kernelRelease; self.kvmFlavour = kvmFlavour; self.cpuVendor = cpuVendor
    }

    /// Reads the running host; `root` lets tests point at a fake /proc and /sys tree.
    public static func current(root: String = "") -> HostInfo {
        let release = readText(root + "/proc/sys/kernel/osrelease")?.trimmedLine ?? "unknown"
        let flavours = ["kvm_intel", "kvm_amd", "kvm_pvm"].filter { isDirectory(root + "/sys/module/" + $0) }
        let cpuinfo = readText(root + "/proc/cpuinfo") ?? ""
        let vendor = cpuinfo.split(separator: "\n").first { $0.hasPrefix("vendor_id") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { String($0).trimmedLine } ?? "unknown"
        return HostInfo(kernelRelease: release, kvmFlavour: flavours.isEmpty ? "unknown" : flavours.joined(separator: "+"),
                        cpuVendor: vendor)
    }

    /// A module parameter such as kvm/ignore_msrs, or nil when absent.
    public static func moduleParameter(_ module: String, _ name: String, root: String = "") -> String? {
        readText("\(root)/sys/module/\(module)/parameters/\(name)")?.trimmedLine
    }
}

/// Small file helpers without Foundation.
public func readText(_ path: String) -> String? {
    guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly) else { return nil }
    defer { try? fd.close() }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        guard let n = try? chunk.withUnsafeMutableBytes({ try fd.read(into: $0) }), n > 0 else { break }
        bytes += chunk.prefix(n)
    }
    return String(decoding: bytes, as: UTF8.self)
}

public func isDirectory(_ path: String) -> Bool {
    guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.directory]) else { return false }
    try? fd.close()
    return true
}

extension String {
    var trimmedLine: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" { s.removeLast() }
        return String(s)
    }
}
