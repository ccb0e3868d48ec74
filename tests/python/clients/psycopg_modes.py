"""psycopg 3 in its three ways of sending parameters: text (%s, the
server infers untyped strings), binary (%b, typed), and pipeline mode
with an error in the middle of the pipeline.  Prints the table as one
text value, read through the proxy."""

import datetime
import decimal
import uuid

import psycopg
from psycopg.types.json import Jsonb

with psycopg.connect(application_name="texts", autocommit=True) as conn:
    conn.execute(
        "INSERT INTO kinds VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (1, "it's {text}", 2.5, decimal.Decimal("-12.340"), datetime.date(2026, 12, 7), ["a", "b}"], None),
    )

with psycopg.connect(application_name="binaries", autocommit=True) as conn:
    conn.execute(
        "INSERT INTO kinds VALUES (%b, %b, %b, %b, %b, %b, %b)",
        (2, "bin", 0.1, decimal.Decimal("12345678901234567890.5"), datetime.date(1999, 1, 31), ["x", None], None),
    )
    conn.execute(
        "INSERT INTO extra VALUES (%b, %b, %b, %b, %b, %b)",
        (
            uuid.UUID("12345678-9abc-def0-0102-030405060708"),
            b"\x00\xff}",
            datetime.datetime(2026, 12, 7, 4, 51, 29, 123400, tzinfo=datetime.timezone.utc),
            Jsonb({"k": [1, 2]}),
            True,
            [3, 4],
        ),
    )

with psycopg.connect(application_name="piped", autocommit=True) as conn:
    try:
        with conn.pipeline():
            conn.execute("INSERT INTO kinds (id, t) VALUES (%s, %s)", (3, "piped"))
            conn.execute("SELECT 1 / %s", (0,))
            conn.execute("INSERT INTO kinds (id, t) VALUES (%s, %s)", (4, "never"))
    except psycopg.errors.DivisionByZero:
        print("pipeline: division by zero")

with psycopg.connect(application_name="reader") as conn:
    row = conn.execute(
        "SELECT (SELECT string_agg(format('%s/%s/%s/%s/%s/%s/%s', id, t, f, n, d, a, z), ';' ORDER BY id) FROM kinds)"
        " || ' # ' || (SELECT string_agg(format('%s/%s/%s/%s/%s/%s', u, b, ts, j, ok, ints), ';') FROM extra)"
    ).fetchone()
    assert row is not None
    print(f"table: {row[0]}")
