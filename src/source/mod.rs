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
