//! Checks `Resources` against a naive model on many pseudo-random inputs: scalars as
//! integer thousandths and ranges and sets as plain sets of their elements.

use std::collections::{BTreeMap, BTreeSet};

use holdfast_api::v1::{AllocationInfo, Resource};
use holdfast_resources::Resources;

/// Same kind = (name, reservation role, allocation role); `*` is written as `None`.
type Key = (String, Option<String>, Option<String>);

#[derive(Debug, Clone, PartialEq)]
enum Amount {
    Scalar(i64),
    Elements(BTreeSet<String>),
}

type Model = BTreeMap<Key, Amount>;

/// A small deterministic generator (no extra dependencies).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_resource(rng: &mut Rng) -> Resource {
    let mut r = match rng.below(3) {
        0 => Resource::scalar("cpus", rng.below(5000) as f64 / 1000.0),
        1 => {
            let ranges: Vec<(u64, u64)> = (0..rng.below(4))
                .map(|_| {
                    let begin = rng.below(64);
                    (begin, begin + rng.below(8))
                })
                .collect();
            Resource::ranges("ports", &ranges)
        }
        _ => {
            let items: Vec<&str> = ["a", "b", "c", "d", "e"]
                .into_iter()
                .filter(|_| rng.below(2) == 0)
                .collect();
            Resource::set("zones", &items)
        }
    };
    r.role = [None, Some("*"), Some("r1"), Some("r2")][rng.below(4) as usize].map(str::to_owned);
    if rng.below(3) == 0 {
        r.allocation_info = Some(AllocationInfo {
            role: Some("web".to_owned()),
        });
    }
    r
}

fn random_list(rng: &mut Rng) -> Vec<Resource> {
    (0..rng.below(6)).map(|_| random_resource(rng)).collect()
}

fn model_of(list: &[Resource]) -> Model {
    let mut model = Model::new();
    for r in list {
        let role = r.role.clone().filter(|role| role != "*");
        let allocation = r.allocation_info.as_ref().and_then(|a| a.role.clone());
        let key = (r.name.clone(), role, allocation);
        let amount = if let Some(s) = r.scalar {
            Amount::Scalar((s.value * 1000.0).round() as i64)
        } else if let Some(ranges) = &r.ranges {
            Amount::Elements(
                ranges
                    .range
                    .iter()
                    .flat_map(|r| r.begin..=r.end)
                    .map(|p| p.to_string())
                    .collect(),
            )
        } else {
            Amount::Elements(r.set.iter().flat_map(|s| s.item.clone()).collect())
        };
        model_add_one(&mut model, key, amount);
    }
    model
}

fn model_add_one(model: &mut Model, key: Key, amount: Amount) {
    let merged = match (model.remove(&key), amount) {
        (None, a) => a,
        (Some(Amount::Scalar(a)), Amount::Scalar(b)) => Amount::Scalar(a + b),
        (Some(Amount::Elements(mut a)), Amount::Elements(b)) => {
            a.extend(b);
            Amount::Elements(a)
        }
        (Some(a), b) => panic!("names have one type here: {a:?} {b:?}"),
    };
    if merged != Amount::Scalar(0) && merged != Amount::Elements(BTreeSet::new()) {
        model.insert(key, merged);
    }
}

fn model_add(a: &Model, b: &Model) -> Model {
    let mut out = a.clone();
    for (key, amount) in b {
        model_add_one(&mut out, key.clone(), amount.clone());
    }
    out
}

fn model_subtract(a: &Model, b: &Model) -> Model {
    let mut out = a.clone();
    for (key, cut) in b {
        let left = match (out.remove(key), cut) {
            (None, _) => continue,
            (Some(Amount::Scalar(x)), Amount::Scalar(y)) => Amount::Scalar((x - y).max(0)),
            (Some(Amount::Elements(x)), Amount::Elements(y)) => {
                Amount::Elements(x.difference(y).cloned().collect())
            }
            (Some(x), y) => panic!("names have one type here: {x:?} {y:?}"),
        };
        if left != Amount::Scalar(0) && left != Amount::Elements(BTreeSet::new()) {
            out.insert(key.clone(), left);
        }
    }
    out
}

fn model_contains(a: &Model, b: &Model) -> bool {
    b.iter().all(|(key, want)| match (a.get(key), want) {
        (Some(Amount::Scalar(x)), Amount::Scalar(y)) => x >= y,
        (Some(Amount::Elements(x)), Amount::Elements(y)) => y.is_subset(x),
        _ => false,
    })
}

#[test]
fn arithmetic_matches_the_model() {
    let mut rng = Rng(0x5eed);
    for round in 0..2000 {
        let (la, lb) = (random_list(&mut rng), random_list(&mut rng));
        let a = Resources::new(la.clone()).expect("generated resources are valid");
        let b = Resources::new(lb.clone()).expect("generated resources are valid");
        let (ma, mb) = (model_of(&la), model_of(&lb));
        assert_eq!(model_of(&a.to_vec()), ma, "round {round}: normalize {la:?}");

        let mut sum = a.clone();
        sum.add(&b);
        assert_eq!(
            model_of(&sum.to_vec()),
            model_add(&ma, &mb),
            "round {round}: {a} + {b}"
        );
        assert!(sum.contains(&a) && sum.contains(&b), "round {round}");

        let mut diff = a.clone();
        diff.subtract(&b);
        assert_eq!(
            model_of(&diff.to_vec()),
            model_subtract(&ma, &mb),
            "round {round}: {a} - {b}"
        );
        assert!(a.contains(&diff), "round {round}");

        assert_eq!(
            a.contains(&b),
            model_contains(&ma, &mb),
            "round {round}: {a} ⊇ {b}"
        );

        // (a + b) - b == a exactly when none of b overlapped a's ranges or sets.
        let mut back = sum.clone();
        back.subtract(&b);
        assert_eq!(back, diff_then_scalars(&a, &b), "round {round}");

        // Output is valid input, and unallocated values survive the text form.
        assert_eq!(Resources::new(a.to_vec()).as_ref(), Ok(&a), "round {round}");
        let plain = a.unallocated();
        assert_eq!(
            Resources::parse(&plain.to_string(), "*").as_ref(),
            Ok(&plain),
            "round {round}: {plain}"
        );
    }
}

/// What `(a + b) - b` should be: scalars come back exactly (fixed point), while ranges
/// and sets lose whatever `b` also had.
fn diff_then_scalars(a: &Resources, b: &Resources) -> Resources {
    let scalars: Vec<Resource> = a.iter().filter(|r| r.scalar.is_some()).collect();
    let others: Vec<Resource> = a.iter().filter(|r| r.scalar.is_none()).collect();
    let mut out = Resources::new(others).expect("valid");
    out.subtract(b);
    out.add(&Resources::new(scalars).expect("valid"));
    out
}
