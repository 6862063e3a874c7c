//! The space-saving sketch (Metwally, Agrawal, El Abbadi 2005): the heavy hitters of a
//! weighted stream in `capacity` counters.
//!
//! Terms: each monitored item has a *count* (an upper bound of its true weight) and an *error*
//! (how much of the count it may have inherited from the item it evicted). An unmonitored item
//! that arrives takes the place of the item with the smallest count and starts at that count
//! plus its weight. Guarantees, for a stream of total weight `N`:
//! - `count - error <= true weight <= count` for every monitored item;
//! - the smallest count is at most `N / capacity`, so every item whose true weight exceeds
//!   `N / capacity` is monitored.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// A monitored item's estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Upper bound of the item's weight.
    pub count: u64,
    /// Over-estimation bound: the true weight is at least `count - error`.
    pub error: u64,
}

/// Space-saving over items of type `K` with at most `capacity` counters.
#[derive(Debug, Clone)]
pub struct SpaceSaving<K: Eq + Hash + Ord + Clone> {
    capacity: usize,
    items: HashMap<K, Estimate>,
    by_count: BTreeSet<(u64, K)>,
    total: u64,
}

impl<K: Eq + Hash + Ord + Clone> SpaceSaving<K> {
    /// A sketch of `capacity` counters (0 monitors nothing).
    pub fn new(capacity: usize) -> Self {
        SpaceSaving {
            capacity,
            items: HashMap::new(),
            by_count: BTreeSet::new(),
            total: 0,
        }
    }

    /// Adds `weight` to `item`. Returns the item evicted to make room, if any.
    pub fn add(&mut self, item: &K, weight: u64) -> Option<K> {
        if weight == 0 || self.capacity == 0 {
            return None;
        }
        self.total = self.total.saturating_add(weight);
        if let Some(e) = self.items.get_mut(item) {
            self.by_count.remove(&(e.count, item.clone()));
            e.count = e.count.saturating_add(weight);
            self.by_count.insert((e.count, item.clone()));
            return None;
        }
        if self.items.len() < self.capacity {
            self.items.insert(
                item.clone(),
                Estimate {
                    count: weight,
                    error: 0,
                },
            );
            self.by_count.insert((weight, item.clone()));
            return None;
        }
        // Invariant: the sketch is full (capacity > 0), so there is a smallest counter.
        let (min, evicted) = self
            .by_count
            .pop_first()
            .expect("a full sketch has a minimum");
        self.items.remove(&evicted);
        let count = min.saturating_add(weight);
        self.items
            .insert(item.clone(), Estimate { count, error: min });
        self.by_count.insert((count, item.clone()));
        Some(evicted)
    }

    /// Puts back an item with its estimate (loading a snapshot). Ignored when full or known.
    pub fn restore(&mut self, item: K, estimate: Estimate) {
        if self.items.len() < self.capacity && !self.items.contains_key(&item) {
            self.by_count.insert((estimate.count, item.clone()));
            self.items.insert(item, estimate);
            self.total = self.total.saturating_add(estimate.count - estimate.error);
        }
    }

    /// The estimate of `item`, if monitored.
    pub fn get(&self, item: &K) -> Option<Estimate> {
        self.items.get(item).copied()
    }

    /// Whether `item` is monitored.
    pub fn contains(&self, item: &K) -> bool {
        self.items.contains_key(item)
    }

    /// The monitored items, largest count first.
    pub fn top(&self) -> impl Iterator<Item = (&K, Estimate)> {
        self.by_count
            .iter()
            .rev()
            .filter_map(|(_, k)| self.items.get_key_value(k).map(|(k, e)| (k, *e)))
    }

    /// Items monitored.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is monitored.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The number of counters.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The stream's total weight so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_newcomer_evicts_the_smallest_and_inherits_its_count() {
        let mut s = SpaceSaving::new(2);
        s.add(&"a", 5);
        s.add(&"b", 2);
        assert_eq!(s.add(&"c", 1), Some("b"));
        assert_eq!(s.get(&"c"), Some(Estimate { count: 3, error: 2 }));
        let order: Vec<_> = s.top().map(|(k, _)| *k).collect();
        assert_eq!(order, ["a", "c"]);
    }

    proptest! {
        /// The space-saving bounds hold for any weighted stream: every monitored item's true
        /// weight is within [count - error, count], the smallest count is at most N / k, and
        /// every item heavier than N / k is monitored.
        #[test]
        fn error_bounds_hold(
            k in 1usize..12,
            stream in proptest::collection::vec((0u8..40, 1u64..20), 0..400),
        ) {
            let mut s = SpaceSaving::new(k);
            let mut truth = HashMap::<u8, u64>::new();
            for (item, w) in &stream {
                s.add(item, *w);
                *truth.entry(*item).or_default() += w;
            }
            let n: u64 = stream.iter().map(|(_, w)| w).sum();
            prop_assert_eq!(s.total(), n);
            prop_assert!(s.len() <= k);
            for (item, e) in s.top() {
                let t = truth[item];
                prop_assert!(e.count >= t, "count {} under true {}", e.count, t);
                prop_assert!(e.count - e.error <= t, "lower bound {} over true {}", e.count - e.error, t);
            }
            if s.len() == k {
                let min = s.top().map(|(_, e)| e.count).min().unwrap();
                prop_assert!(min as u128 * k as u128 <= n as u128, "min {} > N/k", min);
            }
            for (item, t) in &truth {
                if (*t as u128) * (k as u128) > n as u128 {
                    prop_assert!(s.contains(item), "heavy item {} ({} of {}) not monitored", item, t, n);
                }
            }
        }
    }
}
