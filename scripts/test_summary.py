#!/usr/bin/env python3
"""Counts individual test cases from meson's test logs (gtest cases, or whole tests otherwise)
and prints the closing line `N passed, N failed, N skipped` over all of them.
Usage: test_summary.py TESTLOG.json... (a missing log, i.e. a build that failed, counts as one failure)."""
import json
import os
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
entries = []  # (log, entry)
for log in sys.argv[1:]:
    if not os.path.exists(log):
        print(f"test_summary: {log} missing (its build failed?): counted as one failure", file=sys.stderr)
        failed += 1
        continue
    with open(log) as f:
        entries += [(log, json.loads(line)) for line in f if line.strip()]
for log, e in entries:
    result = e.get("result")
    name = e["name"].split(" / ")[-1]  # "project:suite / name" once suites exist
    xml_path = os.path.join(os.path.dirname(os.path.dirname(log)), name + ".xml")
    cases = []
    if os.path.exists(xml_path):
        try:
            cases = ET.parse(xml_path).getroot().iter("testcase")
            cases = list(cases)
        except ET.ParseError:
            cases = []
    if cases:
        bad_cases = 0
        for c in cases:
            if c.find("failure") is not None or c.find("error") is not None:
                failed += 1
                bad_cases += 1
            elif c.find("skipped") is not None or c.get("result") == "skipped" or c.get("status") == "notrun":
                skipped += 1
            else:
                passed += 1
        if result not in ("OK", "EXPECTEDFAIL", "SKIP") and bad_cases == 0:
            failed += 1  # crashed or timed out after the cases it reported
    elif result in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif result == "SKIP":
        skipped += 1
    else:
        failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
