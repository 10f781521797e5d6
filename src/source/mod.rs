//! Records and where they come from: sequence numbers, the recorded shard
//! dump (reader and writer), and the bounded record buffer the poll loop
//! drains.

pub mod buffer;
pub mod dump;
pub mod kinesis;
pub mod kinesis_api;
pub mod kpl;
pub mod make_dump;
pub mod record;
pub mod replay;

pub use crate::spec::sequence::{SequenceNumber, normalize_decimal};

/// One Kinesis record as GetRecords returns it, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// The sequence number's decimal digits, without leading zeros.
    pub sequence: &'a str,
    /// ApproximateArrivalTimestamp in epoch milliseconds.
    pub arrival_millis: i64,
    pub data: &'a [u8],
}

/// The records of a batch in order, each starting where the one before
/// ended (a lookup of the entry before per record, through a closure the
/// poll loop called, was ~0.8% of a csv replay's instructions).
pub struct RecordsIter<'a> {
    records: &'a Records,
    entries: std::slice::Iter<'a, RecordEntry>,
    sequence_start: usize,
    data_start: usize,
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = RecordRef<'a>;

    #[inline(always)]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        let e = self.entries.next()?;
        let record = RecordRef {
            sequence: &self.records.sequences[self.sequence_start..e.sequence_end],
            arrival_millis: e.arrival_millis,
            data: &self.records.data[self.data_start..e.data_end],
        };
        self.sequence_start = e.sequence_end;
        self.data_start = e.data_end;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for RecordsIter<'_> {}

/// The records of one batch, side by side: every record's sequence digits
/// in one string, every record's data in one buffer. Three allocations per
/// batch instead of two per record: the fetch threads allocate and the poll
/// loop frees, and freeing another thread's blocks one record at a time
/// cost about 6% of a replay (perf, 4-shard flights csv dump).
#[derive(Debug, Default, Clone)]
pub struct Records {
    sequences: String,
    data: Vec<u8>,
    entries: Vec<RecordEntry>,
}

/// Digits in a Kinesis sequence number as Kinesis writes them today.
const SEQUENCE_DIGITS: usize = 56;

#[derive(Debug, Clone, Copy)]
struct RecordEntry {
    sequence_end: usize,
    data_end: usize,
    arrival_millis: i64,
}

impl Records {
    pub fn with_capacity(records: usize, data_bytes: usize) -> Records {
        Records {
            sequences: String::with_capacity(records * SEQUENCE_DIGITS),
            data: Vec::with_capacity(data_bytes),
            entries: Vec::with_capacity(records),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline(always)]
    pub fn get(&self, i: usize) -> RecordRef<'_> {
        let (sequence_start, data_start) = match i {
            0 => (0, 0),
            _ => {
                let p = self.entries[i - 1];
                (p.sequence_end, p.data_end)
            }
        };
        let e = self.entries[i];
        RecordRef {
            sequence: &self.sequences[sequence_start..e.sequence_end],
            arrival_millis: e.arrival_millis,
            data: &self.data[data_start..e.data_end],
        }
    }

    pub fn last(&self) -> Option<RecordRef<'_>> {
        (!self.is_empty()).then(|| self.get(self.len() - 1))
    }

    pub fn iter(&self) -> RecordsIter<'_> {
        RecordsIter {
            records: self,
            entries: self.entries.iter(),
            sequence_start: 0,
            data_start: 0,
        }
    }

    /// Append a record. `sequence` must be normalized digits
    /// (`SequenceNumber::parse` or `normalize_decimal` made them).
    pub fn push(&mut self, sequence: &str, arrival_millis: i64, data: &[u8]) {
        let _ = self.push_with(sequence, arrival_millis, |buf| {
            buf.extend_from_slice(data);
            Ok::<(), ()>(())
        });
    }

    /// Append a record whose data `fill` appends to the data buffer
    /// (decoding it in place); when `fill` fails nothing is added.
    pub fn push_with<E>(
        &mut self,
        sequence: &str,
        arrival_millis: i64,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let data_start = self.data.len();
        if let Err(e) = fill(&mut self.data) {
            self.data.truncate(data_start);
            return Err(e);
        }
        self.sequences.push_str(sequence);
        self.entries.push(RecordEntry {
            sequence_end: self.sequences.len(),
            data_end: self.data.len(),
            arrival_millis,
        });
        Ok(())
    }

    /// Bytes of data the buffer holds room for.
    pub fn data_capacity(&self) -> usize {
        self.data.capacity()
    }

    /// Forget every record, keeping the buffers' room.
    pub fn clear(&mut self) {
        self.sequences.clear();
        self.data.clear();
        self.entries.clear();
    }

    /// Drop the last record.
    pub fn pop(&mut self) {
        self.entries.pop();
        let (s, d) = self
            .entries
            .last()
            .map_or((0, 0), |e| (e.sequence_end, e.data_end));
        self.sequences.truncate(s);
        self.data.truncate(d);
    }
}

