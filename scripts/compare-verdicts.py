#!/usr/bin/env python3
"""scripts/compare-verdicts.py RUN_JSON JUNIT_XML NAMES LABEL [FAILING]

make check-install's one comparison: each spec of NAMES (space-separated)
must have in pytest's JUnit XML the verdict `isospec run --json` gave it
(passed for "ok", failed otherwise); with FAILING (space-separated), those
and only those must fail.  Prints what differs, or one line naming LABEL.
"""
import json
import sys
import xml.etree.ElementTree as ET

run_json, junit, names, label = sys.argv[1:5]
failing = sys.argv[5].split() if len(sys.argv) > 5 else None
run = {s["name"]: s["status"] for s in json.load(open(run_json))["specs"]}
py = {}
for case in ET.parse(junit).getroot().iter("testcase"):
    kids = {k.tag for k in case}
    py[case.get("name")] = "failed" if kids & {"failure", "error"} else "skipped" if "skipped" in kids else "passed"
bad = []
for n in names.split():
    want = "passed" if run.get(n) == "ok" else "failed"
    if py.get(n) != want:
        bad.append(f"{n}: isospec run says {run.get(n)}, pytest says {py.get(n)}")
    if failing is not None and py.get(n) != ("failed" if n in failing else "passed"):
        bad.append(f"{n}: pytest says {py.get(n)}, {'failed' if n in failing else 'passed'} expected")
print("\n".join(bad) or f"check-install: {label}: pytest gives isospec run's verdicts: "
      + ", ".join(f"{n} {py[n]}" for n in names.split()))
sys.exit(1 if bad else 0)
