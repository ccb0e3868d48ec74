"""A flaky thread-pool test, as teams write them: four threads each take
the next commit id from a server-side function, in one transaction per
thread, and check their own commit with bound parameters; an audit
connection then prints how many commits and distinct ids there are.  Run
directly, the count of distinct ids changes from run to run."""

from concurrent.futures import ThreadPoolExecutor

import psycopg


def commit(n: int) -> None:
    with psycopg.connect() as conn:
        with conn.transaction():
            conn.execute("INSERT INTO commits (id, author) SELECT next_commit_id(), %s", (f"w{n}",))
            mine = conn.execute("SELECT id FROM commits WHERE author = %s AND id > %s", (f"w{n}", 0)).fetchall()
            assert len(mine) == 1, mine


with ThreadPoolExecutor(4) as pool:
    list(pool.map(commit, range(4)))

with psycopg.connect() as conn:
    row = conn.execute("SELECT count(*), count(DISTINCT id) FROM commits").fetchone()
    assert row is not None
    print(f"commits: {row[0]}, distinct ids: {row[1]}")
