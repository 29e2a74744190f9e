//! A set of slot, user or group numbers with constant-time insert and remove at any size: a
//! short vector while it holds few (most owners, parents and grantees), a hash set once it
//! grows (a workspace's visible resources, a large group, a folder of many documents).

use std::collections::HashSet;

/// Members a bag keeps in a vector before it becomes a hash set.
const SMALL: usize = 16;

type Set = HashSet<u32, foldhash::fast::RandomState>;

/// The set. Iteration order is unspecified.
#[derive(Debug, Clone)]
pub(super) enum Bag {
    /// Few members, scanned.
    Small(Vec<u32>),
    /// Many members, hashed.
    Large(Set),
}

impl Default for Bag {
    fn default() -> Self {
        Bag::Small(Vec::new())
    }
}

impl Bag {
    /// Adds `value`; false when it was there.
    pub(super) fn insert(&mut self, value: u32) -> bool {
        match self {
            Bag::Small(list) => {
                if list.contains(&value) {
                    return false;
                }
                if list.len() < SMALL {
                    list.push(value);
                    return true;
                }
                let mut set = Set::with_capacity_and_hasher(SMALL * 2, Default::default());
                set.extend(list.iter().copied());
                set.insert(value);
                *self = Bag::Large(set);
                true
            }
            Bag::Large(set) => set.insert(value),
        }
    }

    /// Removes `value`; false when it was not there.
    pub(super) fn remove(&mut self, value: u32) -> bool {
        match self {
            Bag::Small(list) => match list.iter().position(|v| *v == value) {
                Some(at) => {
                    list.swap_remove(at);
                    true
                }
                None => false,
            },
            Bag::Large(set) => set.remove(&value),
        }
    }

    /// Whether the bag is empty.
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Bag::Small(list) => list.is_empty(),
            Bag::Large(set) => set.is_empty(),
        }
    }

    /// The members, in no particular order.
    pub(super) fn iter(&self) -> Iter<'_> {
        match self {
            Bag::Small(list) => Iter::Small(list.iter()),
            Bag::Large(set) => Iter::Large(set.iter()),
        }
    }
}

impl<'a> IntoIterator for &'a Bag {
    type Item = u32;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The members of a [`Bag`].
pub(super) enum Iter<'a> {
    Small(std::slice::Iter<'a, u32>),
    Large(std::collections::hash_set::Iter<'a, u32>),
}

impl Iterator for Iter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            Iter::Small(it) => it.next().copied(),
            Iter::Large(it) => it.next().copied(),
        }
    }
}

/// Adds `value` to the bag of `key`.
pub(super) fn add_to<K: std::hash::Hash + Eq>(map: &mut super::Map<K, Bag>, key: K, value: u32) {
    map.entry(key).or_default().insert(value);
}

/// The members of the bag of `key`, copied out (so the map can change while they are visited).
pub(super) fn members<K: std::hash::Hash + Eq>(map: &super::Map<K, Bag>, key: &K) -> Vec<u32> {
    map.get(key)
        .map(|bag| bag.iter().collect())
        .unwrap_or_default()
}

/// Removes `value` from the bag of `key`, dropping the bag once empty.
pub(super) fn remove_from<K: std::hash::Hash + Eq>(
    map: &mut super::Map<K, Bag>,
    key: K,
    value: u32,
) {
    if let Some(bag) = map.get_mut(&key) {
        bag.remove(value);
        if bag.is_empty() {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bag_is_a_set_below_and_above_the_switch() {
        let mut bag = Bag::default();
        let mut model = std::collections::BTreeSet::new();
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..5_000 {
            let v = rng.u32(..64);
            if rng.bool() {
                assert_eq!(bag.insert(v), model.insert(v));
            } else {
                assert_eq!(bag.remove(v), model.remove(&v));
            }
            assert_eq!(bag.iter().any(|x| x == v), model.contains(&v));
            let mut members: Vec<u32> = bag.iter().collect();
            members.sort_unstable();
            assert_eq!(members, model.iter().copied().collect::<Vec<_>>());
            assert_eq!(bag.is_empty(), model.is_empty());
        }
        assert!(matches!(bag, Bag::Large(_)), "64 values pass the switch");
    }
}
