import CSuiteRegistry

/// Entry point a suite places in the `kvmcheck_suites` section (see Suites/README.md).
/// SAFETY: the section holds C function pointers, so a suite crosses it as an opaque +1
/// reference (registerSuite), which SuiteRegistry.all takes back exactly once per call.
public typealias SuiteEntryPoint = @convention(c) () -> UnsafeMutableRawPointer

/// Boxes a suite for its section entry; called only from a suite's entry closure.
public func registerSuite(_ suite: Suite) -> UnsafeMutableRawPointer {
    Unmanaged.passRetained(SuiteBox(suite)).toOpaque()
}

final class SuiteBox {
    let suite: Suite
    init(_ suite: Suite) { self.suite = suite }
}

/// Every suite linked into this binary, sorted by name.  Suites register themselves
/// by placing an entry in a linker section, so a new series is a new folder only.
public enum SuiteRegistry {
    public static func all(includeHidden: Bool = false) -> [Suite] {
        let suites = (0..<suite_registry_count()).compactMap { i -> Suite? in
            guard let entry = suite_registry_entry(i), let box = entry() else { return nil }
            // SAFETY: `box` is the +1 SuiteBox reference the entry just made; it is taken back once.
            return Unmanaged<SuiteBox>.fromOpaque(box).takeRetainedValue().suite
        }
        return suites.filter { includeHidden || !$0.name.hasPrefix("_") }.sorted { $0.name < $1.name }
    }
}
