#!/usr/bin/env python3
"""matrix-table.py [--differ] OUT COLUMN... -- the side-by-side verdict table from kvmcheck's JSON files.

A column's results are OUT/host/results.json or OUT/<column>/<boot>/results.json, and its
label, expectations file, boots and minutes are in OUT/<column>.status (ci/kernel-matrix).
Cells: ok, FAIL, skip, info (informational), TIME (timeout), CRASH, xfail (a failure the
column's expectations file lists), XPASS (a listed failure that passed), and "-" when that
kernel never reported the check (its boot gave no verdict: see the notes under the table).
--differ prints only the rows where the reporting columns disagree on what happened
(an xfail counts as FAIL and an XPASS as ok there).
Exit status: 5 when some boot gave no verdict, 1 when some boot's kvmcheck exited non-zero
(an unexpected failure or pass), else 0.
"""
import glob
import json
import os
import sys

CELL = {"pass": "ok", "fail": "FAIL", "skip": "skip", "informational": "info", "timeout": "TIME",
        "crash": "CRASH", "xfail": "xfail", "xpass": "XPASS"}


def load(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            # Bochs' serial port can put a stray byte (0x1f) before the document.
            doc = json.loads(f.read().lstrip("\x00\x1f \t\r\n"))
            return doc.get("checks", []), doc.get("kvmFlavour")
    except (OSError, ValueError):
        return [], None


def from_tap(path, suite):
    """Statuses from a (possibly truncated) TAP 14 file, for boots that died before the JSON.
    A boot of every suite (`suite` "all") names each check's suite in its `# Subtest:` line."""
    checks = []
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    except OSError:
        return checks
    current = suite
    for line in lines:
        if line.startswith("# Subtest: ") and suite == "all":
            current = line[len("# Subtest: "):].strip()
        body = line[4:] if line.startswith("    ") else None
        if not body or not (body.startswith("ok ") or body.startswith("not ok ")):
            continue
        name = body.split(" - ", 1)[1] if " - " in body else ""
        name, _, directive = name.partition(" # ")
        status = "pass" if body.startswith("ok ") else "fail"
        if directive.upper().startswith("SKIP"):
            status = "skip"
        elif directive.startswith(("XFAIL informational", "TODO informational")):
            status = "informational"
        elif directive.upper().startswith(("TODO", "XFAIL")):  # kvmcheck's TAP marks an expected failure XFAIL
            status = "xfail"
        elif directive.upper().startswith("TIMEOUT"):
            status = "timeout"
        checks.append({"id": f"{current}/{name}", "status": status})
    return checks


def status_lines(out, col):
    path = os.path.join(out, col + ".status")
    try:
        return [line.rstrip("\n") for line in open(path, encoding="utf-8")]
    except OSError:
        return []


def field(lines, key):
    return next((line[len(key) + 2:] for line in lines if line.startswith(key + ": ")), None)


def main():
    args = sys.argv[1:]
    differ = "--differ" in args
    args = [a for a in args if a != "--differ"]
    out, columns = args[0], args[1:]
    results, flavours, order = {}, {}, []
    for col in columns:
        files = [os.path.join(out, "host", "results.json")] if col == "host" else \
            sorted(glob.glob(os.path.join(out, col, "*", "results.json")))
        results[col], flavours[col] = {}, set()
        for f in files:
            checks, flavour = load(f)
            if flavour:
                flavours[col].add(flavour)
            if not checks and col != "host":  # the boot died before the JSON: use the TAP that came back
                checks = from_tap(os.path.join(os.path.dirname(f), "tap.txt"), os.path.basename(os.path.dirname(f)))
            for c in checks:
                results[col][c["id"]] = CELL.get(c["status"], c["status"])
                if c["id"] not in order:
                    order.append(c["id"])
    for col in columns:
        label = field(status_lines(out, col), "label")
        if label:
            print(f"# {col} = {label}")
    rows = order
    if differ:  # compared on what happened: an expected failure is still a failure
        raw = {"xfail": "FAIL", "XPASS": "ok"}
        rows = [cid for cid in order
                if len({raw.get(results[c][cid], results[c][cid]) for c in columns if cid in results[c]}) > 1]
    width = max([len(i) for i in rows] + [5])
    print("check".ljust(width) + "".join("  " + c.ljust(max(len(c), 5)) for c in columns))
    for cid in rows:
        print(cid.ljust(width) + "".join("  " + results[c].get(cid, "-").ljust(max(len(c), 5)) for c in columns))
    code = 0
    for c in columns:
        vals = list(results[c].values())
        lines = status_lines(out, c)
        counts = ", ".join(f"{vals.count(v)} {v}" for v in ["ok", "FAIL", "xfail", "XPASS", "skip", "info", "TIME", "CRASH"]
                           if v in ("ok", "FAIL", "skip") or vals.count(v))
        extra = []
        if field(lines, "minutes"):
            extra.append(f"{field(lines, 'minutes')} min")
        if field(lines, "expectations"):
            extra.append(f"expectations {field(lines, 'expectations')}")
        if flavours[c]:
            extra.append("backend reported " + "/".join(sorted(flavours[c])))
        boots = [line for line in lines if line.startswith("boot ")]
        if any("no verdict" in b for b in boots):
            verdict, code = "NO VERDICT", 5
        elif any("kvmcheck exit 0" not in b for b in boots):
            verdict, code = "RED", max(code, 1)
        else:
            verdict = "green" if boots else "?"
        print(f"# {c}: {verdict}: {counts}, {len(order) - len(vals)} not reported; " + "; ".join(extra))
        for b in boots:
            if "kvmcheck exit 0" not in b:
                print(f"#   {c} {b}")
    return code


if __name__ == "__main__":
    sys.exit(main())
