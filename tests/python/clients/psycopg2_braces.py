"""psycopg2 interpolates parameters into the statement text on the client:
jsonb, text[] and text values holding braces reach the server as literals
in the SQL.  Prints an audit of what was stored."""

import psycopg2  # type: ignore[import-untyped]
from psycopg2.extras import Json  # type: ignore[import-untyped]

conn = psycopg2.connect("application_name=writer")
cur = conn.cursor()
rows = [
    (Json({"k": [1, 2], "s": "a}b"}), ["x}", "{y"], "note {with} braces"),
    (Json({"nested": {"deep": "}}"}}), ["{}"], "E'\\x7d' is not a brace"),
    (Json([]), [], "back\\slash }"),
]
for payload, tags, note in rows:
    cur.execute("INSERT INTO events (payload, tags, note) VALUES (%s, %s, %s)", (payload, tags, note))
# A literal written in the SQL itself, and a quoted name holding a brace.
cur.execute("""INSERT INTO events (payload, tags, note) VALUES ('{"lit": "}"}', '{a,b}', $$dollar {q}$$) RETURNING id AS "the}id" """)
conn.commit()
audit = psycopg2.connect("application_name=auditor")
a = audit.cursor()
a.execute("SELECT count(*), md5(string_agg(payload::text || tags::text || note, ';' ORDER BY id)) FROM events")
print("events=%d digest=%s" % a.fetchone())
audit.close()
conn.close()
