#!/usr/bin/env python3
"""Parse kvmcheck TAP with PyPI's tap.py, the way a TAP consumer would.

usage: validate_tap.py FILE
Exits 0 and prints a summary when every document (the top level and, for TAP 14,
each 4-space-indented subtest block) parses with a plan that matches its test
lines and no unknown lines; exits 1 with the reason otherwise; 77 if tap.py is missing.
"""
import sys

try:
    from tap.parser import Parser
except ImportError:
    print("tap.py not installed (pip install 'tap.py[yaml]')")
    sys.exit(77)


def check(name, text, version):
    lines = list(Parser().parse_text(text))
    plans = [l for l in lines if l.category == "plan"]
    tests = [l for l in lines if l.category == "test"]
    unknown = [l for l in lines if l.category == "unknown"]
    if len(plans) != 1:
        return f"{name}: {len(plans)} plan lines"
    if plans[0].expected_tests != len(tests):
        return f"{name}: plan says {plans[0].expected_tests}, found {len(tests)} test lines"
    if [t.number for t in tests] != list(range(1, len(tests) + 1)):
        return f"{name}: test numbers are not 1..{len(tests)}"
    if unknown and not (version == 14 and name == "top level"):
        return f"{name}: {len(unknown)} line(s) tap.py does not understand"
    # A TAP 14 parent line summarises its block; every check line must explain a failure.
    for t in tests if not (version == 14 and name == "top level") else []:
        if not t.ok and t.yaml_block is None and not t.todo:
            return f"{name}: 'not ok {t.number}' has no YAML diagnostics"
    return None


def main(path):
    text = open(path).read()
    version = 14 if text.startswith("TAP version 14") else 13
    docs = [("top level", text)]
    if version == 14:
        # Each "# Subtest: NAME" block is a TAP document indented by four spaces.
        block, name = None, None
        for line in text.splitlines():
            if line.startswith("# Subtest: "):
                block, name = [], line[len("# Subtest: "):]
            elif block is not None and line.startswith("    "):
                block.append(line[4:])
            elif block is not None:
                docs.append((f"subtest {name}", "TAP version 13\n" + "\n".join(block) + "\n"))
                block = None
    errors = [e for e in (check(n, t, version) for n, t in docs) if e]
    if errors:
        print("\n".join(errors))
        return 1
    print(f"tap.py parsed {len(docs)} document(s) of TAP version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
