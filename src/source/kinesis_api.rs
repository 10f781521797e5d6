//! The three Kinesis calls the peon makes (GetShardIterator, GetRecords,
//! ListShards) behind one small trait, so the fetch loop, `record` and the
//! runner's shard lookups share them and tests can drive them without a
//! server. Failures are typed by what a caller does about them, decided on
//! the SDK's error codes and kinds, not on its message text.

use super::dump::{HashKeyRange, SequenceNumberRange, ShardInfo};
use super::kinesis::KinesisConnection;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    TrimHorizon,
    Latest,
    At(String),
    After(String),
}

/// One record of a GetRecords reply.
#[derive(Debug, Clone)]
pub struct KinesisRecord {
    pub sequence_number: String,
    pub arrival: Option<DateTime>,
    pub data: Vec<u8>,
    pub partition_key: Option<String>,
}

/// One GetRecords reply: its records, the next iterator (None once a
/// closed shard is read to its end) and how far behind the tip it is.
#[derive(Debug, Clone, Default)]
pub struct RecordsPage {
    pub records: Vec<KinesisRecord>,
    pub next_iterator: Option<String>,
    pub millis_behind: Option<i64>,
}

/// A failed call, by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum KinesisError {
    /// Throughput or request limits (ProvisionedThroughputExceeded,
    /// LimitExceeded, KMS throttling): back off and retry.
    #[error("throttled: {0}")]
    Throttled(String),
    /// The network, a timeout or a server-side failure: back off and retry.
    #[error("transient failure: {0}")]
    Transient(String),
    /// GetRecords with an iterator older than five minutes: ask for a new
    /// one after the last record read.
    #[error("iterator expired: {0}")]
    ExpiredIterator(String),
    /// Anything else (a bad request, an unknown stream or shard, access
    /// denied): retrying would not help.
    #[error("{0}")]
    Fatal(String),
}

impl KinesisError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            KinesisError::Throttled(_) | KinesisError::Transient(_)
        )
    }

    fn from_sdk<E>(e: SdkError<E>) -> KinesisError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let text = DisplayErrorContext(&e).to_string();
        match &e {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => KinesisError::Transient(text),
            SdkError::ServiceError(s) => {
                let code = s.err().code().unwrap_or("");
                if code == "ExpiredIteratorException" {
                    KinesisError::ExpiredIterator(text)
                } else if code.starts_with("ProvisionedThroughputExceeded")
                    || code.starts_with("LimitExceeded")
                    || code.contains("Throttl")
                {
                    KinesisError::Throttled(text)
                } else if code.starts_with("InternalFailure")
                    || code.starts_with("ServiceUnavailable")
                    || s.raw().status().as_u16() >= 500
                {
                    KinesisError::Transient(text)
                } else {
                    KinesisError::Fatal(text)
                }
            }
            _ => KinesisError::Fatal(text),
        }
    }
}

/// The Kinesis calls, one method each, with the limits AWS documents.
pub trait KinesisApi {
    /// GetShardIterator: None for a closed shard already read to its end.
    fn shard_iterator(
        &self,
        stream: &str,
        shard: &str,
        start: &IteratorStart,
    ) -> Result<Option<String>, KinesisError>;

    /// GetRecords: at most `limit` records (1 to 10,000); an iterator
    /// expires five minutes after it was handed out.
    fn records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, KinesisError>;

    /// ListShards: every shard of the stream, following pages.
    fn list_shards(&self, stream: &str) -> Result<Vec<ShardInfo>, KinesisError>;
}

impl KinesisApi for KinesisConnection {
    fn shard_iterator(
        &self,
        stream: &str,
        shard: &str,
        start: &IteratorStart,
    ) -> Result<Option<String>, KinesisError> {
        let req = self
            .client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard);
        let req = match start {
            IteratorStart::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            IteratorStart::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
            IteratorStart::At(n) => req
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(n),
            IteratorStart::After(n) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(n),
        };
        self.runtime
            .block_on(req.send())
            .map(|out| out.shard_iterator)
            .map_err(KinesisError::from_sdk)
    }

    fn records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, KinesisError> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(limit)
                    .send(),
            )
            .map_err(KinesisError::from_sdk)?;
        Ok(RecordsPage {
            records: out
                .records
                .into_iter()
                .map(|r| KinesisRecord {
                    sequence_number: r.sequence_number,
                    arrival: r.approximate_arrival_timestamp,
                    data: r.data.into_inner(),
                    partition_key: r.partition_key,
                })
                .collect(),
            next_iterator: out.next_shard_iterator,
            millis_behind: out.millis_behind_latest,
        })
    }

    fn list_shards(&self, stream: &str) -> Result<Vec<ShardInfo>, KinesisError> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self.client.list_shards();
            req = match &token {
                Some(t) => req.next_token(t),
                None => req.stream_name(stream),
            };
            let page = self
                .runtime
                .block_on(req.send())
                .map_err(KinesisError::from_sdk)?;
            shards.extend(page.shards.unwrap_or_default().into_iter().map(|s| {
                ShardInfo {
                    shard_id: s.shard_id,
                    parent_shard_id: s.parent_shard_id,
                    adjacent_parent_shard_id: s.adjacent_parent_shard_id,
                    hash_key_range: s.hash_key_range.map(|h| HashKeyRange {
                        starting_hash_key: h.starting_hash_key,
                        ending_hash_key: h.ending_hash_key,
                    }),
                    sequence_number_range: SequenceNumberRange {
                        starting_sequence_number: s
                            .sequence_number_range
                            .as_ref()
                            .map(|r| r.starting_sequence_number.clone())
                            .unwrap_or_default(),
                        ending_sequence_number: s
                            .sequence_number_range
                            .and_then(|r| r.ending_sequence_number),
                    },
                }
            }));
            token = page.next_token;
            if token.is_none() {
                return Ok(shards);
            }
        }
    }
}
