import Foundation
import Testing

/// The linters CI examples are held to: check-jsonschema's vendored GitHub-workflow and GitLab-CI
/// schemas, and zizmor (GitHub Actions security).  scripts/install-deps installs both from PyPI.
enum CILinters {
    static let python = which("python3")
    static let zizmor: String? = {
        guard let python, let r = try? runProcess(python, ["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]) else { return nil }
        let path = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "/zizmor"
        return FileManager.default.isExecutableFile(atPath: path) ? path : which("zizmor")
    }()
    static let available: Bool = {
        guard let python, zizmor != nil else { return false }
        return (try? runProcess(python, ["-m", "check_jsonschema", "--version"]).status) == 0
    }()
    static let missing: Comment = "check-jsonschema or zizmor not installed (scripts/install-deps installs them)"

    static func schema(_ builtin: String, _ file: String) throws -> ProcessResult {
        try runProcess(python!, ["-m", "check_jsonschema", "--builtin-schema", builtin, file])
    }

    /// The pedantic persona: every finding, not only the likely exploitable ones.
    static func zizmorFindings(_ file: String) throws -> ProcessResult {
        try runProcess(zizmor!, ["--offline", "--no-progress", "--persona", "pedantic", file])
    }
}

let githubExample = repositoryRoot.appendingPathComponent("ci/github-actions.yml").path
let gitlabExample = repositoryRoot.appendingPathComponent("ci/gitlab-ci.yml").path

@Suite(.enabled(if: CILinters.available, CILinters.missing))
struct CIExampleLintTests {
    @Test func githubWorkflowPassesItsSchemaAndZizmor() throws {
        let schema = try CILinters.schema("vendor.github-workflows", githubExample)
        #expect(schema.status == 0, "\(schema.stdout)\(schema.stderr)")
        let z = try CILinters.zizmorFindings(githubExample)
        #expect(z.status == 0, "\(z.stdout)\(z.stderr)")
    }

    @Test func gitlabJobPassesItsSchema() throws {
        let schema = try CILinters.schema("vendor.gitlab-ci", gitlabExample)
        #expect(schema.status == 0, "\(schema.stdout)\(schema.stderr)")
    }

    @Test func theLintersCanFail() throws {
        let unpinned = try temporaryFile("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v4\n",
                                         suffix: ".yml")
        #expect(try CILinters.zizmorFindings(unpinned).status != 0, "an unpinned action with default permissions")
        #expect(try CILinters.schema("vendor.gitlab-ci", temporaryFile("job:\n  script: 5\n", suffix: ".yml")).status != 0)
        #expect(try CILinters.schema("vendor.github-workflows", temporaryFile("on: push\njobs: {a: {steps: []}}\n", suffix: ".yml")).status != 0,
                "a job without runs-on")
    }
}

@Suite struct CIExampleContentTests {
    @Test func githubJobPinsActionsGrantsWhatItsReportNeedsAndCachesTheBuild() throws {
        let text = try String(contentsOfFile: githubExample, encoding: .utf8)
        let uses = text.split(separator: "\n").filter { $0.contains("uses: ") }
        #expect(uses.count == 4)
        for line in uses {
            #expect((try? Regex(#"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40}  # v\d"#).firstMatch(in: String(line))) != nil,
                    "pinned by commit SHA, tag in a comment: \(line)")
        }
        #expect(text.contains("permissions: {}") && text.contains("contents: read") && text.contains("checks: write"))
        #expect(text.contains("uses: actions/cache@") && text.contains("path: .build"))
        #expect(text.contains("udevadm trigger --name-match=kvm"))
        #expect(!text.contains("options: --device /dev/kvm"), "a container that demands /dev/kvm fails before kvmcheck can skip")
    }

    @Test func noExampleHardCodesOneKernelsExpectations() throws {
        for file in [githubExample, gitlabExample] {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(!text.contains("ci/expectations/"), "\(file) must choose the file by the runner's kernel")
            #expect(text.contains("ci/expectations-for-host"))
        }
    }

    @Test func expectationsAreChosenByFlavourReleaseAndVendor() throws {
        let script = repositoryRoot.appendingPathComponent("ci/expectations-for-host").path
        func choose(_ flavour: String, _ release: String, _ vendor: String) throws -> String {
            try runProcess(script, [], environment: ["KVMCHECK_FLAVOUR": flavour, "KVMCHECK_KERNEL_RELEASE": release,
                                                     "KVMCHECK_CPU_VENDOR": vendor]).stdout
        }
        #expect(try choose("kvm_pvm", "6.18.44-fc-v657", "AuthenticAMD") == "ci/expectations/kvm_pvm-6.18.txt\n")
        #expect(try choose("kvm_intel", "6.18.44", "GenuineIntel") == "", "a generic runner gets no expectations")
        #expect(try choose("kvm_amd", "6.18.44", "AuthenticAMD") == "")
        #expect(try choose("kvm_pvm", "6.12.1", "AuthenticAMD") == "", "another release: none")
    }
}
