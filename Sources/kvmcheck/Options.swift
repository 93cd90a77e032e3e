// The root command, its shared option groups and small helpers for option values.
import ArgumentParser
import CheckKit
import Reporting
import SeriesPlan
import CProcess
import CKVM
import FoundationEssentials
import Glibc
import GuestKit
import KVMKit
import Suites

/// Exit codes: 0 pass, 1 a check failed, 2 bad usage or input, 4 nothing could run, 130 interrupted.
enum ExitStatus {
    static let usage: Int32 = 2
}

struct Kvmcheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvmcheck",
        abstract: "Validate KVM patch series against the running kernel; report as TAP.",
        discussion: """
            Exit status: 0 every check that ran passed, 1 a check failed, 2 bad usage or input, \
            4 nothing could run (e.g. no /dev/kvm), 130 interrupted.
            """,
        version: kvmcheckVersion,
        subcommands: [Run.self, List.self, Caps.self, PlanCommand.self, BenchCommand.self, BenchLoop.self],
        defaultSubcommand: Run.self)
}

let kvmcheckVersion = "0.1.0"

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case tap, ktap, junit, json
}

struct DeviceOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "KVM device to open.")
    var device = "/dev/kvm"

    @Option(name: .customLong("cap"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("An unmerged capability's number on the kernel under test (over its manifest's); may be repeated.",
                               valueName: "NAME=N"))
    var caps: [String] = []

    @Option(name: .customLong("debug-cr3-cap"), parsing: .unconditional,
            help: ArgumentHelp("Alias for --cap \(Self.debugCR3AliasName)=N.", valueName: "N"))
    var debugCR3Cap: Int?
    static let debugCR3AliasName = "KVM_CAP_X86_GUEST_DEBUG_CR3"

    @Option(help: "Directory of series manifests (default: $KVMCHECK_PATCHES, or the patches/ of this checkout).")
    var patches: String?

    func validate() throws {
        if device.isEmpty { throw ValidationError("--device: empty path") }
        _ = try givenCapabilities()
    }

    /// The numbers given with --cap (and its alias): each NAME=N with N above 0, each name one
    /// some check requires, one number per name.
    func givenCapabilities() throws(ValidationError) -> ProposedCapabilities {
        var given: [(name: String, number: Int, source: String)] = []
        do {
            for text in caps { let (name, number) = try ProposedCapabilities.parseAssignment(text); given.append((name, number, "--cap")) }
        } catch { throw ValidationError(error.description) }
        if let debugCR3Cap {
            guard debugCR3Cap > 0 else { throw ValidationError("--debug-cr3-cap must be a capability number above 0, not \(debugCR3Cap)") }
            given.append((Self.debugCR3AliasName, debugCR3Cap, "--debug-cr3-cap"))
        }
        guard !given.isEmpty else { return ProposedCapabilities() }
        let known = ProposedCapabilities.required(by: SuiteRegistry.all(includeHidden: true)).keys.sorted()
        var result = ProposedCapabilities()
        for g in given {
            guard known.contains(g.name) else {
                throw ValidationError("--cap \(messageQuoted(g.name)): no check requires it (known: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
            }
            do { try result.assign(g.name, g.number, source: g.source) } catch { throw ValidationError("--cap: \(error)") }
        }
        return result
    }

    /// Settings for checks: each proposed capability's number from the command line, else from
    /// the manifest that assigns it.  A malformed manifest, or two manifests giving one
    /// capability two numbers, is bad input: a usage error (one line, exit 2) before anything runs.
    func resolvedSettings() throws(ValidationError) -> CheckSettings {
        var s = CheckSettings()
        s.devicePath = device
        s.proposedCapabilities = try givenCapabilities().filling(from: try manifestCapabilities())
        return s
    }

    func manifestCapabilities() throws(ValidationError) -> ProposedCapabilities {
        let located: String?
        do { located = try SeriesManifest.locateDirectory(explicit: patches, executable: selfExecutable()) } catch {
            throw ValidationError("\(error)")
        }
        guard let dir = located else {
            if patches != nil { throw ValidationError("--patches: no such directory") }
            return ProposedCapabilities()
        }
        var found = ProposedCapabilities()
        // Only the series of suites people run: hidden test-only suites have no manifest.
        for series in Set(SuiteRegistry.all().map(\.series)).sorted() {
            let manifest: SeriesManifest
            do { manifest = try SeriesManifest.load(series: series, from: dir) } catch {
                throw ValidationError("malformed series manifest: \(error)")
            }
            for (name, number) in manifest.capabilities.sorted(by: { $0.key < $1.key }) {
                do { try found.assign(name, number, source: "patches/\(series).md") } catch { throw ValidationError("series manifests: \(error)") }
            }
        }
        return found
    }
}

enum LevelChoice: String, ExpressibleByArgument, CaseIterable {
    case zero = "0", three = "3", both
    var levels: [GuestCPL] {
        switch self {
        case .zero: return [.cpl0]
        case .three: return [.cpl3]
        case .both: return GuestCPL.allCases
        }
    }
}

struct SelectionOptions: ParsableArguments {
    @Option(parsing: .unconditionalSingleValue, help: "Comma-separated suites (default: all); may be repeated.")
    var suite: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: "Comma-separated globs on check ids, e.g. 'sync-regs/*cpl3'; may be repeated.")
    var filter: [String] = []

    @Option(parsing: .unconditionalSingleValue, help: "Comma-separated globs on check ids to leave out (after --suite/--filter); may be repeated.")
    var exclude: [String] = []

    @Option(help: "Privilege level(s) for guest payloads: 0, 3 or both.")
    var cpl: LevelChoice = .both

    func validate() throws { _ = try selection() }

    /// Repeated options add up (`--suite a --suite b` is `--suite a,b`).  A list given but naming
    /// nothing (`--suite ''`, an empty `$SUITES` in CI) is a usage error, not "all".
    func selection() throws(ValidationError) -> Selection {
        func list(_ values: [String], _ option: String) throws(ValidationError) -> [String] {
            var items: [String] = []
            for value in values {
                let named = splitList(value)
                if named.isEmpty { throw ValidationError("\(option) \(messageQuoted(value)) names nothing (leave \(option) out to select everything)") }
                items += named
            }
            return items
        }
        return Selection(suites: try list(suite, "--suite"), filters: try list(filter, "--filter"),
                         excludes: try list(exclude, "--exclude"), levels: cpl.levels)
    }
}

func splitList(_ s: String) -> [String] {
    s.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
}

extension String {
    var trimmingSpaces: String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}
