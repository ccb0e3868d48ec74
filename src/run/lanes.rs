//! Running the specs of one group: serially, or under -j on lanes (one
//! thread and runtime each, bound with the backends of its spec to a CPU
//! where `affinity` says it pays), each lane in a worker database of its
//! own, started longest first as `jobs` orders them.

use super::database::prepare_database;
use super::one::{load_spec, run_one, Loaded, Place, SpecRun};
use super::sink::Sink;
use super::{Events, RunConfig, RunError, Runtime, TestCase};
use crate::jobs::{self, Timings};
use crate::pgwire::ConnParams;

/// The worker databases of one pass (all slots but the first, which is
/// --dbname), created in the background while specs already run in
/// --dbname: a slot takes specs once its database exists.  Not created at
/// all when no group has two specs to run side by side.
pub(super) struct WorkerDbs {
    ready: Vec<bool>,
    pending: futures_util::stream::FuturesUnordered<
        tokio::task::JoinHandle<(usize, Result<(), RunError>)>,
    >,
}

impl WorkerDbs {
    pub(super) fn start(
        cfg: &RunConfig,
        params: &ConnParams,
        slots: &[String],
        needed: bool,
    ) -> Self {
        let mut ready = vec![false; slots.len()];
        ready[0] = true;
        let pending = slots
            .iter()
            .enumerate()
            .skip(1)
            .filter(|_| needed)
            .map(|(slot, db)| {
                let (plan, params, db) = (cfg.database_plan(), params.clone(), db.clone());
                tokio::spawn(
                    async move { (slot, prepare_database(&plan, &params, &db, None).await) },
                )
            })
            .collect();
        WorkerDbs { ready, pending }
    }

    /// The slots whose database exists, highest first (`pop` gives the lowest).
    fn ready_slots(&self) -> Vec<usize> {
        (0..self.ready.len())
            .rev()
            .filter(|&s| self.ready[s])
            .collect()
    }

    /// Waits for the next database; its slot, or None when all exist.
    async fn next(&mut self) -> Result<Option<usize>, RunError> {
        use futures_util::StreamExt;
        match self.pending.next().await {
            Some(joined) => {
                let (slot, r) = joined.map_err(|e| RunError::Task(e.to_string()))?;
                r?;
                self.ready[slot] = true;
                Ok(Some(slot))
            }
            None => Ok(None),
        }
    }

    /// Waits until every database exists.
    pub(super) async fn all(&mut self) -> Result<(), RunError> {
        while self.next().await?.is_some() {}
        Ok(())
    }
}

/// What the groups of one pass share.
pub(super) struct PassEnv<'x> {
    /// One database per worker slot.
    pub slots: &'x [String],
    pub dbs: WorkerDbs,
    pub timings: &'x Timings,
    /// The server's max_prepared_transactions (see `jobs::StartQueue`).
    pub max_prepared: Option<usize>,
}

/// Runs one group: serially, or up to `jobs` at once, each running spec in
/// a database of its own (one per worker slot), longest first (see
/// `jobs`); `alone` specs run first, with nothing alongside.  Each run goes
/// to `sink` as soon as it completes.
pub(super) async fn run_group(
    cfg: &RunConfig,
    params: &ConnParams,
    tests: &[TestCase],
    offset: usize,
    env: &mut PassEnv<'_>,
    sink: &mut Sink<'_>,
) -> Result<(), RunError> {
    let PassEnv {
        slots,
        dbs,
        timings,
        max_prepared,
    } = env;
    let (slots, timings, max_prepared) = (*slots, *timings, *max_prepared);
    if slots.len() <= 1 || tests.len() == 1 {
        for (k, t) in tests.iter().enumerate() {
            if sink.rt.interrupted() {
                break;
            }
            let place = Place {
                params,
                db: &cfg.dbname,
                pin: None,
            };
            let r = run_one(cfg, sink.rt, place, t, load_spec(t), sink.events).await?;
            sink.done(offset + k, r)?;
        }
        return Ok(());
    }
    // Each spec is loaded once: for its placement and cost, then its run.
    let loaded: Vec<Loaded> = tests.iter().map(load_spec).collect();
    let (placement, cost): (Vec<jobs::Placement>, Vec<u64>) = tests
        .iter()
        .zip(&loaded)
        .map(|(t, l)| {
            let checked = l.as_ref().ok();
            let mut placement = checked
                .as_ref()
                .map(|c| jobs::placement(&c.spec, &cfg.dbname))
                .unwrap_or_default();
            placement.alone |= cfg.alone.contains(&t.name);
            let cost = timings
                .get(&t.name)
                .or_else(|| checked.map(|c| jobs::estimate_ms(c)))
                .unwrap_or(0);
            (placement, cost)
        })
        .unzip();
    // CPUs to bind lanes to: none unless binding pays (see `affinity`).
    let cpus = Some(crate::affinity::allowed_cpus())
        .filter(|c| cfg.pin && crate::affinity::worth_binding(&cost, c.len()))
        .unwrap_or_default();
    let mut queue = jobs::StartQueue::new(placement, &cost, max_prepared);
    let lanes = Lanes::start(cfg, sink.rt, params, slots, &cpus, sink.events)?;
    let mut free: Vec<usize> = dbs.ready_slots();
    let mut running: Vec<usize> = Vec::new();
    let mut done = lanes.done;
    // A worker database that could not be made.
    let mut failed: Option<RunError> = None;
    while !queue.is_empty() || !running.is_empty() {
        // After a worker database failed, or an interrupt, nothing starts.
        let stop = failed.is_some() || sink.rt.interrupted();
        while !stop && !free.is_empty() {
            let Some(k) = queue.take_next(&running) else {
                break;
            };
            // A spec that runs alone runs in slot 0, the --dbname database
            // itself (all slots are free then), so specs naming it work.
            let slot = if queue.placement(k).alone {
                free.retain(|&f| f != 0);
                0
            } else {
                free.pop().expect("a free slot")
            };
            running.push(k);
            let job = Job {
                index: k,
                test: tests[k].clone(),
                loaded: loaded[k].clone(),
            };
            if lanes.jobs[slot].send(job).is_err() {
                return Err(RunError::LaneStopped(slot));
            }
        }
        if stop && running.is_empty() {
            break;
        }
        let creating = !stop && !dbs.pending.is_empty() && !queue.is_empty();
        let LaneDone {
            slot,
            index: k,
            run: r,
        } = tokio::select! {
            got = done.recv() => match got {
                Some(d) => d,
                None => return Err(RunError::LaneStopped(0)),
            },
            made = dbs.next(), if creating => {
                match made {
                    // Usable at once, unless a spec running alone holds all.
                    Ok(Some(slot)) if !running.iter().any(|&r| queue.placement(r).alone) => {
                        free.insert(0, slot);
                    }
                    Ok(_) => {}
                    // Start nothing more; let the running specs finish and
                    // report them, then fail.
                    Err(e) => {
                        failed = Some(e);
                        free.clear();
                    }
                }
                continue;
            }
        };
        running.retain(|&x| x != k);
        if failed.is_some() {
            // Nothing more starts.
        } else if queue.placement(k).alone {
            free = dbs.ready_slots();
        } else {
            free.push(slot);
        }
        sink.done(offset + k, r?)?;
    }
    failed.map_or(Ok(()), Err)
}

