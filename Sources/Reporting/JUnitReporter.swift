import CheckKit
import FoundationEssentials
import Glibc
import KVMKit

/// JUnit XML as Jenkins and GitLab read it, valid against Jenkins' junit-10.xsd: a testsuite
/// per suite, the run's properties once (in the first testsuite: xunitparser merges all
/// suites' properties and rejects a repeated name), and every failure, error and skip with its
/// message in the element body (GitLab shows only the body) as well as the attribute.
/// Expected failures and informational findings are `<skipped>` (pytest's encoding of xfail).
public final class JUnitReporter: DocumentReporter, Reporter {

    public func skipAll(header: RunHeader?, reason: String) {
        record.header = header
        record.skippedAll = reason
        end(RunSummary())
    }

    public func end(_ summary: RunSummary) {
        var x: [String] = ["<?xml version=\"1.0\" encoding=\"UTF-8\"?>"]
        let all = record.suites.flatMap(\.results)
        let total = record.skippedAll == nil ? all.count : 1
        let failures = all.filter { $0.junitKind == "failure" }.count
        let errors = all.filter { $0.junitKind == "error" }.count
        x.append("<testsuites name=\"kvmcheck\" tests=\"\(total)\" failures=\"\(failures)\" errors=\"\(errors)\" "
                 + "time=\"\(junitSeconds(all.reduce(0) { $0 + $1.milliseconds }))\">")
        var properties = propertiesXML()
        if let reason = record.skippedAll {
            x.append("  <testsuite name=\"kvmcheck\" tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"1\" time=\"0.000\">")
            x += properties
            properties = []
            x.append("    <testcase classname=\"kvmcheck\" name=\"open KVM device\" time=\"0.000\">")
            x.append("      " + element("skipped", type: "skip", message: reason, body: reason))
            x.append("    </testcase>")
            x.append("  </testsuite>")
        }
        for (suite, results) in record.suites {
            x.append("  <testsuite name=\"\(xmlEscape(suite))\" tests=\"\(results.count)\" "
                     + "failures=\"\(results.filter { $0.junitKind == "failure" }.count)\" "
                     + "errors=\"\(results.filter { $0.junitKind == "error" }.count)\" "
                     + "skipped=\"\(results.filter { $0.junitKind == "skipped" }.count)\" "
                     + "time=\"\(junitSeconds(results.reduce(0) { $0 + $1.milliseconds }))\">")
            x += properties
            properties = []
            for r in results { x += testcaseXML(r) }
            x.append("  </testsuite>")
        }
        x.append("</testsuites>")
        write(x.joined(separator: "\n") + "\n")
    }

    private func propertiesXML() -> [String] {
        guard let h = record.header else { return [] }
        var props: [(String, String)] = [("kernel", h.host.kernelRelease), ("kvm_flavour", h.host.kvmFlavour),
                                         ("cpu_vendor", h.host.cpuVendor), ("tool", h.tool)]
        if let v = h.apiVersion { props.append(("kvm_api_version", String(v))) }
        props += h.notes.enumerated().map { ("note\($0.offset + 1)", $0.element) }
        if let b = record.bailOut { props.append(("bail_out", b)) }
        return ["    <properties>"] + props.map { "      <property name=\"\($0.0)\" value=\"\(xmlEscape($0.1))\"/>" } + ["    </properties>"]
    }

    private func testcaseXML(_ r: CheckResult) -> [String] {
        let open = "    <testcase classname=\"kvmcheck.\(xmlEscape(r.suite))\" name=\"\(xmlEscape(r.name))\" "
            + "time=\"\(junitSeconds(r.milliseconds))\""
        var body: [String] = []
        let details = r.failureDetails
        /// The message first, then expected/observed/ioctl/errno, one per line.
        func text(_ message: String) -> String {
            ([message] + details.fields.dropFirst().map { "\($0.0): \($0.1)" }).joined(separator: "\n")
        }
        switch r.status {
        case .pass: break
        case .skip(let reason):
            body.append(element("skipped", type: "skip", message: reason, body: reason))
        case .informational(let f):
            let message = "informational: " + f.message
            body.append(element("skipped", type: "informational", message: message, body: text(message)))
        case .expectedFailure(let why):
            let message = "expected failure: \(why): \(details.message)"
            body.append(element("skipped", type: "xfail", message: message, body: text(message)))
        case .fail, .unexpectedPass:
            body.append(element("failure", type: r.junitType, message: details.message, body: text(details.message)))
        case .timeout, .crash, .harnessError:
            body.append(element("error", type: r.junitType, message: details.message, body: text(details.message)))
        }
        let out = r.notes + (r.kernelLog.isEmpty ? [] : ["kernel log while the check ran:"] + r.kernelLog)
        if !out.isEmpty { body.append("<system-out>\(xmlEscape(out.joined(separator: "\n")))</system-out>") }
        return body.isEmpty ? [open + "/>"] : [open + ">"] + body.map { "      " + $0 } + ["    </testcase>"]
    }

    private func element(_ name: String, type: String, message: String, body: String) -> String {
        "<\(name) type=\"\(xmlEscape(type))\" message=\"\(xmlEscape(message))\">\(xmlEscape(body))</\(name)>"
    }
}

/// Seconds with three decimals: junit-10.xsd's SUREFIRE_TIME allows no more (and no exponent).
func junitSeconds(_ milliseconds: Int) -> String {
    let ms = max(0, milliseconds)
    let fraction = String(ms % 1000)
    return "\(ms / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
}

extension CheckResult {
    /// Which JUnit element the result becomes: nil (passed), failure, error or skipped.
    var junitKind: String? {
        switch status {
        case .pass: return nil
        case .fail, .unexpectedPass: return "failure"
        case .timeout, .crash, .harnessError: return "error"
        case .skip, .informational, .expectedFailure: return "skipped"
        }
    }

    var junitType: String {
        switch status {
        case .unexpectedPass: return "unexpected pass"
        case .timeout: return "timeout"
        case .crash: return "crash"
        case .harnessError: return "harness error"
        default: return "not ok"
        }
    }
}

