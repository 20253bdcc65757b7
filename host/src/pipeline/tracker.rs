//! Which offsets are safe to commit.
//!
//! The rule (at-least-once): the offset of a consumed message may be
//! committed only when the message has been processed and every produce
//! it caused, and every produce caused by every earlier message of its
//! partition, has been acknowledged by the broker.
//!
//! Each consumed message holds one token while a worker processes it,
//! plus one per produce it caused; the worker adds the produce count
//! before queueing them and releases its token after. A message is done
//! when its count is zero, so an acknowledgement can never arrive for a
//! count that was not yet raised. Messages are done out of order (workers
//! run in parallel and the broker acknowledges topics independently); a
//! partition's safe offset is the one just below its first message that
//! is not done.

use std::collections::{BTreeMap, HashMap};

/// A consumed message, by where it was read: which message a produce
/// belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Outstanding work per consumed message, per partition.
#[derive(Debug, Default)]
pub struct Tracker {
    partitions: HashMap<(String, i32), Partition>,
    /// Produces the broker refused for good (counted, logged).
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Partition {
    /// Offset of a consumed message -> tokens not yet released.
    pending: BTreeMap<i64, u32>,
    /// The highest offset consumed so far.
    highest: Option<i64>,
    /// The last offset handed out by [`Tracker::storable`].
    stored: Option<i64>,
    /// The first message given up on (see [`Tracker::give_up`]): no
    /// offset at or after it is stored again.
    given_up: Option<i64>,
    /// The first offset consumed since the last [`Tracker::committed`]
    /// (where an aborted transaction rewinds to).
    uncommitted_from: Option<i64>,
}

impl Tracker {
    /// Records a consumed message, holding its processing token.
    pub fn begin(&mut self, source: &Consumed) {
        let p = self
            .partitions
            .entry((source.topic.clone(), source.partition))
            .or_default();
        p.highest = Some(p.highest.map_or(source.offset, |h| h.max(source.offset)));
        p.uncommitted_from.get_or_insert(source.offset);
        *p.pending.entry(source.offset).or_default() += 1;
    }

    /// Raises a message's count by the produces about to be queued.
    pub fn add(&mut self, source: &Consumed, produces: u32) {
        if produces == 0 {
            return;
        }
        if let Some(p) = self
            .partitions
            .get_mut(&(source.topic.clone(), source.partition))
        {
            *p.pending.entry(source.offset).or_default() += produces;
        }
    }

    /// Releases one token: an acknowledged produce, or the end of
    /// processing.
    pub fn release(&mut self, source: &Consumed) {
        if let Some(p) = self
            .partitions
            .get_mut(&(source.topic.clone(), source.partition))
            && let Some(n) = p.pending.get_mut(&source.offset)
        {
            *n -= 1;
            if *n == 0 {
                p.pending.remove(&source.offset);
            }
        }
    }

    /// Gives up on a message without finishing it (shutting down while
    /// it waits for a schema): it no longer counts as outstanding, and
    /// its partition's offset never moves past it, so the next owner of
    /// the partition processes it again.
    pub fn give_up(&mut self, source: &Consumed) {
        if let Some(p) = self
            .partitions
            .get_mut(&(source.topic.clone(), source.partition))
        {
            p.pending.remove(&source.offset);
            p.given_up = Some(p.given_up.map_or(source.offset, |g| g.min(source.offset)));
        }
    }

    /// Offsets that may be stored now: per partition, the highest
    /// offset with nothing outstanding at or before it.
    pub fn storable(&mut self) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for ((topic, partition), p) in &mut self.partitions {
            let Some(highest) = p.highest else { continue };
            let mut safe = match p.pending.keys().next() {
                Some(&first) => first - 1,
                None => highest,
            };
            if let Some(g) = p.given_up {
                safe = safe.min(g - 1);
            }
            if safe >= 0 && p.stored.is_none_or(|s| safe > s) {
                p.stored = Some(safe);
                out.push((topic.clone(), *partition, safe));
            }
        }
        out
    }

    /// Messages with work outstanding (processing or unacknowledged).
    pub fn outstanding(&self) -> usize {
        self.partitions.values().map(|p| p.pending.len()).sum()
    }

