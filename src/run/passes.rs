//! Passes over the selection (`--repeat`, `--until-fail`), each in fresh
//! databases, group after group; every finished spec goes through one sink
//! that writes regression.diffs, accepts, tracks flakes and emits it.

use super::database::{drop_database, max_prepared_transactions, prepare_database, spec_database};
use super::lanes::{run_group, PassEnv, WorkerDbs};
use super::sink::{ClassSoFar, Sink};
use super::{Events, RunConfig, RunError, Runtime};
use crate::jobs::Timings;
use crate::outcome::{Phase, RunEvent};
use crate::pgwire::ConnParams;
use std::path::Path;

/// One pass over all groups, repeated as configured.
pub(super) async fn run_passes(
    cfg: &RunConfig,
    rt: &Runtime,
    params: &ConnParams,
    timings: &Timings,
    events: &Events,
    diffs_path: &Path,
    tally: &mut ClassSoFar,
) -> Result<(), RunError> {
    // One database per worker slot under -j (the first is --dbname itself,
    // so specs that name the database work when run alone), dropped at the end.
    // --use-existing issues no database DDL: there is one database, so the
    // specs run one after another in it.
    let jobs = if cfg.use_existing { 1 } else { cfg.jobs.max(1) };
    if cfg.use_existing && cfg.jobs > 1 {
        events.emit(RunEvent::Note(format!(
            "--use-existing: the specs run one after another in database \"{}\" (-j {} needs a database per lane, which --use-existing does not create)",
            cfg.dbname, cfg.jobs
        )));
    }
    let slots: Vec<String> = (0..jobs).map(|i| spec_database(cfg, i)).collect();
    prepare_database(&cfg.database_plan(), params, &cfg.dbname, Some(events)).await?;
    let mut sink = Sink {
        cfg,
        rt,
        events,
        diffs_path,
        tally,
        counter: 0,
        failed: false,
        pass: 0,
    };
    let result = run_passes_in(cfg, params, &slots, timings, &mut sink).await;
    let keep = if cfg.drop_after && !cfg.use_existing {
        0
    } else {
        1
    };
    futures_util::future::join_all(slots.iter().skip(keep).map(|db| drop_database(params, db)))
        .await;
    result
}

async fn run_passes_in(
    cfg: &RunConfig,
    params: &ConnParams,
    slots: &[String],
    timings: &Timings,
    sink: &mut Sink<'_>,
) -> Result<(), RunError> {
    sink.events.emit(RunEvent::Phase(Phase::RunningTests));
    sink.events.emit(RunEvent::Started {
        total: (!cfg.until_fail).then_some((cfg.tests.len() * cfg.repeat.max(1)) as u64),
    });
    // --until-fail repeats until a failure, at most --repeat passes when given.
    let passes = match (cfg.until_fail, cfg.repeat) {
        (true, r) if r <= 1 => usize::MAX,
        (_, r) => r.max(1),
    };
    for pass in 0..passes {
        if sink.rt.interrupted() {
            break;
        }
        sink.tally.finished.fill(false);
        if pass > 0 && !cfg.use_existing {
            // Every pass starts like the first, in fresh databases: objects a
            // spec leaves behind (PostgreSQL's partition-concurrent-attach
            // leaves a table) must not fail the next pass.
            prepare_database(&cfg.database_plan(), params, &cfg.dbname, None).await?;
        }
        let needed = slots.len() > 1 && cfg.tests.windows(2).any(|w| w[0].group == w[1].group);
        let mut env = PassEnv {
            slots,
            dbs: WorkerDbs::start(cfg, params, slots, needed),
            timings,
            max_prepared: if needed {
                max_prepared_transactions(params).await
            } else {
                None
            },
        };
        sink.pass = pass;
        sink.failed = false;
        let mut i = 0;
        while i < cfg.tests.len() && !sink.rt.interrupted() {
            let g = cfg.tests[i].group;
            let mut j = i;
            while j < cfg.tests.len() && cfg.tests[j].group == g {
                j += 1;
            }
            run_group(cfg, params, &cfg.tests[i..j], i, &mut env, sink).await?;
            i = j;
        }
        // None may still be being created when they are dropped or remade.
        env.dbs.all().await?;
        if cfg.until_fail && sink.failed {
            sink.events.emit(RunEvent::StoppedAfterPass(pass + 1));
            break;
        }
    }
    Ok(())
}
