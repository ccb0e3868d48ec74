//! `isospec explore` (issue #15, in progress): runs the interleavings of a
//! spec's steps that nobody wrote down as permutations, to group them by
//! outcome.  So far this holds the interleaving space (`space`): its size,
//! a stable numbering shared with isolationtester's enumeration order, and
//! unranking, which turns both exhaustive walks and seeded uniform sampling
//! into walks over indices; and the outcome classes (`classes`): grouping
//! interleavings by what happened, with a stable representative and its
//! permutation line; running them through the executor in batches
//! (`walk`), and the text, JSON and `--write` output (`report`).  The
//! command line is `cli::explore`.

pub mod classes;
pub mod report;
pub mod space;
pub mod walk;
