//! Per-partition progress for a consumer that finishes records out of order (like vector's
//! `OrderedFinalizer`): records are registered in the order they are read and marked done in
//! any order; a partition's position is the lowest offset not yet done, so whatever is
//! stored as a checkpoint has every record before it fully handled.
//!
//! Partitions are independent: a slow record holds back only its own partition.

use std::collections::{HashMap, VecDeque};

#[derive(Debug, Default)]
struct Partition {
    /// Offsets read and not yet released, ascending, with their done flag.
    pending: VecDeque<(i64, bool)>,
    /// Every offset below this is done.
    next: Option<i64>,
    /// `next` moved since the last [`PartitionOffsets::take_advanced`].
    advanced: bool,
}

/// Progress of every partition a consumer reads.
#[derive(Debug, Default)]
pub struct PartitionOffsets {
    // Keyed by topic then partition, so the per-record lookups allocate nothing.
    parts: HashMap<String, HashMap<i32, Partition>>,
}

impl PartitionOffsets {
    /// Nothing read yet.
    pub fn new() -> PartitionOffsets {
        PartitionOffsets::default()
    }

    /// A record was read. Offsets of one partition must be registered in ascending order.
    pub fn read(&mut self, topic: &str, partition: i32, offset: i64) {
        let p = self.partition(topic, partition);
        p.pending.push_back((offset, false));
    }

    /// A record is fully handled. Unknown offsets (of a partition forgotten since) are ignored.
    pub fn done(&mut self, topic: &str, partition: i32, offset: i64) {
        let Some(p) = self
            .parts
            .get_mut(topic)
            .and_then(|t| t.get_mut(&partition))
        else {
            return;
        };
        if let Ok(i) = p.pending.binary_search_by_key(&offset, |(o, _)| *o) {
            p.pending[i].1 = true;
        }
        while let Some(&(o, true)) = p.pending.front() {
            p.pending.pop_front();
            p.next = Some(o + 1);
            p.advanced = true;
        }
    }

    /// The next offset to handle in a partition: every offset below it is done. `None` before
    /// the first record of the partition is done.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.get(topic, partition).and_then(|p| p.next)
    }

    /// True when every record read from the partition is done.
    pub fn is_idle(&self, topic: &str, partition: i32) -> bool {
        self.get(topic, partition)
            .is_none_or(|p| p.pending.is_empty())
    }

    /// Partitions whose position moved since the last call, with their position.
    pub fn take_advanced(&mut self) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for (topic, parts) in &mut self.parts {
            for (partition, p) in parts {
                if p.advanced {
                    p.advanced = false;
                    if let Some(next) = p.next {
                        out.push((topic.clone(), *partition, next));
                    }
                }
            }
        }
        out
    }

    /// Records read and not yet released, over all partitions.
    pub fn held(&self) -> usize {
        self.parts
            .values()
            .flat_map(HashMap::values)
            .map(|p| p.pending.len())
            .sum()
    }

    /// Stop tracking a partition (revoked by a rebalance).
    pub fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(t) = self.parts.get_mut(topic) {
            t.remove(&partition);
        }
    }

    fn get(&self, topic: &str, partition: i32) -> Option<&Partition> {
        self.parts.get(topic).and_then(|t| t.get(&partition))
    }

    fn partition(&mut self, topic: &str, partition: i32) -> &mut Partition {
        if !self.parts.contains_key(topic) {
            self.parts.insert(topic.to_owned(), HashMap::new());
        }
        self.parts
            .get_mut(topic)
            .map(|t| t.entry(partition).or_default())
            .expect("inserted above")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_follows_the_lowest_offset_not_yet_done() {
        let mut o = PartitionOffsets::new();
        for off in [10, 11, 13, 14] {
            o.read("t", 0, off);
        }
        o.done("t", 0, 11);
        o.done("t", 0, 13);
        assert_eq!(o.position("t", 0), None, "10 is still being written");
        assert!(o.take_advanced().is_empty());
        o.done("t", 0, 10);
        assert_eq!(
            o.position("t", 0),
            Some(14),
            "gaps (commit markers) are skipped"
        );
        assert_eq!(o.take_advanced(), vec![("t".to_owned(), 0, 14)]);
        assert!(o.take_advanced().is_empty(), "reported once");
        assert!(!o.is_idle("t", 0));
        o.done("t", 0, 14);
        assert_eq!(o.position("t", 0), Some(15));
        assert!(o.is_idle("t", 0));
        assert_eq!(o.held(), 0);
    }

    #[test]
    fn partitions_do_not_wait_for_each_other_and_forgotten_ones_are_ignored() {
        let mut o = PartitionOffsets::new();
        o.read("t", 0, 5);
        o.read("t", 1, 7);
        o.done("t", 1, 7);
        assert_eq!(o.position("t", 1), Some(8));
        assert_eq!(o.position("t", 0), None);
        o.forget("t", 0);
        o.done("t", 0, 5);
        assert_eq!(o.position("t", 0), None);
        o.done("t", 1, 99);
        assert_eq!(
            o.position("t", 1),
            Some(8),
            "an unknown offset changes nothing"
        );
    }
}
