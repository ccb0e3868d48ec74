"""COPY through psycopg2: copy_expert with CSV (quotes, a brace, NULL),
copy_from with the text format, and copy_expert TO STDOUT.  Prints an
audit of the table and the rows COPY TO printed."""

import io

import psycopg2  # type: ignore[import-untyped]

conn = psycopg2.connect("application_name=loader")
cur = conn.cursor()
csv = "".join('%d,"item %d, {x}",%s\n' % (i, i, "" if i % 5 == 0 else "%d.5" % i) for i in range(1, 2001))
cur.copy_expert("COPY items (id, name, price) FROM STDIN WITH (FORMAT csv)", io.StringIO(csv))
text = "".join("%d\tline\\t%d\t\\N\n" % (i, i) for i in range(3001, 3011))
cur.copy_from(io.StringIO(text), "items", columns=("id", "name", "price"))
conn.commit()
out = io.StringIO()
cur.copy_expert("COPY (SELECT id, name FROM items WHERE id IN (1, 3001) ORDER BY id) TO STDOUT", out)
conn.commit()
cur.execute("SELECT count(*), count(price), md5(string_agg(name || coalesce(price::text, '-'), ',' ORDER BY id)) FROM items")
print("items=%d priced=%d digest=%s" % cur.fetchone())
print("copied out:", out.getvalue().replace("\t", "|").replace("\n", ";"))
conn.close()
