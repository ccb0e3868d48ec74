"""A worker killed inside its transaction (SIGKILL after an UPDATE), then
another connection updates the same row: it waits until the server has
rolled the worker back.  Prints the balance it then reads."""

import os
import signal
import subprocess
import sys

import psycopg2  # type: ignore[import-untyped]

if sys.argv[1:] == ["worker"]:
    c = psycopg2.connect("application_name=worker")
    c.cursor().execute("UPDATE acct SET n = n + 1 WHERE id = 1")  # psycopg2 opened a transaction
    os.kill(os.getpid(), signal.SIGKILL)

status = subprocess.run([sys.executable, __file__, "worker"]).returncode
c = psycopg2.connect("application_name=after")
c.autocommit = True
cur = c.cursor()
cur.execute("UPDATE acct SET n = n + 10 WHERE id = 1")
cur.execute("SELECT n FROM acct WHERE id = 1")
print("worker status=%d n=%d" % (status, cur.fetchone()[0]))
c.close()
