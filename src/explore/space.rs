//! The space of interleavings `isospec explore` walks: every order of the
//! spec's steps that keeps each session's steps in their order.
//!
//! Interleavings are numbered in one stable order, the order in which
//! isolationtester enumerates a spec without permutation lines (at each
//! position, the lowest-numbered session that still has steps first), so
//! that index `i` names the same interleaving on every run and machine.
//! Walking the indices in order is the exhaustive exploration; drawing
//! indices uniformly at random from a seeded generator is uniform sampling
//! over interleavings (not over sessions' choices), reproducible from the
//! seed.

/// An interleaving: the session of each position, in order.
pub type Interleaving = Vec<usize>;

/// The interleavings of sessions with `steps[s]` steps each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    steps: Vec<usize>,
}

impl Space {
    pub fn new(steps: Vec<usize>) -> Space {
        Space { steps }
    }

    /// The interleavings of a spec's sessions' steps.
    pub fn of(spec: &crate::spec::CheckedSpec) -> Space {
        Space::new(spec.spec.sessions.iter().map(|s| s.steps.len()).collect())
    }

    /// The steps of each session.
    pub fn steps(&self) -> &[usize] {
        &self.steps
    }

    /// How many interleavings there are: the multinomial coefficient
    /// (sum of steps)! / prod(steps!), or None when it exceeds u128.
    pub fn size(&self) -> Option<u128> {
        multinomial(&self.steps)
    }

    /// The interleaving numbered `index` (0-based) in the stable order;
    /// None when `index` is outside the space.
    pub fn nth(&self, mut index: u128) -> Option<Interleaving> {
        if index >= self.size()? {
            return None;
        }
        let mut left = self.steps.clone();
        let total: usize = left.iter().sum();
        let mut out = Vec::with_capacity(total);
        for _ in 0..total {
            let mut chosen = None;
            for s in 0..left.len() {
                if left[s] == 0 {
                    continue;
                }
                left[s] -= 1;
                let below = multinomial(&left).expect("a sub-space of a space that fits");
                if index < below {
                    chosen = Some(s);
                    break;
                }
                index -= below;
                left[s] += 1;
            }
            out.push(chosen.expect("index within the space"));
        }
        Some(out)
    }

    /// The number of an interleaving in the stable order (the inverse of
    /// `nth`); None when it is not an interleaving of this space.
    pub fn rank(&self, interleaving: &[usize]) -> Option<u128> {
        let mut left = self.steps.clone();
        if interleaving.len() != left.iter().sum::<usize>() {
            return None;
        }
        let mut index = 0u128;
        for &chosen in interleaving {
            if chosen >= left.len() || left[chosen] == 0 {
                return None;
            }
            for s in 0..chosen {
                if left[s] > 0 {
                    left[s] -= 1;
                    index += multinomial(&left)?;
                    left[s] += 1;
                }
            }
            left[chosen] -= 1;
        }
        Some(index)
    }
}

/// (sum k)! / prod(k!), computed as a product of binomials so that it
/// overflows only when the result does.
pub fn multinomial(parts: &[usize]) -> Option<u128> {
    let mut result: u128 = 1;
    let mut n: u128 = 0;
    for &k in parts {
        // result *= binomial(n + k, k), one factor at a time: after step j
        // the running value is binomial(n + j, j), always an integer.
        let mut b: u128 = 1;
        for j in 1..=k as u128 {
            b = b.checked_mul(n + j)? / j;
        }
        result = result.checked_mul(b)?;
        n += k as u128;
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(Space::new(vec![2, 2]).size(), Some(6));
        // The figures: 3 sessions of 4 steps, 5 sessions of 3.
        assert_eq!(Space::new(vec![4, 4, 4]).size(), Some(34_650));
        assert_eq!(Space::new(vec![3; 5]).size(), Some(168_168_000));
        assert_eq!(Space::new(vec![3, 3, 1, 1, 1]).size(), Some(10_080));
        assert_eq!(Space::new(vec![]).size(), Some(1));
        assert_eq!(Space::new(vec![0, 3]).size(), Some(1));
        assert_eq!(Space::new(vec![40; 10]).size(), None);
    }

    #[test]
    fn order_is_isolationtesters() {
        // isolationtester's recursion takes the lowest session first.
        let space = Space::new(vec![2, 1]);
        let all: Vec<_> = (0..3).map(|i| space.nth(i).unwrap()).collect();
        assert_eq!(all, vec![vec![0, 0, 1], vec![0, 1, 0], vec![1, 0, 0]]);
        assert_eq!(space.nth(3), None);
    }

    #[test]
    fn rank_inverts_nth_and_every_interleaving_is_distinct() {
        let space = Space::new(vec![2, 3, 1]);
        let n = space.size().unwrap();
        let mut seen = std::collections::HashSet::new();
        for i in 0..n {
            let v = space.nth(i).unwrap();
            assert_eq!(space.rank(&v), Some(i));
            for s in 0..3 {
                assert_eq!(v.iter().filter(|&&x| x == s).count(), [2, 3, 1][s]);
            }
            assert!(seen.insert(v));
        }
        assert_eq!(space.rank(&[0, 0, 0]), None);
        assert_eq!(space.rank(&[5]), None);
    }

    #[test]
    fn huge_spaces_unrank() {
        let space = Space::new(vec![3; 5]);
        let last = space.size().unwrap() - 1;
        let v = space.nth(last).unwrap();
        assert_eq!(v[..3], [4, 4, 4]);
        assert_eq!(space.rank(&v), Some(last));
    }
}
