#!/usr/bin/env python3
"""Feeds one kvmcheck report to the consumers its users run, as shipped, and prints what each saw.

usage: consumers.py FILE CONSUMER...
       consumers.py --available CONSUMER...   (exit 0 when all are installed, 77 otherwise)
       consumers.py --installed               (prints the installed consumers, one per line)
CONSUMER is one of:
  kunit        the kernel's tools/testing/kunit: kunit_parser.parse_run_tests (counts) and
               `kunit.py parse FILE` (exit status), from scripts/install-deps' cache
  tappy        PyPI tap.py: its Loader (with its plan/version rules) run by unittest, as `tappy` does
  prove        Perl TAP::Harness: `prove --exec cat FILE` (exit status) and TAP::Parser (counts)
  lkft         LKFT's kselftest parse-output.py rule, from its documented behaviour: a line with
               "not ok N " is a fail, "ok N ... # SKIP" a skip, any other "ok N " a pass
  junitparser  PyPI junitparser
  xunitparser  PyPI xunitparser
  xsd          xmllint against Jenkins' junit-10.xsd (from pytest's sdist, in the cache)
  yaml         PyYAML safe_load of every TAP YAML block (---/...)
Prints one JSON object: {consumer: {"passed", "failed", "skipped", "verdict", "problems", ...}}.
verdict is "fail" when the consumer fails the run, "skip" when it ran nothing but skips, else "pass".
Exit 0 when every consumer ran (whatever it concluded); 77 when one is not installed.
"""
import contextlib
import io
import json
import os
import re
import subprocess
import sys

CACHE = os.environ.get("KVMCHECK_CONSUMERS") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kvmcheck-consumers")


class Missing(Exception):
    pass


def verdict(passed, failed, skipped):
    return "fail" if failed else ("pass" if passed else "skip")


def kunit(path):
    kdir = os.path.join(CACHE, "linux", "tools", "testing", "kunit")
    if not os.path.exists(os.path.join(kdir, "kunit_parser.py")):
        raise Missing(f"{kdir}/kunit_parser.py (scripts/install-deps extracts it)")
    sys.path.insert(0, kdir)
    # kunit_printer binds sys.stdout when imported: keep its progress lines off our JSON.
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        import kunit_parser
        with open(path, encoding="utf-8", newline="") as f:
            test = kunit_parser.parse_run_tests(f.read().split("\n"))
    S = kunit_parser.TestStatus
    problems = []

    def walk(t, depth):
        if depth > 0 and t.subtests:
            # A suite's own result line must agree with its checks.
            own_fail = t.status in (S.FAILURE, S.TEST_CRASHED)
            if own_fail != (t.counts.failed + t.counts.crashed > 0):
                problems.append(f"suite {t.name}: own result {t.status.name} vs its checks {t.counts}")
        for s in t.subtests:
            walk(s, depth + 1)

    walk(test, 0)
    if test.counts.errors:  # kunit_parser's own complaints (plan, numbering, missing lines), summed over the tree
        problems.append(f"kunit_parser: {test.counts.errors} parse error(s): {log.getvalue()[-2000:]}")
    run = subprocess.run([sys.executable, os.path.join(kdir, "kunit.py"), "parse", os.path.abspath(path)],
                         capture_output=True, text=True)
    c = test.counts
    status = {S.SUCCESS: "pass", S.FAILURE: "fail", S.TEST_CRASHED: "fail",
              S.SKIPPED: "skip", S.NO_TESTS: "skip"}.get(test.status, "fail")
    return {"passed": c.passed, "failed": c.failed + c.crashed, "skipped": c.skipped, "verdict": status,
            "status": test.status.name, "exit": run.returncode, "problems": problems}


def tappy(path):
    try:
        from tap.loader import Loader
        from tap.main import get_status
    except ImportError:
        raise Missing("PyPI tap.py")
    import unittest

    class Counting(unittest.TestResult):
        def __init__(self):
            super().__init__()
            self.passes = 0

        def addSuccess(self, test):
            super().addSuccess(test)
            self.passes += 1

    suite = Loader().load([path])
    result = Counting()
    suite.run(result)
    # tap.py reports its own rule violations (plan placement, counts, bail out) as failing lines
    # without a test number.
    problems = [t.shortDescription() for t, _ in result.failures if t._line.number is None]
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.passes + len(result.expectedFailures)
    return {"passed": passed, "failed": failed, "skipped": len(result.skipped),
            "verdict": verdict(passed, failed, len(result.skipped)), "exit": get_status(result),
            "problems": problems}


PERL_COUNTS = r"""
use TAP::Parser;
local $/; open my $fh, '<:raw', $ARGV[0] or die; my $tap = <$fh>;
my $p = TAP::Parser->new({ tap => $tap });
while (defined(my $r = $p->next)) {}
my @errors = $p->parse_errors;
print join("\t", scalar($p->passed), scalar($p->failed), scalar($p->skipped), scalar($p->todo),
           $p->skip_all ? 1 : 0, scalar(@errors)), "\n";
print "$_\n" for @errors;
"""


