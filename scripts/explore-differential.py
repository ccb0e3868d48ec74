#!/usr/bin/env python3
"""Checks `isospec explore` against PostgreSQL's isolationtester.

For each spec: its permutation lines are dropped, isolationtester runs every
interleaving, and its transcript is grouped by what it shows (failed steps
with their messages, steps that waited); `isospec explore --json` runs the
same space and its classes are grouped the same way (ignoring outcome
queries, which isolationtester cannot run).  The two groupings must be
equal: same groups, same sizes.  Only specs whose interleavings are all
realizable can be compared (isolationtester waits out the step timeout on
the others).

  scripts/explore-differential.py ISOLATIONTESTER ISOSPEC CONNINFO SPEC...
  (CONNINFO e.g. "host=/tmp port=5432 user=postgres dbname=isolation_regression")
"""
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

iso, isospec, conninfo, specs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
kv = dict(p.split("=", 1) for p in conninfo.split())
status = 0
for spec in specs:
    text = open(spec).read()
    bare = "\n".join(ln for ln in text.splitlines()
                     if not ln.startswith("permutation") and not ln.startswith("# isospec explore,"))
    with tempfile.NamedTemporaryFile("w", suffix=".spec", delete=False) as f:
        f.write(bare + "\n")
    env = dict(os.environ, PGTZ="America/Los_Angeles", PGDATESTYLE="Postgres, MDY",
               PGOPTIONS="-c intervalstyle=postgres_verbose")
    out = subprocess.run([iso, conninfo], stdin=open(f.name), capture_output=True, text=True, env=env).stdout
    groups = collections.Counter()
    for block in out.split("\nstarting permutation:")[1:]:
        failures, waited, step = [], [], None
        for line in block.splitlines():
            m = re.match(r"step (\S+): (.*)", line)
            if m:
                step = m.group(1)
                if line.endswith("<waiting ...>"):
                    waited.append(step)
            m = re.match(r"ERROR:  (.*)", line)
            if m:
                failures.append((step, m.group(1)))
        groups[(tuple(failures), tuple(waited))] += 1
    js = os.path.join(tempfile.mkdtemp(), "e.json")
    args = [isospec, "explore", "--host", kv["host"], "--port", kv["port"], "--user", kv["user"],
            "--dbname", kv["dbname"], "--max", "1000000", "--json", js, f.name]
    subprocess.run(args, capture_output=True)
    e = json.load(open(js))["specs"][0]
    mine = collections.Counter()
    for c in e["classes"]:
        key = (tuple((x["step"], x["message"]) for x in c["failures"]), tuple(c["waited"]))
        mine[key] += c["count"]
    same = mine == groups and e["unrealizable"] == 0
    print(f"{spec}: isolationtester {sum(groups.values())} permutations in {len(groups)} groups; "
          f"explore {e['explored']} ({e['unrealizable']} not realizable) in {len(mine)} groups: "
          f"{'same' if same else 'DIFFERENT'}")
    if not same:
        status = 1
        for k in set(groups) | set(mine):
            if groups[k] != mine[k]:
                print(f"  {k}: isolationtester {groups[k]}, explore {mine[k]}")
sys.exit(status)