/// What a lane is sent: a test of the group, loaded.
struct Job {
    /// The test's index in its group.
    index: usize,
    test: TestCase,
    loaded: Loaded,
}

/// What a lane sends back.
struct LaneDone {
    slot: usize,
    /// The test's index in its group.
    index: usize,
    run: Result<SpecRun, RunError>,
}

/// The -j lanes: one runner thread per worker slot, each with a runtime of
/// its own, bound with its specs' backends to one CPU where `affinity`
/// allows (a local server, --no-pin not given).  Dropping `jobs` ends them.
struct Lanes {
    jobs: Vec<tokio::sync::mpsc::UnboundedSender<Job>>,
    done: tokio::sync::mpsc::UnboundedReceiver<LaneDone>,
}

impl Lanes {
    /// Starts a lane per slot; with `cpus`, binds them as `affinity` says.
    fn start(
        cfg: &RunConfig,
        rt: &Runtime,
        params: &ConnParams,
        slots: &[String],
        cpus: &[usize],
        events: &Events,
    ) -> Result<Lanes, RunError> {
        let postmaster = crate::affinity::local_postmaster(params).filter(|_| !cpus.is_empty());
        let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
        let mut jobs = Vec::new();
        // One copy of the configuration for the lanes' threads, read-only.
        let cfg = std::sync::Arc::new(cfg.clone());
        for (slot, db) in slots.iter().enumerate() {
            let (job_tx, job_rx) = tokio::sync::mpsc::unbounded_channel();
            let cpu = crate::affinity::lane_cpu(slot, cpus).filter(|_| postmaster.is_some());
            let lane = Lane {
                slot,
                cpu,
                postmaster,
                cfg: cfg.clone(),
                rt: rt.clone(),
                params: params.clone(),
                db: db.clone(),
                events: events.clone(),
            };
            let done_tx = done_tx.clone();
            std::thread::Builder::new()
                .name(format!("isospec-lane-{slot}"))
                .spawn(move || lane.run(job_rx, done_tx))
                .map_err(RunError::Thread)?;
            jobs.push(job_tx);
        }
        Ok(Lanes { jobs, done })
    }
}

/// One lane: where its specs run, and on which CPU.
struct Lane {
    slot: usize,
    cpu: Option<usize>,
    postmaster: Option<i32>,
    cfg: std::sync::Arc<RunConfig>,
    rt: Runtime,
    params: ConnParams,
    db: String,
    events: Events,
}

impl Lane {
    /// The lane's thread: runs the specs it is sent in its database.
    fn run(
        self,
        mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>,
        done: tokio::sync::mpsc::UnboundedSender<LaneDone>,
    ) {
        use futures_util::FutureExt;
        let slot = self.slot;
        let cpu = self
            .cpu
            .filter(|&c| crate::affinity::pin_current_thread(c).is_ok());
        let pin = self.postmaster.zip(cpu);
        let rt = match super::setup::runtime() {
            Ok(rt) => rt,
            Err(source) => {
                if let Some(Job { index, .. }) = jobs.blocking_recv() {
                    let run = Err(RunError::LaneRuntime { slot, source });
                    let _ = done.send(LaneDone { slot, index, run });
                }
                return;
            }
        };
        rt.block_on(async {
            while let Some(Job {
                index,
                test: t,
                loaded,
            }) = jobs.recv().await
            {
                let place = Place {
                    params: &self.params,
                    db: &self.db,
                    pin,
                };
                let one = run_one(&self.cfg, &self.rt, place, &t, loaded, &self.events);
                let run = std::panic::AssertUnwindSafe(one)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(RunError::Panicked(t.name.clone())));
                if done.send(LaneDone { slot, index, run }).is_err() {
                    break;
                }
            }
        });
    }
}
