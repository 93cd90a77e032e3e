// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "kvmcheck",
    products: [
        .executable(name: "kvmcheck", targets: ["kvmcheck"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // uAPI delta + non-variadic ioctl wrappers behind one seam.
        .target(name: "CKVM"),
        // Process capabilities (CAP_SYS_ADMIN & co) for requirement checks.
        .systemLibrary(name: "CLibcap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        // Typed KVM layer: raw-pointer code lives here and in KernelDoubles (each block with a SAFETY reason).
        .target(name: "KVMKit", dependencies: [
            "CKVM",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // The kernel mutants' names: shared by the checks (killedBy:) and the doubles, depending on neither.
        .target(name: "MutantIDs"),
        // Test-only kernel doubles (mutants and models) at the C shim's ioctl seam, one file per series.
        .target(name: "KernelDoubles", dependencies: ["CKVM", "MutantIDs"]),
        // x86-64 encoder for guest payloads.
        .target(name: "X86Asm"),
        // Long-mode guest environment: page tables, GDT/TSS/IDT, CPL0/CPL3, guest->host calls.
        .target(name: "GuestKit", dependencies: ["KVMKit", "X86Asm"]),
        // Child-process spawning with a deadline, for per-check isolation.
        .target(name: "CProcess"),
        // The suite registry's two C accessors (the linker section suites register in).
        .target(name: "CSuiteRegistry"),
        // The check core: model, registry, context, requirements, selection, the isolated runner
        // and its child, host-setting safety, expectations, and the reporter interface.
        .target(name: "CheckKit", dependencies: ["KVMKit", "GuestKit", "CLibcap", "CProcess", "CSuiteRegistry", "MutantIDs"]),
        // One reporter per format (TAP, KTAP, JUnit, JSON) and the checked report files.
        .target(name: "Reporting", dependencies: ["CheckKit", "KVMKit"]),
        // Series manifests, the patch/mbox reader, and `kvmcheck plan`.
        .target(name: "SeriesPlan", dependencies: ["CheckKit", "KVMKit"]),
        // The content: one folder per patch series; each registers itself (see Suites/README.md).
        .target(name: "Suites", dependencies: ["CheckKit", "GuestKit", "KVMKit", "X86Asm", "MutantIDs"], path: "Suites",
                exclude: ["README.md"]),
        // `kvmcheck bench`: the exit paths the suites drive, timed against C.
        .target(name: "Bench", dependencies: ["CheckKit", "CKVM", "KVMKit", "GuestKit", "X86Asm", "Suites", "KernelDoubles"]),
        .executableTarget(name: "kvmcheck", dependencies: [
            "CheckKit", "Reporting", "SeriesPlan", "Bench", "Suites", "KernelDoubles", "MutantIDs",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "X86AsmTests", dependencies: ["X86Asm"]),
        .testTarget(name: "KVMCheckTests", dependencies: [
            "CheckKit", "Reporting", "SeriesPlan", "Bench", "Suites", "KVMKit", "GuestKit", "X86Asm", "CKVM",
            "KernelDoubles", "MutantIDs", "kvmcheck",
        ]),
    ]
)