/// What a fetcher hands the poll loop: records of one shard, in order.
#[derive(Debug)]
pub struct RecordBatch {
    /// Position of the shard in the supplier's shard list.
    pub shard: usize,
    pub records: Records,
    pub end: BatchEnd,
    /// Kinesis's MillisBehindLatest for the shard after this batch (live only).
    pub millis_behind: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEnd {
    /// More records may follow.
    More,
    /// The shard is closed and every record has been delivered (Druid's EOS).
    EndOfShard,
    /// A recorded dump has no more records for this open shard.
    Exhausted,
}

/// Where a shard's reading must start and stop.
#[derive(Debug, Clone)]
pub struct ShardAssignment {
    pub shard_id: String,
    pub start: SequenceNumber,
    pub exclusive: bool,
    pub end: SequenceNumber,
}

/// A shard as ListShards (or a dump's shards.json) tells of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLink {
    pub parent: Option<String>,
    pub adjacent_parent: Option<String>,
}

impl ShardLink {
    pub fn parents(&self) -> impl Iterator<Item = &String> {
        self.parent.iter().chain(self.adjacent_parent.iter())
    }
}

/// The children of resharded shards that may be read now, sorted by shard
/// id with their parents: shards not read yet, with at least one parent
/// among the shards being read (`drained` tells of each whether it was
/// read to its end), and every such parent drained. A parent that was never
/// ours (read by another task, or gone before this one) does not hold a
/// child back; reading a child only after its parents keeps each
/// partition key's records in order.
pub fn ready_children(
    links: &std::collections::BTreeMap<String, ShardLink>,
    drained: &std::collections::BTreeMap<String, bool>,
) -> Vec<(String, Vec<String>)> {
    links
        .iter()
        .filter(|(id, _)| !drained.contains_key(*id))
        .filter_map(|(id, link)| {
            let ours: Vec<String> = link
                .parents()
                .filter(|p| drained.contains_key(*p))
                .cloned()
                .collect();
            (!ours.is_empty() && ours.iter().all(|p| drained[p])).then(|| (id.clone(), ours))
        })
        .collect()
}

/// What to do with one record, by Druid's inclusive/exclusive rules
/// (peon-protocol §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Before the start (or at an exclusive start): not ours.
    Skip,
    Process,
    /// The record equals the end: process it, then the shard is done.
    ProcessAndFinish,
    /// Past the end: not processed, and the shard is done.
    Finish,
}

