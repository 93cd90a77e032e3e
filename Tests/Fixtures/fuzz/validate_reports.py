#!/usr/bin/env python3
"""Validates every report a fuzz campaign wrote, in one process (one python start per batch).

usage: validate_reports.py DIR
  *.tap   PyPI tap.py (its own rules) and PyYAML on every YAML block, via Tests/Consumers/consumers.py
  *.ktap  the kernel's kunit_parser, via Tests/Consumers/consumers.py
  *.json  json.load
  *.xml   Jenkins' junit-10.xsd (xmllint), junitparser and xunitparser, via Tests/Consumers/consumers.py
Prints "PATH<TAB>problem" for each invalid file; exits 0 when there is none, 1 otherwise.
"""
import importlib.util
import json
import os
import sys

CONSUMERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Consumers", "consumers.py")
_spec = importlib.util.spec_from_file_location("consumers", CONSUMERS)
consumers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consumers)


def problems_of(names, path):
    """What the shipped consumers (Tests/Consumers/consumers.py) found wrong with the file."""
    found = []
    for name in names:
        seen = consumers.CONSUMERS[name](path)
        found += [f"{name}: {p}" for p in seen.get("problems", [])]
    return " | ".join(found) or None


def check(path):
    text = open(path, encoding="utf-8", errors="strict").read()
    if path.endswith(".tap"):
        # tap.py with its own rules, and every YAML block through PyYAML.
        return problems_of(["tappy", "yaml"], path)
    elif path.endswith(".ktap"):
        return problems_of(["kunit"], path) if text.startswith("KTAP version 1\n") else "not KTAP"
    elif path.endswith(".xml"):
        return problems_of(["xsd", "junitparser", "xunitparser"], path)
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
