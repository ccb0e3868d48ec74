"""make bench-record's program: psycopg 3 connections (libpq's PG*
variables; one, or THREADS on as many threads) making N INSERT and N
SELECT round trips in all, each its own autocommit statement with bound
parameters.  Prints the loop's wall time
this process's CPU time, and the CPU time its parent (isospec record,
when recorded) used during the loop, in seconds."""

import os
import resource
import sys
import threading
import time

import psycopg

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1


def parent_cpu() -> float:
    """The CPU seconds of the process that started this one (isospec
    record's proxy, when recorded), from /proc."""
    fields = open(f"/proc/{os.getppid()}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")




def work(first: int, count: int) -> None:
    with psycopg.connect(autocommit=True) as conn:
        cur = conn.cursor()
        for i in range(first, first + count):
            cur.execute("INSERT INTO bench (id, v) VALUES (%s, %s)", (i, "x"))
            cur.execute("SELECT v FROM bench WHERE id = %s", (i,))
            cur.fetchone()


parent_start = parent_cpu()
start = time.perf_counter()
if threads == 1:
    work(0, n)
else:
    share = n // threads
    pool = [threading.Thread(target=work, args=(k * share, share)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
wall = time.perf_counter() - start
parent = parent_cpu() - parent_start
ru = resource.getrusage(resource.RUSAGE_SELF)
print(f"wall={wall:.3f} cpu={ru.ru_utime + ru.ru_stime:.3f} parent_cpu={parent:.3f}")