impl ShardAssignment {
    /// `sequence`: a record's normalized digits.
    pub fn admit(&self, sequence: &str) -> Admit {
        use std::cmp::Ordering;
        match self.start.cmp_digits(sequence) {
            Ordering::Greater => return Admit::Skip,
            Ordering::Equal if self.exclusive => return Admit::Skip,
            _ => {}
        }
        match self.end.cmp_digits(sequence) {
            Ordering::Greater => Admit::Process,
            Ordering::Equal => Admit::ProcessAndFinish,
            Ordering::Less => Admit::Finish,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(s: &str) -> &str {
        normalize_decimal(s).unwrap()
    }

    fn marker(s: &str) -> SequenceNumber {
        SequenceNumber::parse(s).unwrap()
    }

    #[test]
    fn children_wait_for_every_parent_of_ours() {
        let link = |p: Option<&str>, a: Option<&str>| ShardLink {
            parent: p.map(String::from),
            adjacent_parent: a.map(String::from),
        };
        // 0 split into 4 and 5; 2 and 3 merged into 6; 9 is another task's.
        let links: std::collections::BTreeMap<String, ShardLink> = [
            ("0", link(None, None)),
            ("1", link(None, None)),
            ("2", link(None, None)),
            ("3", link(None, None)),
            ("4", link(Some("0"), None)),
            ("5", link(Some("0"), None)),
            ("6", link(Some("2"), Some("3"))),
            ("7", link(Some("9"), None)),
            ("8", link(Some("9"), Some("1"))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let drained = |done: &[&str]| -> std::collections::BTreeMap<String, bool> {
            ["0", "1", "2", "3"]
                .iter()
                .map(|s| (s.to_string(), done.contains(s)))
                .collect()
        };
        assert_eq!(ready_children(&links, &drained(&[])), vec![]);
        assert_eq!(
            ready_children(&links, &drained(&["0", "2"])),
            vec![
                ("4".to_string(), vec!["0".to_string()]),
                ("5".to_string(), vec!["0".to_string()])
            ]
        );
        assert_eq!(
            ready_children(&links, &drained(&["1", "2", "3"])),
            vec![
                ("6".to_string(), vec!["2".to_string(), "3".to_string()]),
                ("8".to_string(), vec!["1".to_string()])
            ]
        );
        // Once a child is being read it is not started again.
        let mut d = drained(&["0"]);
        d.insert("4".into(), false);
        assert_eq!(
            ready_children(&links, &d),
            vec![("5".to_string(), vec!["0".to_string()])]
        );
    }

    #[test]
    fn admits_by_druid_rules() {
        let a = ShardAssignment {
            shard_id: "s".into(),
            start: marker("10"),
            exclusive: true,
            end: marker("20"),
        };
        assert_eq!(a.admit(seq("9")), Admit::Skip);
        assert_eq!(a.admit(seq("10")), Admit::Skip);
        assert_eq!(a.admit(seq("11")), Admit::Process);
        assert_eq!(a.admit(seq("20")), Admit::ProcessAndFinish);
        assert_eq!(a.admit(seq("21")), Admit::Finish);
        let inclusive = ShardAssignment {
            exclusive: false,
            end: marker("NO_END_SEQUENCE_NUMBER"),
            ..a
        };
        assert_eq!(inclusive.admit(seq("10")), Admit::Process);
        assert_eq!(
            inclusive.admit(seq("999999999999999999999999")),
            Admit::Process
        );
        // Leading zeros do not matter; markers bound every number.
        assert_eq!(inclusive.admit(seq("0011")), Admit::Process);
        let unread = ShardAssignment {
            start: marker("UNREAD_TRIM_HORIZON"),
            exclusive: true,
            end: marker("EOS"),
            ..inclusive
        };
        assert_eq!(unread.admit(seq("0")), Admit::Process);
    }

    #[test]
    fn records_share_their_buffers() {
        let mut r = Records::with_capacity(2, 16);
        r.push("12", 5, b"ab");
        assert!(r.push_with("13", 6, |_| Err("bad")).is_err());
        r.push("14", 7, b"");
        r.push("15", 8, b"xyz");
        r.pop();
        assert_eq!(r.len(), 2);
        let got: Vec<_> = r
            .iter()
            .map(|x| (x.sequence, x.arrival_millis, x.data))
            .collect();
        assert_eq!(got, vec![("12", 5, &b"ab"[..]), ("14", 7, &b""[..])]);
        assert_eq!(r.last().unwrap().sequence, "14");
        // The iterator and indexing agree, record by record.
        r.push("16", 9, b"pq");
        assert_eq!(r.iter().len(), 3);
        for (i, x) in r.iter().enumerate() {
            let y = r.get(i);
            assert_eq!(
                (x.sequence, x.arrival_millis, x.data),
                (y.sequence, y.arrival_millis, y.data)
            );
        }
    }
}
