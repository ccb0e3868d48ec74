// A node-postgres Pool of 4 workers: each claims a job with SKIP LOCKED and
// bumps a counter read-modify-write in the client (the lost update a test
// of this kind is flaky about).  Connects through libpq's PG* variables,
// which isospec record points at its proxy.  Prints what it saw.
"use strict";
const { Pool } = require("pg");

async function worker(pool, w) {
  for (let i = 0; i < 2; i++) {
    const c = await pool.connect();
    try {
      await c.query("BEGIN");
      const job = await c.query(
        "SELECT id FROM jobs WHERE worker IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
      );
      if (job.rows.length > 0) {
        await c.query("UPDATE jobs SET worker = $1 WHERE id = $2", [w, job.rows[0].id]);
      }
      const n = await c.query("SELECT n FROM counter WHERE id = 1");
      await c.query("UPDATE counter SET n = $1 WHERE id = 1", [n.rows[0].n + 1]);
      await c.query("COMMIT");
    } finally {
      c.release();
    }
  }
}

async function main() {
  const pool = new Pool({ max: 4 });
  await Promise.all([0, 1, 2, 3].map((w) => worker(pool, `w${w}`)));
  const r = await pool.query(
    "SELECT (SELECT count(*) FROM jobs WHERE worker IS NOT NULL) AS claimed, (SELECT n FROM counter WHERE id = 1) AS n"
  );
  console.log(`claimed=${r.rows[0].claimed} n=${r.rows[0].n}`);
  await pool.end();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
