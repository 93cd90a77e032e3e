import CheckKit
import Reporting
import SeriesPlan
import Foundation
import CKVM
import GuestKit
import KVMKit
import Testing
import X86Asm

@Suite struct LayoutTests {
    @Test func uapiLayoutsArePinned() {
        #expect(MemoryLayout<kvm_run>.size == 2352)
        #expect(MemoryLayout<kvm_run>.offset(of: \kvm_run.exit_reason) == 8)
        #expect(MemoryLayout<kvm_run>.offset(of: \kvm_run.kvm_valid_regs) == 288)
        #expect(MemoryLayout<kvm_debug_exit_arch>.size == 32)
        #expect(MemoryLayout<ckvm_debug_exit_arch_cr3>.offset(of: \ckvm_debug_exit_arch_cr3.cr3) == 32)
        #expect(MemoryLayout<kvm_regs>.size == 144 && MemoryLayout<kvm_sregs>.size == 312)
    }

    @Test func oneRegIdsMatchTheUAPIDocumentation() {
        #expect(X86RegID.msr(0xC000_0080) == 0x2030_0002_C000_0080)
        #expect(X86RegID.msr(0x1D9) == 0x2030_0002_0000_01D9)
        #expect(X86RegID.guestSSP == 0x2030_0003_0000_0000)
    }

    @Test func fieldNamesForFailureMessages() {
        #expect(UAPILayout.sregsField(at: 280) == "interrupt_bitmap +0")
        #expect(UAPILayout.sregsField(at: 24 + 3) == "ds +3")
        #expect(UAPILayout.regsField(at: 8 * 16) == "rip +0")
    }

    @Test func significantBytesIgnorePaddingOnly() {
        var a = kvm_sregs(), b = kvm_sregs()
        b.gdt.padding = (1, 2, 3)
        b.cs.padding = 9
        #expect(UAPILayout.significantBytes(a) == UAPILayout.significantBytes(b))
        a.cr3 = 0x1000
        #expect(UAPILayout.significantBytes(a) != UAPILayout.significantBytes(b))
    }
}

@Suite struct SelectionTests {
    let suites = SuiteRegistry.all()

    @Test func suitesRegisterThemselves() {
        #expect(suites.map(\.name).contains("sync-regs"))
        #expect(suites.map(\.name).contains("one-reg"))
        #expect(!suites.map(\.name).contains("_harness"))
        #expect(SuiteRegistry.all(includeHidden: true).map(\.name).contains("_harness"))
    }

