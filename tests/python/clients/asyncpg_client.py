"""asyncpg: binary protocol throughout, named prepared statements, and
its own introspection queries (the codecs of an array and a custom
enum).  Prints the table as one text value, read through the proxy."""

import asyncio
import datetime

import asyncpg  # type: ignore[import-untyped]


async def main() -> None:
    conn = await asyncpg.connect(server_settings={"application_name": "apg"})
    ins = await conn.prepare("INSERT INTO apg VALUES ($1, $2, $3, $4, $5)")
    await ins.fetch(1, "one", [1, 2, 3], datetime.datetime(2026, 12, 7, 5, 0, tzinfo=datetime.timezone.utc), "red")
    await ins.fetch(2, None, [], None, "blue")
    await conn.execute("UPDATE apg SET label = $1 WHERE id = $2", "two", 2)
    text = await conn.fetchval(
        "SELECT string_agg(format('%s/%s/%s/%s/%s', id, label, ints, at, mood), ';' ORDER BY id) FROM apg"
    )
    print(f"table: {text}")
    await conn.close()


asyncio.run(main())
