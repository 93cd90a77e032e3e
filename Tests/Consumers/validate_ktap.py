#!/usr/bin/env python3
"""Strict KTAP v1 reader (Documentation/dev-tools/ktap.rst), as kernel CI parsers read it.

usage: validate_ktap.py FILE
Checks: a "KTAP version 1" line opens every block; a plan follows; result lines are
"<ok|not ok> <n> [<description>][ # <directive> ...]" numbered 1..N to match the plan;
descriptions hold no '#'; subtests are indented two more spaces and closed by the
parent's result line; a parent is "not ok" exactly when a child failed (XFAIL and SKIP
are not failures); no YAML.  Exits 0 with a summary, 1 with the first problem.
"""
import re
import sys

RESULT = re.compile(r"^(ok|not ok) (\d+)(?: ([^#]*?))?(?: # (\S+)(?: (.*))?)?$")
DIRECTIVES = {"SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR"}


class Problem(Exception):
    pass


def parse_block(lines, i, depth, counts):
    """Parses one block starting at lines[i]; returns (next index, failed?)."""
    pad = "  " * depth
    if i >= len(lines) or lines[i] != pad + "KTAP version 1":
        raise Problem(f"line {i + 1}: expected '{pad}KTAP version 1'")
    i += 1
    while i < len(lines) and lines[i].startswith(pad + "#"):
        i += 1
    m = re.match(r"^1\.\.(\d+)(?: # .*)?$", lines[i][len(pad):]) if i < len(lines) and lines[i].startswith(pad) else None
    if not m:
        raise Problem(f"line {i + 1}: expected a plan '{pad}1..N'")
    planned = int(m.group(1))
    i += 1
    number = 0
    failed = False
    child_failed = None
    while i < len(lines):
        line = lines[i]
        if line == pad + "  KTAP version 1":
            if child_failed is not None:
                raise Problem(f"line {i + 1}: a subtest block not closed by a result line")
            i, child_failed = parse_block(lines, i, depth + 1, counts)
            continue
        if not line.startswith(pad):
            break
        body = line[len(pad):]
        if body.startswith(" "):
            raise Problem(f"line {i + 1}: unexpected indentation: {line!r}")
        if body.startswith("#"):
            i += 1
            continue
        if body.startswith("---") or body.startswith("..."):
            raise Problem(f"line {i + 1}: YAML blocks are not KTAP")
        r = RESULT.match(body)
        if not r:
            if depth == 0:
                raise Problem(f"line {i + 1}: not a KTAP line: {line!r}")
            break
        number += 1
        if int(r.group(2)) != number:
            raise Problem(f"line {i + 1}: test number {r.group(2)}, expected {number}")
        directive = (r.group(4) or "").upper()
        if r.group(4) and directive not in DIRECTIVES:
            raise Problem(f"line {i + 1}: unknown directive {r.group(4)!r}")
        is_failure = r.group(1) == "not ok" and directive not in ("XFAIL", "SKIP", "TODO")
        if child_failed is not None:
            if child_failed != (r.group(1) == "not ok"):
                raise Problem(f"line {i + 1}: parent says {r.group(1)!r} but its subtests {'failed' if child_failed else 'passed'}")
            child_failed = None
        counts[r.group(1) + (" # " + directive if directive else "")] = counts.get(r.group(1) + (" # " + directive if directive else ""), 0) + 1
        failed = failed or is_failure
        i += 1
    if number != planned:
        raise Problem(f"block at depth {depth}: plan says {planned}, found {number} results")
    if child_failed is not None:
        raise Problem("a subtest block was not closed by its parent's result line")
    return i, failed


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    counts = {}
    try:
        end, failed = parse_block(lines, 0, 0, counts)
        if end != len(lines):
            raise Problem(f"line {end + 1}: trailing text after the top-level results: {lines[end]!r}")
    except Problem as p:
        print(p)
        return 1
    print(f"ktap ok: {counts}, failed={failed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