    @Test func checkIdsAreUniqueAndEveryCheckNamesItsUAPI() {
        let instances = SuiteRegistry.all(includeHidden: true).flatMap(\.instances)
        #expect(Set(instances.map(\.id)).count == instances.count)
        for suite in suites { for check in suite.checks { #expect(!check.uapi.isEmpty, "\(suite.name)/\(check.name)") } }
    }

    @Test func everySuiteHasAPatchManifest() {
        for suite in suites {
            let path = repositoryRoot.appendingPathComponent("patches/\(suite.series).md").path
            #expect(FileManager.default.fileExists(atPath: path), "\(suite.name) names patches/\(suite.series).md")
        }
    }

    @Test func levelsAndFiltersNarrowTheRun() throws {
        let cpl3 = try select(Selection(suites: ["sync-regs"], levels: [.cpl3]), from: suites)
        #expect(cpl3.count == 1)
        #expect(cpl3[0].1.allSatisfy { $0.cpl != .cpl0 })
        #expect(cpl3[0].1.contains { $0.id == "sync-regs/synced_regs_equal_get_regs/cpl3" })
        let filtered = try select(Selection(filters: ["*/vm_fd_*"]), from: suites)
        #expect(filtered.flatMap(\.1).map(\.id) == ["one-reg/vm_fd_enotty"])
        #expect(throws: SelectionError.self) { try select(Selection(suites: ["nope"]), from: suites) }
    }

    @Test func globMatching() {
        #expect(globMatch("sync-regs/*cpl3", "sync-regs/a/cpl3"))
        #expect(!globMatch("sync-regs/*cpl3", "sync-regs/a/cpl0"))
        #expect(globMatch("vm_fd", "one-reg/vm_fd_enotty"), "no wildcard: substring")
        #expect(globMatch("a?c", "abc") && !globMatch("a?c", "abbc"))
    }

    @Test func anAdvertisedUAPIItsChecksFindAbsentIsBroken() {
        let rows = [CapsRow(level: .cpl0, status: .absent, decidedBy: "s/c/cpl0", detail: "EINVAL"),
                    CapsRow(level: .cpl3, status: .present, decidedBy: "s/c/cpl3", detail: "passed: s/c/cpl3"),
                    CapsRow(level: nil, status: .untestable, decidedBy: "s/d", detail: "cannot be observed here: x")]
        let claimed = Feature.judged(rows, advertised: true)
        #expect(claimed.map(\.status) == [.broken, .present, .untestable])
        #expect(claimed[0].detail == "advertised, but EINVAL" && claimed[0].decidedBy == "s/c/cpl0")
        #expect(Feature.judged(rows, advertised: false) == rows, "not advertised: absent stays absent")
        #expect(Feature.judged(rows, advertised: nil) == rows, "no capability: absent stays absent")
    }
}

@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct GuestEnvironmentTests {
    @Test(arguments: GuestCPL.allCases)
    func ucallsCarryValuesAtEachLevel(cpl: GuestCPL) throws {
        let g = try Guest(system: KVMSystem(), cpl: cpl) { a in
            a.mov(.rbx, 0x1234_5678)
            a.mov(.r15, -2)
            a.ucallSync(7, .rbx, .r15)
            a.ucallDone()
        }
        #expect(try g.expectSync(7).prefix(2) == [0x1234_5678, 0xFFFF_FFFF_FFFF_FFFE])
        try g.expectDone()
        #expect(try g.vcpu.sregs().cs.dpl == UInt8(cpl.rawValue))
    }

    @Test func cpl3PrivilegedInstructionFaultsIntoTheGuestIDT() throws {
        let g = try Guest(system: KVMSystem(), cpl: .cpl3) { a in
            a.onFault(resumeAt: "after")
            a.label("fault")
            a.mov(.ecx, 0x10)
            a.rdmsr()
            a.label("after")
            a.ucallDone()
        }
        let event = try g.next()
        guard case .exception(let e) = event else { Issue.record("expected #GP, got \(event)"); return }
        #expect(e.vector == .gp)
        #expect(e.rip == g.address("fault") + 5, "rip of the rdmsr (after the 5-byte mov)")
        #expect(e.cs & 3 == 3, "the fault came from ring 3")
        try g.expectDone()
    }

    @Test func watchdogInterruptsAGuestThatNeverExits() throws {
        var options = GuestOptions()
        options.watchdogMilliseconds = 200
        let g = try Guest(system: KVMSystem(), cpl: .cpl0, options: options) { a in a.label("l"); a.jmp(short: "l") }
        #expect(throws: KVMError("KVM_RUN", .watchdogExpired(milliseconds: 200))) { try g.next() }
    }
}

/// The one set of small system helpers (KVMKit's SystemFiles, CheckKit's TextTable).
@Suite struct SystemHelperTests {
    @Test func directoryEntriesAreSortedWithoutDotEntries() throws {
        let dir = NSTemporaryDirectory() + "kvmcheck-entries-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["b.md", "a.patch", "c"] { FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: Data("x".utf8)) }
        #expect(try directoryEntries(dir) == ["a.patch", "b.md", "c"])
        #expect(throws: Errno.noSuchFileOrDirectory) { try directoryEntries(dir + "/missing") }
        #expect(throws: Errno.notDirectory) { try directoryEntries(dir + "/c") }
        #expect(isDirectory(dir) && !isDirectory(dir + "/c") && !isDirectory(dir + "/missing"))
        // Listing through a descriptor leaves it usable: twice gives the same names.
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        #expect(try directoryEntries(fd: fd) == directoryEntries(fd: fd))
    }

    @Test func readTextHonoursItsLimitAndSymlinkRule() throws {
        let dir = NSTemporaryDirectory() + "kvmcheck-read-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: "\(dir)/f", contents: Data("0123456789".utf8))
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/link", withDestinationPath: "\(dir)/f")
        #expect(readText("\(dir)/f") == "0123456789")
        #expect(readText("\(dir)/f", limit: 10) == "0123456789")
        #expect(readText("\(dir)/f", limit: 9) == nil, "one byte over the limit")
        #expect(readText("\(dir)/link") == "0123456789")
        #expect(readText("\(dir)/link", followSymlinks: false) == nil)
    }

    @Test func alignedColumnsPadAllButTheLastColumn() {
        #expect(alignedColumns([["a", "1", "x"], ["bbb", "22", "yy y"]], rightAligned: [1])
                == ["a     1  x", "bbb  22  yy y"])
        #expect("ab".padded(to: 4) == "ab  " && "ab".padded(to: 4, right: true) == "  ab" && "abcde".padded(to: 2) == "abcde")
    }
}
