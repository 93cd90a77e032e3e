// Entry point: a check child starts here without the argument parser; everything else goes
// through ArgumentParser, with usage errors as one line and exit 2.
import ArgumentParser
import CheckKit
import Reporting
import SeriesPlan
import CProcess
import CKVM
import FoundationEssentials
import Glibc
import GuestKit
import KernelDoubles
import KVMKit
import Suites

/// `kvmcheck __check ID …`: runs one check instance and writes its result to fd 3 (used by the
/// runner; not for people).  Parsed by hand: a child starts like a small C program.
func runChild(_ arguments: ArraySlice<String>) -> Never {
    let invocation: ChildInvocation
    switch ChildInvocation.parse(arguments) {
    case .success(let parsed): invocation = parsed
    case .failure(let error): fail(error.description)
    }
    _ = cproc_die_with_parent(invocation.parentPID, UInt32(clamping: invocation.deadlineSeconds))
    let all = SuiteRegistry.all(includeHidden: true).flatMap(\.instances)
    guard let instance = all.first(where: { $0.id == invocation.id }) else { fail("no check with id '\(invocation.id)'") }
    activateKernelDoubles(invocation.settings)
    // Which mutants changed a call in this check (MutantTests' proof that the others left it alone).
    ChildExecution.run(instance, settings: invocation.settings, extraNotes: { ActionTrace.note.map { [$0] } ?? [] })
    exit(0)
}

// Nothing we open may become fd 0-2 (a --junit file receiving the TAP stream, say).
cproc_ensure_standard_fds()
if CommandLine.arguments.dropFirst().first == ChildInvocation.command { runChild(CommandLine.arguments.dropFirst()) }

// Usage errors exit 2 with one line (not ArgumentParser's 64 and its usage block), help and --version exit 0.
do {
    var command = try Kvmcheck.parseAsRoot()
    try command.run()
    finish(0)
} catch let code as ExitCode {
    finish(code.rawValue)
} catch {
    let status = Kvmcheck.exitCode(for: error)
    if status == .success {
        emit(Kvmcheck.fullMessage(for: error))
        finish(0)
    }
    let message = Kvmcheck.message(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
    fail((message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message) + " (see 'kvmcheck --help')")
}
