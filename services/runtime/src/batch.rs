//! One partition's batch and commit bookkeeping, without I/O: which records join the open
//! batch, when it is cut, what may be flushed, and which offset may be committed after a
//! flush. The pipeline owns one [`Partition`] per assigned partition and does the I/O;
//! the property tests below check the rules effectively-once rests on — commits only
//! grow, never pass an offset ClickHouse does not have, ignore answers of an earlier
//! assignment, and a released partition never flushes again.

use std::time::{Duration, Instant};

/// Records of one partition since the last flush: a contiguous offset range.
pub struct Batch<R, L> {
    /// Rows to insert.
    pub rows: Vec<R>,
    /// Dead letters on their way; delivered before the rows are inserted.
    pub dead_letters: Vec<L>,
    /// Records of hot keys on their way to the overflow lane; delivered before the rows
    /// are inserted, so no commit covers one that is not there.
    pub diverted: Vec<crate::overflow::Diverted>,
    /// Rows of accounts the dimension does not hold (`unknown_account = quarantine`),
    /// inserted into the table's quarantine twin before the rows.
    pub quarantined: Vec<R>,
    /// First offset (records skipped or dead-lettered included); -1 while empty.
    pub first_offset: i64,
    /// Last offset.
    pub last_offset: i64,
    /// Payload bytes read.
    pub bytes: usize,
    /// When the first record joined.
    pub opened: Option<Instant>,
    /// Oldest server_time among the rows, ms (`i64::MAX` while none).
    pub oldest_server_time: i64,
    /// Newest server_time among the rows, ms.
    pub newest_server_time: i64,
    /// Kafka timestamp of the record at `last_offset` (-1: none).
    pub last_record_time: i64,
}

impl<R, L> Batch<R, L> {
    fn new() -> Self {
        Batch::sized_like(0)
    }

    /// An empty batch with room for `rows` rows: sized like the batch before it, it is
    /// filled without growing — growing a batch of 28k rows (7 MB) copied it at every
    /// doubling and faulted in twice its pages, half of a service's page faults.
    fn sized_like(rows: usize) -> Self {
        Batch {
            rows: Vec::with_capacity(rows),
            dead_letters: Vec::new(),
            diverted: Vec::new(),
            quarantined: Vec::new(),
            first_offset: -1,
            last_offset: -1,
            bytes: 0,
            opened: None,
            oldest_server_time: i64::MAX,
            newest_server_time: 0,
            last_record_time: -1,
        }
    }

    /// Whether no record joined yet.
    pub fn is_empty(&self) -> bool {
        self.opened.is_none()
    }

    fn extend_to(&mut self, offset: i64, record_time: i64, bytes: usize) {
        if self.opened.is_none() {
            self.opened = Some(Instant::now());
            self.first_offset = offset;
        }
        self.last_offset = offset;
        self.last_record_time = record_time;
        self.bytes += bytes;
    }
}

/// A previous owner's announced batch whose raw rows never landed: the first batch must be
/// exactly this range, so it carries the same dedup token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// First offset of the range.
    pub first_offset: i64,
    /// Last offset of the range.
    pub last_offset: i64,
    /// Kafka timestamp of the record at `last_offset`.
    pub last_record_time: i64,
}

/// When a batch is cut by size or age.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows.
    pub max_rows: usize,
    /// Payload bytes.
    pub max_bytes: usize,
    /// Time since the first record joined.
    pub max_age: Duration,
}

/// What the pipeline does with a record after [`Partition::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Decode it: it joined the open batch.
    Process,
    /// At or below the watermark — already in ClickHouse: it joined the batch (so the
    /// commit after it covers it) but writes nothing.
    Redelivery,
    /// Below a replayed range: already in; the replayed batch's commit covers it.
    Ignore,
}

