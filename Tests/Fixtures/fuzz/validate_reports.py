#!/usr/bin/env python3
"""Validates every report a fuzz campaign wrote, in one process (one python start per batch).

usage: validate_reports.py DIR
  *.tap   Tests/Consumers/validate_tap.py (PyPI tap.py), and every YAML block loads with PyYAML
  *.ktap  Tests/Consumers/validate_ktap.py
  *.json  json.load
(JUnit *.xml is left to xmllint, which the test runs on all of them at once.)
Prints "PATH<TAB>problem" for each invalid file; exits 0 when there is none, 1 otherwise.
"""
import contextlib
import io
import json
import os
import runpy
import sys

import yaml

CONSUMERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Consumers")


def run_script(name, path):
    """Runs a consumer script as `script PATH`; returns None if it accepts the file."""
    out = io.StringIO()
    saved = sys.argv
    sys.argv = [name, path]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(os.path.join(CONSUMERS, name), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # a crash in the reader is a rejection too
        return f"{name} raised {e!r}"
    finally:
        sys.argv = saved
    return None if code == 0 else out.getvalue().strip().replace("\n", " | ")


def yaml_blocks(text):
    """Every TAP YAML block (`---` … `...` at one indentation) as text without its indentation."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        stripped = lines[i].lstrip(" ")
        if stripped == "---":
            pad = len(lines[i]) - len(stripped)
            body = []
            i += 1
            while i < len(lines) and lines[i] != " " * pad + "...":
                body.append(lines[i][pad:])
                i += 1
            yield "\n".join(body)
        i += 1


def check(path):
    text = open(path, encoding="utf-8", errors="strict").read()
    if path.endswith(".tap"):
        problem = run_script("validate_tap.py", path)
        if problem:
            return problem
        for block in yaml_blocks(text):
            try:
                yaml.safe_load(block)
            except yaml.YAMLError as e:
                return "YAML block does not load: " + str(e).replace("\n", " ")
    elif path.endswith(".ktap"):
        return run_script("validate_ktap.py", path)
    elif path.endswith(".json"):
        json.loads(text)
    return None


def main(directory):
    bad = 0
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        try:
            problem = check(path)
        except Exception as e:
            problem = repr(e)
        if problem:
            bad += 1
            print(f"{path}\t{problem}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
