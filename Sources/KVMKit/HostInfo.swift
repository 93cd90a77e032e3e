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
        let cpuinfo = readText(root + "/proc/cpuinfo") ?? ""
        let vendor = cpuinfoField("vendor_id", in: cpuinfo) ?? "unknown"
        let flags = Set((cpuinfoField("flags", in: cpuinfo) ?? "").split(separator: " ").map(String.init))
        return HostInfo(kernelRelease: release, kvmFlavour: servingBackend(root: root, cpuFlags: flags), cpuVendor: vendor)
    }

    /// The vendor module that serves /dev/kvm.  Only one can register with kvm.ko, but a module
    /// built into the kernel shows up in /sys/module (for its parameters) even when its
    /// hardware is absent, so presence alone is not enough:
    /// - a loadable module is in /sys/module only while loaded, and has `initstate` "live";
    /// - a built-in one (no `initstate`) serves only when the CPU has its extension: the kernel
    ///   clears the vmx/svm flag when it is missing or disabled.  PVM needs neither.
    /// When that still leaves several (or none match), all present are listed with "+", so the
    /// header shows the ambiguity rather than a guess.
    static func servingBackend(root: String, cpuFlags: Set<String>) -> String {
        let present = ["kvm_intel", "kvm_amd", "kvm_pvm"].filter { isDirectory(root + "/sys/module/" + $0) }
        let live = present.filter { readText(root + "/sys/module/\($0)/initstate")?.trimmedLine == "live" }
        if live.count == 1 { return live[0] }
        let builtIn = present.filter { readText(root + "/sys/module/\($0)/initstate") == nil }
        let hardware = ["kvm_intel": "vmx", "kvm_amd": "svm"]
        let usable = builtIn.filter { hardware[$0].map(cpuFlags.contains) ?? false }
        if live.isEmpty && usable.count == 1 { return usable[0] }
        return present.isEmpty ? "unknown" : present.joined(separator: "+")
    }

    private static func cpuinfoField(_ name: String, in cpuinfo: String) -> String? {
        cpuinfo.split(separator: "\n").first { $0.hasPrefix(name) && $0.dropFirst(name.count).first.map { $0 == " " || $0 == "\t" || $0 == ":" } == true }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { String($0).trimmedLine }
    }

    /// A module parameter such as kvm/ignore_msrs, or nil when absent.
    public static func moduleParameter(_ module: String, _ name: String, root: String = "") -> String? {
        readText("\(root)/sys/module/\(module)/parameters/\(name)")?.trimmedLine
    }
}

extension String {
    var trimmedLine: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" { s.removeLast() }
        return String(s)
    }
}