def prove(path):
    if not shutil_which("prove"):
        raise Missing("prove (perl)")
    run = subprocess.run(["prove", "--exec", "cat", path], capture_output=True, text=True)
    counts = subprocess.run(["perl", "-e", PERL_COUNTS, path], capture_output=True, text=True, check=True)
    first, *errors = counts.stdout.splitlines()
    passed, failed, skipped, todo, skip_all, _ = (int(x) for x in first.split("\t"))
    # TAP::Parser's "passed" includes skipped and TODO tests.
    real_passed = passed - skipped
    problems = errors + ([run.stdout.strip()] if "Parse errors" in run.stdout else [])
    return {"passed": real_passed, "failed": failed, "skipped": skipped, "todo": todo,
            "verdict": "fail" if run.returncode else ("skip" if skip_all or real_passed == 0 else "pass"),
            "exit": run.returncode, "problems": problems, "output": run.stdout + run.stderr}


def shutil_which(tool):
    import shutil
    return shutil.which(tool)


LKFT_NOT_OK = re.compile(r"^.*?not ok \d{1,5} ")
LKFT_OK = re.compile(r"^.*?ok \d{1,5} ")


def lkft(path):
    passed = failed = skipped = 0
    with open(path, encoding="utf-8", newline="") as f:
        for line in f.read().split("\n"):
            if LKFT_NOT_OK.search(line):
                failed += 1
            elif LKFT_OK.search(line):
                if "# SKIP" in re.match(r"^.*?ok [0-9]+ (.*?)$", line).group(1):
                    skipped += 1
                else:
                    passed += 1
    return {"passed": passed, "failed": failed, "skipped": skipped,
            "verdict": verdict(passed, failed, skipped), "problems": []}


def junitparser(path):
    try:
        import junitparser as jp
    except ImportError:
        raise Missing("PyPI junitparser")
    xml = jp.JUnitXml.fromfile(path)
    suites = [xml] if isinstance(xml, jp.TestSuite) else list(xml)
    passed = failed = skipped = 0
    problems = []
    for s in suites:
        counts = {"failures": 0, "errors": 0, "skipped": 0, "tests": 0}
        for case in s:
            counts["tests"] += 1
            kinds = {type(r).__name__ for r in case.result}
            if "Failure" in kinds or "Error" in kinds:
                failed += 1
                counts["failures" if "Failure" in kinds else "errors"] += 1
            elif "Skipped" in kinds:
                skipped += 1
                counts["skipped"] += 1
            else:
                passed += 1
            for r in case.result:
                if not (r.text or "").strip():
                    problems.append(f"{case.name}: <{r._tag}> has no body (GitLab shows only the body)")
        for key, n in counts.items():
            declared = getattr(s, key)
            if declared != n:
                problems.append(f"testsuite {s.name}: {key}={declared}, but it holds {n}")
    return {"passed": passed, "failed": failed, "skipped": skipped,
            "verdict": verdict(passed, failed, skipped), "problems": problems}


def xunitparser(path):
    try:
        import xunitparser as xp
    except ImportError:
        raise Missing("PyPI xunitparser")
    try:
        with open(path, "rb") as f:
            _, tr = xp.parse(f)
    except Exception as e:  # it asserts on repeated properties and on wrong totals
        return {"passed": 0, "failed": 0, "skipped": 0, "verdict": "fail",
                "problems": [f"xunitparser failed: {type(e).__name__}: {e}"]}
    failed = len(tr.failures) + len(tr.errors)
    skipped = len(tr.skipped)
    passed = tr.testsRun - failed - skipped
    return {"passed": passed, "failed": failed, "skipped": skipped,
            "verdict": "fail" if not tr.wasSuccessful() else verdict(passed, failed, skipped), "problems": []}


def xsd(path):
    schema = os.path.join(CACHE, "junit-10.xsd")
    if not os.path.exists(schema):
        raise Missing(f"{schema} (scripts/install-deps fetches it)")
    if not shutil_which("xmllint"):
        raise Missing("xmllint (libxml2-utils)")
    run = subprocess.run(["xmllint", "--noout", "--schema", schema, path], capture_output=True, text=True)
    return {"problems": [] if run.returncode == 0 else run.stderr.strip().splitlines()}


def yaml_blocks(path):
    try:
        import yaml
    except ImportError:
        raise Missing("PyYAML")
    problems = []
    blocks = 0
    values = []
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "---":
            indent = lines[i].index("---")
            j = i + 1
            while j < len(lines) and lines[j].strip() != "...":
                j += 1
            text = "\n".join(l[indent:] for l in lines[i + 1:j])
            blocks += 1
            try:
                doc = yaml.safe_load(text)
                if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
                    problems.append(f"line {i + 1}: not a mapping of strings: {doc!r}")
                else:
                    values += doc.values()
            except yaml.YAMLError as e:
                problems.append(f"line {i + 1}: {e}")
            i = j
        i += 1
    return {"blocks": blocks, "problems": problems, "values": values}


CONSUMERS = {"kunit": kunit, "tappy": tappy, "prove": prove, "lkft": lkft, "junitparser": junitparser,
             "xunitparser": xunitparser, "xsd": xsd, "yaml": yaml_blocks}


def available(name):
    """Raises Missing when the consumer is not installed (each checks that before reading its file)."""
    try:
        CONSUMERS[name](os.devnull + ".absent")
    except Missing:
        raise
    except Exception:
        pass


def main(path, names):
    if path == "--installed":
        for name in CONSUMERS:
            try:
                available(name)
                print(name)
            except Missing:
                pass
        return 0
    if path == "--available":
        try:
            for name in names:
                available(name)
        except Missing as m:
            print(f"not installed: {m}", file=sys.stderr)
            return 77
        return 0
    out = {}
    for name in names:
        try:
            out[name] = CONSUMERS[name](path)
        except Missing as m:
            print(f"not installed: {m}", file=sys.stderr)
            return 77
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "--installed", sys.argv[2:]))
