import Foundation
import Testing

/// `kvmcheck bench --json` with tiny counts: well-formed, every variant at every level,
/// unavailable variants say why.  No timing assertions (wall time here drifts by 30 %).
@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct BenchTests {
    @Test func jsonWithTinyCountsIsWellFormed() throws {
        let r = try kvmcheck(["bench", "--json", "--iterations", "5", "--repeats", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(doc["iterations"] as? Int == 5 && doc["repeats"] as? Int == 2)
        let results = try #require(doc["results"] as? [[String: Any]])
        #expect(results.count == 20, "10 variants x CPL0/CPL3")
        #expect(Set(results.compactMap { $0["level"] as? String }) == ["CPL0", "CPL3"])
        for result in results {
            let kind = try #require(result["kind"] as? String)
            #expect(["real", "simulated", "n/a"].contains(kind))
            if kind == "n/a" {
                #expect(!(result["detail"] as? String ?? "").isEmpty, "an unavailable variant says why")
                #expect(result["nsPerExit"] == nil)
            } else {
                let stats = try #require(result["nsPerExit"] as? [String: Double])
                #expect(stats["min"]! <= stats["median"]! && stats["median"]! <= stats["p90"]!)
            }
            if kind == "simulated" { #expect((result["detail"] as? String)?.contains("model") == true) }
        }
        let swift = results.first { ($0["variant"] as? String) == "overhead: Swift layer loop (step)" && ($0["level"] as? String) == "CPL0" }
        #expect(swift?["baseline"] as? String == "overhead: C reference loop (step)")
    }

    @Test func badCountsAreUsageErrors() throws {
        let r = try kvmcheck(["bench", "--iterations", "0"])
        #expect(r.status == 2 && r.stdout.isEmpty)
    }
}