    /// Whether anything was consumed since the last [`Tracker::committed`].
    pub fn has_uncommitted(&self) -> bool {
        self.partitions
            .values()
            .any(|p| p.uncommitted_from.is_some())
    }

    /// Marks everything consumed so far as committed.
    pub fn committed(&mut self) {
        for p in self.partitions.values_mut() {
            p.uncommitted_from = None;
        }
    }

    /// Forgets everything since the last commit and returns, per
    /// partition, the offset to read again from (an aborted transaction).
    pub fn rewind(&mut self) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for ((topic, partition), p) in &mut self.partitions {
            p.pending.clear();
            if let Some(from) = p.uncommitted_from.take() {
                p.highest = (from > 0).then_some(from - 1);
                p.stored = p.stored.filter(|&s| s < from);
                out.push((topic.clone(), *partition, from));
            }
        }
        out
    }

    /// Forgets partitions this instance no longer owns.
    pub fn forget(&mut self, partitions: &[(String, i32)]) {
        for key in partitions {
            self.partitions.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(offset: i64) -> Consumed {
        Consumed {
            topic: "alerts".into(),
            partition: 0,
            offset,
        }
    }

    /// Consumes `offset`, processes it into `produces` produces and
    /// releases the processing token.
    fn process(t: &mut Tracker, offset: i64, produces: u32) {
        t.begin(&source(offset));
        t.add(&source(offset), produces);
        t.release(&source(offset));
    }

    #[test]
    fn an_offset_is_stored_only_when_it_and_every_earlier_message_are_acknowledged() {
        let mut t = Tracker::default();
        process(&mut t, 0, 2);
        process(&mut t, 1, 0);
        process(&mut t, 2, 1);
        assert!(
            t.storable().is_empty(),
            "offset 0 still has two produces out"
        );
        t.release(&source(2));
        assert!(t.storable().is_empty(), "offset 2 is done but 0 is not");
        t.release(&source(0));
        assert!(
            t.storable().is_empty(),
            "one of offset 0's produces is still out"
        );
        t.release(&source(0));
        assert_eq!(t.storable(), [("alerts".to_string(), 0, 2)]);
        assert!(t.storable().is_empty(), "nothing new to store");
        process(&mut t, 3, 0);
        assert_eq!(t.storable(), [("alerts".to_string(), 0, 3)]);
    }

    #[test]
    fn a_message_still_being_processed_holds_back_every_later_offset() {
        let mut t = Tracker::default();
        t.begin(&source(0)); // a worker has it
        process(&mut t, 1, 0);
        assert!(t.storable().is_empty(), "offset 0 is still in a worker");
        assert_eq!(t.outstanding(), 1);
        t.release(&source(0));
        assert_eq!(t.storable(), [("alerts".to_string(), 0, 1)]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn a_rewind_returns_to_the_first_offset_since_the_last_commit() {
        let mut t = Tracker::default();
        process(&mut t, 0, 0);
        assert!(t.has_uncommitted());
        t.committed();
        assert!(!t.has_uncommitted());
        process(&mut t, 1, 1);
        process(&mut t, 2, 0);
        assert_eq!(t.rewind(), [("alerts".to_string(), 0, 1)]);
        assert_eq!(t.outstanding(), 0, "aborted work is forgotten");
        assert!(!t.has_uncommitted());
        process(&mut t, 1, 0);
        assert_eq!(t.storable(), [("alerts".to_string(), 0, 1)]);
    }

    #[test]
    fn a_message_given_up_on_is_not_outstanding_but_holds_its_offset_back() {
        let mut t = Tracker::default();
        process(&mut t, 0, 0);
        t.begin(&source(1));
        process(&mut t, 2, 0);
        t.give_up(&source(1));
        assert_eq!(t.outstanding(), 0);
        assert_eq!(t.storable(), [("alerts".to_string(), 0, 0)]);
        process(&mut t, 3, 0);
        assert!(t.storable().is_empty(), "offset 1 was never finished");
    }

    #[test]
    fn forgotten_partitions_are_no_longer_stored() {
        let mut t = Tracker::default();
        process(&mut t, 0, 0);
        t.forget(&[("alerts".to_string(), 0)]);
        assert!(t.storable().is_empty());
        assert!(!t.has_uncommitted());
    }
}
