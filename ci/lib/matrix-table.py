#!/usr/bin/env python3
"""matrix-table.py OUT COLUMN... -- the side-by-side verdict table from kvmcheck's JSON files.

A column's results are OUT/host/results.json or OUT/<column>/<suite>/results.json.
Cells: ok, FAIL, skip, info (informational), TIME (timeout), CRASH, and "-" when that
kernel never reported the check (its boot gave no verdict: see the notes under the table).
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
            return json.load(f).get("checks", [])
    except (OSError, ValueError):
        return []


def from_tap(path, suite):
    """Statuses from a (possibly truncated) TAP 14 file, for boots that died before the JSON."""
    checks = []
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    except OSError:
        return checks
    for line in lines:
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
        elif directive.upper().startswith("TIMEOUT"):
            status = "timeout"
        checks.append({"id": f"{suite}/{name}", "status": status})
    return checks


def main():
    out, columns = sys.argv[1], sys.argv[2:]
    results, kernels, order = {}, {}, []
    for col in columns:
        files = [os.path.join(out, "host", "results.json")] if col == "host" else \
            sorted(glob.glob(os.path.join(out, col, "*", "results.json")))
        results[col] = {}
        for f in files:
            checks = load(f)
            if not checks and col != "host":  # the boot died before the JSON: use the TAP that came back
                suite = os.path.basename(os.path.dirname(f))
                checks = from_tap(os.path.join(os.path.dirname(f), "tap.txt"), suite)
            for c in checks:
                results[col][c["id"]] = CELL.get(c["status"], c["status"])
                if c["id"] not in order:
                    order.append(c["id"])
        kernels[col] = col
    width = max(len(i) for i in order) if order else 10
    print("check".ljust(width) + "".join("  " + c.ljust(max(len(c), 5)) for c in columns))
    for cid in order:
        print(cid.ljust(width) + "".join("  " + results[c].get(cid, "-").ljust(max(len(c), 5)) for c in columns))
    for c in columns:
        vals = list(results[c].values())
        print(f"# {c}: {vals.count('ok')} ok, {vals.count('FAIL')} FAIL, {vals.count('skip')} skip, "
              f"{len(order) - len(vals)} not reported")
        status = os.path.join(out, "host", "status") if c == "host" else os.path.join(out, c + ".status")
        if os.path.exists(status):
            for line in open(status, encoding="utf-8"):
                if "no verdict" in line:
                    print(f"#   {c} {line.strip()}")


if __name__ == "__main__":
    main()
