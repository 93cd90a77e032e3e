import CheckKit
import Foundation
import SeriesPlan
import Suites
import Testing

/// Suites and the series manifests in patches/ name each other, both ways: every suite's
/// `series` is a manifest that lists the suite; every manifest is some suite's series, or says
/// why not (every suite it lists is "(planned)"); every suite a manifest lists as written
/// exists and names that series back.
func seriesLinkProblems(suites: [(name: String, series: String)], manifests: [SeriesManifest]) -> [String] {
    var problems: [String] = []
    for suite in suites {
        guard let m = manifests.first(where: { $0.series == suite.series }) else {
            problems.append("suite \(suite.name): series '\(suite.series)' names no patches/*.md"); continue
        }
        if !m.suites.contains(suite.name) { problems.append("\(m.file) does not list suite \(suite.name)") }
    }
    for m in manifests {
        let written = m.suites.filter { !m.plannedSuites.contains($0) }
        if !suites.contains(where: { $0.series == m.series }) && (!written.isEmpty || m.suites.isEmpty) {
            problems.append("\(m.file) is no suite's series and lists no '(planned)' suite saying why")
        }
        for name in written {
            guard let suite = suites.first(where: { $0.name == name }) else {
                problems.append("\(m.file) lists suite \(name), which does not exist"); continue
            }
            if suite.series != m.series { problems.append("\(m.file) lists suite \(name), whose series is \(suite.series)") }
        }
    }
    return problems
}

struct SeriesLinkTests {
    @Test func suitesAndManifestsNameEachOther() throws {
        let manifests = try SeriesManifest.loadAll(from: repositoryRoot.appendingPathComponent("patches").path)
        let suites = SuiteRegistry.all().map { (name: $0.name, series: $0.series) }
        #expect(seriesLinkProblems(suites: suites, manifests: manifests) == [])
    }

    @Test func eachBrokenLinkIsNamed() throws {
        func manifest(_ series: String, suites: String) throws -> SeriesManifest {
            try SeriesManifest.parse("# \(series)\n- **subject**: s\n- **link**: https://example.invalid/\n- **status**: unmerged\n- **suites**: \(suites)\n",
                                     series: series, file: "\(series).md")
        }
        let manifests = [try manifest("a", suites: "one"), try manifest("orphan", suites: "two"),
                         try manifest("later", suites: "future (planned)")]
        let suites = [(name: "one", series: "a"), (name: "two", series: "a"), (name: "three", series: "gone")]
        #expect(seriesLinkProblems(suites: suites, manifests: manifests) == [
            "a.md does not list suite two",
            "suite three: series 'gone' names no patches/*.md",
            "orphan.md is no suite's series and lists no '(planned)' suite saying why",
            "orphan.md lists suite two, whose series is a",
        ])
    }
}