/// One partition's bookkeeping under one assignment epoch.
pub struct Partition<R, L> {
    epoch: u64,
    watermark: i64,
    next_commit: Option<i64>,
    open: Batch<R, L>,
    /// A replayed range cut short by a gap in the log, to flush before the open batch.
    ready: Option<Batch<R, L>>,
    in_flight: bool,
    replay: Option<Replay>,
    released: bool,
}

impl<R, L> Partition<R, L> {
    /// A partition assigned under `epoch`, with ClickHouse's `watermark` (-1: nothing)
    /// and, when its previous owner's last batch must be re-inserted, that range.
    pub fn new(epoch: u64, watermark: i64, replay: Option<Replay>) -> Self {
        Partition {
            epoch,
            watermark,
            next_commit: None,
            open: Batch::new(),
            ready: None,
            in_flight: false,
            replay,
            released: false,
        }
    }

    /// The assignment epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The next offset to commit: everything before it is in ClickHouse.
    pub fn next_commit(&self) -> Option<i64> {
        self.next_commit
    }

    /// The open batch, for the pipeline to add rows and dead letters to.
    pub fn open(&mut self) -> &mut Batch<R, L> {
        &mut self.open
    }

    /// What [`Partition::admit`] would answer for `offset`, without taking the record in:
    /// a record that must wait (its event id is being looked up) is taken in only when it
    /// goes on, so no batch covers it before it is decided.
    pub fn peek(&self, offset: i64) -> Admission {
        if self.replay.is_some_and(|r| offset < r.first_offset) {
            Admission::Ignore
        } else if offset <= self.watermark {
            Admission::Redelivery
        } else {
            Admission::Process
        }
    }

    /// Decides what a record at `offset` is and adds it to the open batch.
    pub fn admit(&mut self, offset: i64, record_time: i64, bytes: usize) -> Admission {
        if let Some(replay) = self.replay {
            if offset < replay.first_offset {
                return Admission::Ignore;
            }
            if offset > replay.last_offset {
                // The range's last records are gone from the log: cut where the previous
                // owner did, so the batch keeps the announced token.
                self.replay = None;
                if !self.open.is_empty() {
                    let mut cut = std::mem::replace(&mut self.open, Batch::new());
                    cut.last_offset = replay.last_offset;
                    cut.last_record_time = replay.last_record_time;
                    self.ready = Some(cut);
                }
                return self.admit(offset, record_time, bytes);
            }
            if self.open.is_empty() {
                self.open.extend_to(replay.first_offset, -1, 0);
            }
        }
        self.open.extend_to(offset, record_time, bytes);
        if offset <= self.watermark {
            Admission::Redelivery
        } else {
            Admission::Process
        }
    }

    /// Whether the open batch should be flushed now: a replayed range is complete, or the
    /// batch reached a limit (a replayed range is cut at its end only).
    pub fn wants_flush(&self, limits: &Limits) -> bool {
        if self.ready.is_some() {
            return true;
        }
        if self.open.is_empty() {
            return false;
        }
        match self.replay {
            Some(r) => self.open.last_offset >= r.last_offset,
            None => {
                self.open.rows.len() + self.open.quarantined.len() >= limits.max_rows
                    || self.open.bytes >= limits.max_bytes
                    || self
                        .open
                        .opened
                        .is_some_and(|t| t.elapsed() >= limits.max_age)
            }
        }
    }

    /// Whether intake should pause: a full batch waits behind one in flight.
    pub fn backpressured(&self, limits: &Limits) -> bool {
        self.in_flight
            && (self.open.rows.len() + self.open.quarantined.len() >= limits.max_rows
                || self.open.bytes >= limits.max_bytes)
    }

