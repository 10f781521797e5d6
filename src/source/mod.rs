//! Records and where they come from: sequence numbers, the recorded shard
//! dump (reader and writer), and the bounded record buffer the poll loop
//! drains.

pub mod buffer;
pub mod dump;
pub mod kinesis;
pub mod kpl;
pub mod make_dump;
pub mod record;
pub mod replay;

pub use crate::spec::sequence::SequenceNumber;

/// One Kinesis record as GetRecords returns it.
#[derive(Debug, Clone)]
pub struct Record {
    pub sequence: SequenceNumber,
    /// ApproximateArrivalTimestamp in epoch milliseconds.
    pub arrival_millis: i64,
    pub data: Vec<u8>,
}

/// What a fetcher hands the poll loop: records of one shard, in order.
#[derive(Debug)]
pub struct RecordBatch {
    /// Position of the shard in the supplier's shard list.
    pub shard: usize,
    pub records: Vec<Record>,
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
    pub fn admit(&self, seq: &SequenceNumber) -> Admit {
        if seq < &self.start || (self.exclusive && seq == &self.start) {
            return Admit::Skip;
        }
        match seq.cmp(&self.end) {
            std::cmp::Ordering::Less => Admit::Process,
            std::cmp::Ordering::Equal => Admit::ProcessAndFinish,
            std::cmp::Ordering::Greater => Admit::Finish,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(s: &str) -> SequenceNumber {
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
            start: seq("10"),
            exclusive: true,
            end: seq("20"),
        };
        assert_eq!(a.admit(&seq("9")), Admit::Skip);
        assert_eq!(a.admit(&seq("10")), Admit::Skip);
        assert_eq!(a.admit(&seq("11")), Admit::Process);
        assert_eq!(a.admit(&seq("20")), Admit::ProcessAndFinish);
        assert_eq!(a.admit(&seq("21")), Admit::Finish);
        let inclusive = ShardAssignment {
            exclusive: false,
            end: seq("NO_END_SEQUENCE_NUMBER"),
            ..a
        };
        assert_eq!(inclusive.admit(&seq("10")), Admit::Process);
        assert_eq!(
            inclusive.admit(&seq("999999999999999999999999")),
            Admit::Process
        );
    }
}
