//! The order in which `walk` draws interleavings: the whole space in its
//! stable order, a seeded uniform sample, a shuffled walk for a budget,
//! or a preemption-bounded or reduced walk (`bound`), which learns the
//! steps that wait as the runs come in; a partition keeps every N-th.

use super::bound;
use super::space::{Interleaving, Space};
use rand::{Rng, SeedableRng};
use std::collections::HashSet;

/// Which interleavings a walk draws.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Search {
    /// The whole space when it has at most `--max`, else a seeded sample.
    #[default]
    Space,
    /// Every interleaving with at most K preemptions, in the stable order.
    Preemptions(usize),
    /// K = 0, 1, 2, … while the budget and `--max` allow.
    RisingPreemptions,
    /// One interleaving per trace: `commutes[s][i]` says whether step i
    /// of session s commutes with other sessions' steps.
    Reduced(Vec<Vec<bool>>),
}

/// The order in which interleavings are tried: the whole space in its
/// stable order when it fits in `limit`, else distinct indices drawn
/// uniformly from a ChaCha8 stream seeded with `seed` (the same seed draws
/// the same indices on every machine).  `shuffled` draws the whole space
/// in random order (a budget without --max: whatever the budget allows is
/// a uniform sample, and all of it if the budget suffices).  A preemption
/// bound or commuting steps walk their part of the space in the stable
/// order instead.  A partition keeps every N-th drawn index.
pub struct Order {
    pub(super) space: Space,
    pub(super) steps: Vec<usize>,
    pub(super) size: Option<u128>,
    pub(super) limit: u128,
    pub(super) shuffled: bool,
    source: Source,
    /// Indices drawn so far (all partitions'), counted against `limit`.
    pub(super) drawn: u128,
    pub(super) partition: Option<(usize, usize)>,
    /// Drawn for this partition with exactly K preemptions, per K
    /// (preemption and reduced searches).
    pub(super) per_k: Vec<u128>,
    /// The source had nothing more to draw.
    pub(super) exhausted: bool,
    /// At the limit, the source was asked once whether it had more.
    pub(super) peeked: bool,
    /// A preemption search that learns which steps wait (`learn`): the
    /// switch after such a step is free, and the walk starts again over
    /// the larger set, skipping the indices in `ran`.
    pub(super) learning: Option<Search>,
    pub(super) free: bound::Free,
    pub(super) ran: HashSet<u128>,
}

enum Source {
    Stable,
    Random {
        rng: Box<rand_chacha::ChaCha8Rng>,
        seen: HashSet<u128>,
    },
    Walk(Box<bound::Walk>),
    /// K rising from 0: the walk of at most K, keeping exactly K.
    Rising {
        k: usize,
        walk: Box<bound::Walk>,
    },
}

