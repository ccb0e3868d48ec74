//! `walk`'s unit tests: orders, permutations, and the fold of events.

use super::*;
use std::collections::HashSet;

#[test]
fn small_spaces_are_walked_whole_in_order() {
    let mut o = Order::new(Space::new(vec![2, 1]), 10, 7);
    assert!(o.exhaustive());
    let got: Vec<u128> = std::iter::from_fn(|| o.next_index()).collect();
    assert_eq!(got, vec![0, 1, 2]);
}

#[test]
fn samples_are_distinct_and_reproducible() {
    let draw = |seed| {
        let mut o = Order::new(Space::new(vec![4, 4, 4]), 50, seed);
        assert!(!o.exhaustive());
        std::iter::from_fn(|| o.next_index()).collect::<Vec<u128>>()
    };
    let a = draw(42);
    assert_eq!(a.len(), 50);
    assert_eq!(a.iter().collect::<HashSet<_>>().len(), 50);
    assert!(a.iter().all(|&i| i < 34_650));
    assert_eq!(a, draw(42));
    assert_ne!(a, draw(43));
}

#[test]
fn a_shuffled_walk_covers_the_space_once_in_random_order() {
    let mut o = Order::shuffled(Space::new(vec![2, 2, 1]), 5);
    let got: Vec<u128> = std::iter::from_fn(|| o.next_index()).collect();
    assert_eq!(got.len(), 30);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, (0..30).collect::<Vec<u128>>());
    assert_ne!(got, sorted);
}

#[test]
fn permutations_keep_each_sessions_order() {
    let p = psteps(&[1, 0, 1], 2);
    let got: Vec<(usize, usize)> = p.iter().map(|s| (s.session, s.step)).collect();
    assert_eq!(got, vec![(1, 0), (0, 0), (1, 1)]);
}

#[test]
fn events_fold_into_outcomes() {
    let mut f = Fold::default();
    f.event(
        Event::PermutationStart {
            index: 0,
            steps: vec![],
        },
        1,
    );
    f.event(
        Event::StepWaiting {
            session: "s2".into(),
            step: "w2".into(),
            sql: String::new(),
        },
        1,
    );
    f.event(
        Event::StepError {
            step: "w2".into(),
            text: "ERROR:  could not serialize access due to concurrent update".into(),
            sqlstate: Some("40001".into()),
        },
        1,
    );
    f.event(
        Event::AfterSteps {
            rows: Ok(vec![vec![Some("110".into())]]),
        },
        1,
    );
    f.event(
        Event::AfterSteps {
            rows: Ok(vec![vec![Some("f".into())]]),
        },
        1,
    );
    let (o, unrealizable) = &f.outcomes[0];
    assert!(!unrealizable);
    assert_eq!(o.waited, vec!["w2".to_string()]);
    assert_eq!(o.failures[0].sqlstate, "40001");
    assert_eq!(
        o.failures[0].message,
        "could not serialize access due to concurrent update"
    );
    assert_eq!(o.results, vec![vec![vec![Some("110".to_string())]]]);
    assert_eq!(o.violated, vec![0]);
}