    /// The batch to flush now, if any: at most one is in flight, so a partition's batches
    /// land in offset order; an incomplete replayed range is never flushed.
    pub fn take(&mut self) -> Option<Batch<R, L>> {
        if self.released || self.in_flight {
            return None;
        }
        let batch = match self.ready.take() {
            Some(cut) => cut,
            None => {
                if self.open.is_empty() {
                    return None;
                }
                if let Some(r) = self.replay {
                    if self.open.last_offset < r.last_offset {
                        return None;
                    }
                    self.replay = None;
                }
                let sized = Batch::sized_like(self.open.rows.len());
                std::mem::replace(&mut self.open, sized)
            }
        };
        self.in_flight = true;
        Some(batch)
    }

    /// A flush of `epoch` ended; returns the offset to commit, if it should be. Answers
    /// of an earlier assignment and flushes of a released partition commit nothing;
    /// commits only grow. A failed flush (it gives up only when the lease ended) releases
    /// the partition: its records are gone from memory, so no later batch may commit past
    /// them — the next owner re-reads them from the last commit.
    pub fn flushed(&mut self, epoch: u64, ok: bool, next_offset: i64) -> Option<i64> {
        if epoch != self.epoch {
            return None;
        }
        self.in_flight = false;
        if !ok {
            self.release();
            return None;
        }
        if self.released || self.next_commit.is_some_and(|n| n >= next_offset) {
            return None;
        }
        self.next_commit = Some(next_offset);
        Some(next_offset)
    }

    /// The partition is no longer ours: nothing of it is flushed or committed after this.
    pub fn release(&mut self) {
        self.released = true;
        self.open = Batch::new();
        self.ready = None;
        self.replay = None;
    }

    /// Whether a flush is in flight or could start (drain waits for these).
    pub fn pending(&self) -> bool {
        !self.released
            && (self.in_flight
                || self.ready.is_some()
                || (!self.open.is_empty()
                    && self
                        .replay
                        .is_none_or(|r| self.open.last_offset >= r.last_offset)))
    }

    /// Whether a replayed range is still being collected.
    pub fn replaying(&self) -> bool {
        self.replay.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        max_rows: 3,
        max_bytes: usize::MAX,
        max_age: Duration::from_secs(3600),
    };