impl Order {
    pub fn new(space: Space, limit: u128, seed: u64) -> Order {
        let size = space.size();
        let exhaustive = size.is_some_and(|s| s <= limit);
        Order {
            steps: space.steps().to_vec(),
            space,
            size,
            limit,
            shuffled: false,
            source: if exhaustive {
                Source::Stable
            } else {
                Source::Random {
                    rng: Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(seed)),
                    seen: HashSet::new(),
                }
            },
            drawn: 0,
            partition: None,
            per_k: Vec::new(),
            exhausted: false,
            peeked: false,
            learning: None,
            free: bound::Free::new(),
            ran: HashSet::new(),
        }
    }

    /// The whole space, in a random order drawn from `seed`.
    pub fn shuffled(space: Space, seed: u64) -> Order {
        let limit = space.size().unwrap_or(u128::MAX);
        Order {
            shuffled: true,
            source: Source::Random {
                rng: Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(seed)),
                seen: HashSet::new(),
            },
            ..Order::new(space, limit, seed)
        }
    }

    /// The interleavings a search keeps, in the stable order, at most
    /// `limit`.
    pub fn search(space: Space, limit: u128, search: &Search) -> Order {
        let steps = space.steps().to_vec();
        let source = match search {
            Search::Preemptions(k) => Source::Walk(Box::new(bound::Walk::new(
                &steps,
                bound::Rule::Preemptions(*k),
            ))),
            Search::RisingPreemptions => Source::Rising {
                k: 0,
                walk: Box::new(bound::Walk::new(&steps, bound::Rule::Preemptions(0))),
            },
            Search::Reduced(commutes) => Source::Walk(Box::new(bound::Walk::new(
                &steps,
                bound::Rule::Reduced(commutes.clone()),
            ))),
            Search::Space => return Order::new(space, limit, 0),
        };
        let learning = matches!(search, Search::Preemptions(_) | Search::RisingPreemptions)
            .then(|| search.clone());
        Order {
            source,
            learning,
            free: steps.iter().map(|&n| vec![false; n]).collect(),
            ..Order::new(space, limit, 0)
        }
    }

    /// Keeps part `k` of `n` of what is drawn.  Parts learn nothing (see
    /// `learn`), so that they split one set exactly.
    pub fn partitioned(mut self, partition: Option<(usize, usize)>) -> Order {
        self.partition = partition;
        if partition.is_some() {
            self.learning = None;
        }
        self
    }

    /// Steps (session, index) seen waiting on a lock: moving on from them
    /// is forced, no preemption (as in CHESS).  A preemption search keeps
    /// them, and when one is new walks again over the interleavings the
    /// bound now admits, skipping those drawn already.
    pub fn learn(&mut self, waited: &[(usize, usize)]) {
        let Some(search) = &self.learning else {
            return;
        };
        let mut new = false;
        for &(s, i) in waited {
            if let Some(f) = self.free.get_mut(s).and_then(|f| f.get_mut(i)) {
                new |= !*f;
                *f = true;
            }
        }
        if !new {
            return;
        }
        self.exhausted = false;
        self.peeked = false;
        let rule = |k| bound::Rule::Preemptions(k);
        self.source = match (search, &self.source) {
            (Search::Preemptions(k), _) => Source::Walk(Box::new(bound::Walk::with_free(
                &self.steps,
                rule(*k),
                self.free.clone(),
            ))),
            (_, Source::Rising { k, .. }) => Source::Rising {
                k: *k,
                walk: Box::new(bound::Walk::with_free(
                    &self.steps,
                    rule(*k),
                    self.free.clone(),
                )),
            },
            _ => return,
        };
    }

    /// The interleavings drawn per K: with learning, counted once the
    /// walk is over with every wait seen (the same whatever the lanes).
    pub fn per_k(&self) -> Vec<u128> {
        if self.learning.is_none() {
            return self.per_k.clone();
        }
        let mut per_k: Vec<u128> = Vec::new();
        for &i in &self.ran {
            let k = bound::preemptions(&self.interleaving(i), &self.steps, &self.free);
            if per_k.len() <= k {
                per_k.resize(k + 1, 0);
            }
            per_k[k] += 1;
        }
        per_k
    }

    /// The steps learnt to wait, as (session, index).
    pub fn waiting_steps(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (s, f) in self.free.iter().enumerate() {
            out.extend(
                f.iter()
                    .enumerate()
                    .filter(|(_, w)| **w)
                    .map(|(i, _)| (s, i)),
            );
        }
        out
    }

    /// Whether the walk, if not cut short, covers the whole space.
    pub fn exhaustive(&self) -> bool {
        matches!(self.source, Source::Stable) && self.size.is_some_and(|s| s <= self.limit)
    }

    /// Whether indices are drawn at random.
    pub fn sampled(&self) -> bool {
        matches!(self.source, Source::Random { .. })
    }

    /// The next index of any partition, None when the source is done.
    fn draw(&mut self) -> Option<u128> {
        match &mut self.source {
            Source::Stable => {
                let i = self.drawn;
                (i < self.size?).then_some(i)
            }
            Source::Random { rng, seen } => {
                // Beyond u128 the sample is drawn from the first 2^128 - 1.
                let size = self.size.unwrap_or(u128::MAX);
                if u128::try_from(seen.len()).unwrap_or(u128::MAX) >= size {
                    return None;
                }
                loop {
                    let i = rng.gen_range(0..size);
                    if seen.insert(i) {
                        break Some(i);
                    }
                }
            }
            Source::Walk(walk) => loop {
                let i = self.space.rank(&walk.next()?)?;
                // After learning, the walk meets again what was drawn.
                if self.learning.is_none() || self.ran.insert(i) {
                    break Some(i);
                }
            },
            Source::Rising { k, walk } => loop {
                match walk.next() {
                    // Learning: at most K, each once (what learning made
                    // cheaper comes at this K); else exactly K.
                    Some(il) if self.learning.is_some() => {
                        let i = self.space.rank(&il)?;
                        if self.ran.insert(i) {
                            break Some(i);
                        }
                    }
                    Some(il) if bound::preemptions(&il, &self.steps, &self.free) == *k => {
                        break self.space.rank(&il);
                    }
                    Some(_) => continue,
                    None => {
                        // Every switch a preemption: no interleaving has more.
                        if *k >= self.steps.iter().sum::<usize>() {
                            return None;
                        }
                        *k += 1;
                        **walk = bound::Walk::with_free(
                            &self.steps,
                            bound::Rule::Preemptions(*k),
                            self.free.clone(),
                        );
                    }
                }
            },
        }
    }

    /// The next interleaving's index (of this partition), None when the
    /// walk is done.
    pub fn next_index(&mut self) -> Option<u128> {
        loop {
            if self.drawn >= self.limit {
                // Whether the walk had more than the limit.
                if !self.peeked {
                    self.peeked = true;
                    // A look ahead, not a draw: it does not count as run.
                    self.exhausted = match self.draw() {
                        Some(i) => {
                            self.ran.remove(&i);
                            false
                        }
                        None => true,
                    };
                }
                return None;
            }
            let Some(index) = self.draw() else {
                self.exhausted = true;
                return None;
            };
            let position = self.drawn;
            self.drawn += 1;
            if let Some((k, n)) = self.partition {
                if position % n as u128 != (k - 1) as u128 {
                    continue;
                }
            }
            if matches!(self.source, Source::Walk(_) | Source::Rising { .. }) {
                let k = bound::preemptions(&self.interleaving(index), &self.steps, &self.free);
                if self.per_k.len() <= k {
                    self.per_k.resize(k + 1, 0);
                }
                self.per_k[k] += 1;
            }
            return Some(index);
        }
    }

    pub fn interleaving(&self, index: u128) -> Interleaving {
        self.space.nth(index).expect("indices come from the space")
    }
}