    #[derive(Debug, Clone)]
    enum Op {
        /// A record `gap` offsets after the previous one.
        Record { gap: i64 },
        /// Flush whatever may be flushed.
        Flush,
        /// The flush in flight ends, ok or not.
        Ack { ok: bool },
        /// A flush of an earlier epoch answers.
        StaleAck { next: i64 },
        /// The partition is revoked.
        Release,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1i64..3).prop_map(|gap| Op::Record { gap }),
            2 => Just(Op::Flush),
            2 => any::<bool>().prop_map(|ok| Op::Ack { ok }),
            1 => (0i64..200).prop_map(|next| Op::StaleAck { next }),
            1 => Just(Op::Release),
        ]
    }

    /// Drives a partition through `ops` and checks every commit against what was
    /// acknowledged.
    fn run(
        watermark: i64,
        replay: Option<Replay>,
        start: i64,
        ops: &[Op],
    ) -> Result<(), TestCaseError> {
        let mut p: Partition<i64, ()> = Partition::new(7, watermark, replay);
        let mut offset = start;
        let mut in_flight: Option<(i64, i64, Vec<i64>)> = None;
        // Offsets decoded into rows and not yet acknowledged by ClickHouse.
        let mut unwritten: std::collections::BTreeSet<i64> = Default::default();
        let mut last_commit = None;
        let mut released = false;
        let mut first_batch = true;
        for op in ops {
            match op {
                Op::Record { gap } => {
                    offset += gap;
                    if p.admit(offset, offset * 10, 1) == Admission::Process {
                        p.open().rows.push(offset);
                        if !released {
                            unwritten.insert(offset);
                        }
                    }
                }
                Op::Flush => {
                    if let Some(b) = p.take() {
                        prop_assert!(!released, "a released partition flushed");
                        prop_assert!(in_flight.is_none(), "two flushes in flight");
                        // A range none of whose records reached us has nothing to replay.
                        if let (true, Some(r)) = (first_batch, replay) {
                            if b.first_offset <= r.last_offset {
                                prop_assert_eq!(
                                    (b.first_offset, b.last_offset),
                                    (r.first_offset, r.last_offset)
                                );
                            }
                        }
                        first_batch = false;
                        in_flight = Some((b.first_offset, b.last_offset, b.rows));
                    }
                }
                Op::Ack { ok } => {
                    if let Some((_, last, rows)) = in_flight.take() {
                        if *ok && !released {
                            for r in rows {
                                unwritten.remove(&r);
                            }
                        }
                        if !*ok {
                            released = true;
                        }
                        if let Some(c) = p.flushed(7, *ok, last + 1) {
                            prop_assert!(*ok && !released);
                            prop_assert!(last_commit.is_none_or(|l| c > l), "commit went back");
                            if let Some(min) = unwritten.iter().next() {
                                prop_assert!(c <= *min, "commit {c} passes unwritten offset {min}");
                            }
                            last_commit = Some(c);
                        }
                    }
                }
                Op::StaleAck { next } => {
                    prop_assert_eq!(p.flushed(6, true, *next), None, "a stale epoch committed");
                }
                Op::Release => {
                    p.release();
                    released = true;
                    unwritten.clear();
                }
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn commits_grow_and_never_pass_an_unwritten_offset(
            watermark in -1i64..20,
            ops in prop::collection::vec(op(), 0..120),
        ) {
            run(watermark, None, -1, &ops)?;
        }

        #[test]
        fn a_replayed_range_is_the_first_batch_exactly(
            first in 5i64..15,
            len in 0i64..8,
            ops in prop::collection::vec(op(), 0..120),
        ) {
            let replay = Replay { first_offset: first, last_offset: first + len, last_record_time: 1 };
            run(first - 1, Some(replay), first - 4, &ops)?;
        }
    }

    #[test]
    fn redeliveries_join_the_batch_but_write_nothing() {
        let mut p: Partition<(), ()> = Partition::new(1, 10, None);
        assert_eq!(p.admit(9, 0, 1), Admission::Redelivery);
        assert_eq!(p.admit(10, 0, 1), Admission::Redelivery);
        assert_eq!(p.admit(11, 0, 1), Admission::Process);
        let b = p.take().expect("a batch");
        assert_eq!((b.first_offset, b.last_offset), (9, 11));
        assert_eq!(p.flushed(1, true, 12), Some(12));
    }

    #[test]
    fn a_replayed_range_cut_short_by_a_gap_keeps_its_end() {
        let replay = Replay {
            first_offset: 10,
            last_offset: 14,
            last_record_time: 99,
        };
        let mut p: Partition<(), ()> = Partition::new(1, 9, Some(replay));
        assert_eq!(p.admit(8, 0, 1), Admission::Ignore);
        assert_eq!(p.admit(11, 0, 1), Admission::Process);
        assert!(!p.wants_flush(&LIMITS) && p.take().is_none());
        assert_eq!(p.admit(16, 0, 1), Admission::Process);
        let cut = p.take().expect("the replayed range");
        assert_eq!(
            (cut.first_offset, cut.last_offset, cut.last_record_time),
            (10, 14, 99)
        );
        assert_eq!(p.flushed(1, true, 15), Some(15));
        let next = p.take().expect("the record after the gap");
        assert_eq!((next.first_offset, next.last_offset), (16, 16));
    }

    #[test]
    fn a_released_partition_neither_flushes_nor_commits() {
        let mut p: Partition<(), ()> = Partition::new(3, -1, None);
        p.admit(0, 0, 1);
        let b = p.take().expect("batch");
        p.admit(1, 0, 1);
        p.release();
        assert!(p.take().is_none());
        assert_eq!(p.flushed(3, true, b.last_offset + 1), None);
        assert!(!p.pending());
    }
}
