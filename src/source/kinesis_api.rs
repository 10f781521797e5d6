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
            // The network: refused or reset connections, timeouts, a
            // connection closed mid-reply (the connector marks it a
            // transient error). Other dispatch failures (no credentials, a
            // bad endpoint URL) would fail the same way again.
            SdkError::DispatchFailure(d)
                if d.is_io()
                    || d.is_timeout()
                    || matches!(
                        d.as_other(),
                        Some(aws_config::retry::ErrorKind::TransientError)
                    ) =>
            {
                KinesisError::Transient(text)
            }
            SdkError::TimeoutError(_) => KinesisError::Transient(text),
            // A reply the SDK could not read (a proxy's page, an emulator's
            // XML error): a refusal (4xx but 429) is final, anything else
            // may pass. The raw reply says more than the parse error.
            SdkError::ResponseError(r) => {
                let status = r.raw().status().as_u16();
                let summary = reply_summary(status, r.raw().body().bytes().unwrap_or_default());
                if (400..500).contains(&status) && status != 429 {
                    KinesisError::Fatal(with_credentials_hint(status, &summary))
                } else {
                    KinesisError::Transient(summary)
                }
            }
            SdkError::ServiceError(s) => {
                let code = s.err().code().unwrap_or("");
                let status = s.raw().status().as_u16();
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
                    KinesisError::Fatal(with_credentials_hint(status, &text))
                }
            }
            _ => KinesisError::Fatal(text),
        }
    }
}

/// "HTTP 403: InvalidClientTokenId: The security token ..." from an error
/// reply's status and body, AWS's JSON (`__type`, `message`) or XML
/// (`<Code>`, `<Message>`) form; else the start of the body as text.
fn reply_summary(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |names: &[&str]| -> Option<String> {
        let v = json.as_ref()?;
        names
            .iter()
            .find_map(|n| v.get(*n)?.as_str().map(str::to_string))
    };
    let xml = |tag: &str| -> Option<String> {
        let start = text.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = start + text[start..].find(&format!("</{tag}>"))?;
        Some(text[start..end].to_string())
    };
    let code = field(&["__type", "code"]).or_else(|| xml("Code"));
    let message = field(&["message", "Message"]).or_else(|| xml("Message"));
    match (code, message) {
        (Some(c), Some(m)) => format!("HTTP {status}: {}: {m}", c.rsplit('#').next().unwrap_or(&c)),
        (Some(c), None) => format!("HTTP {status}: {c}"),
        (None, Some(m)) => format!("HTTP {status}: {m}"),
        (None, None) => {
            let head: String = text.chars().take(200).collect();
            format!("HTTP {status}: {}", head.trim())
        }
    }
}

/// A refusal of the caller's identity says where credentials come from.
fn with_credentials_hint(status: u16, text: &str) -> String {
    const IDENTITY_CODES: [&str; 6] = [
        "UnrecognizedClient",
        "InvalidClientTokenId",
        "InvalidSignature",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "AccessDenied",
    ];
    if status == 403 || IDENTITY_CODES.iter().any(|c| text.contains(c)) {
        format!(
            "{text} (the server refused the credentials or their permissions: check druid.kinesis.accessKey/secretKey, the environment's AWS credentials, or ioConfig.awsAssumedRoleArn)"
        )
    } else {
        text.to_string()
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

/// Another `KinesisApi` whose throttled and transient failures are retried
/// with a doubling back-off (from 100 ms, at most 10 s a wait) for as long
/// as `bound` (fetchSequenceNumberTimeout) allows and at most `MAX_TRIES`
/// calls, as Druid bounds its sequence-number lookups; then the last
/// failure is returned, saying how long and how often it was tried. For
/// the calls made outside the fetch loop: ListShards, the earliest-record
/// lookup, `record`'s reads.
pub struct Retrying<A> {
    pub api: A,
    bound: std::time::Duration,
    wait: fn(std::time::Duration),
}

/// Druid's retry count for its sequence-number lookups.
pub const MAX_TRIES: u32 = 10;

impl<A: KinesisApi> Retrying<A> {
    pub fn new(api: A, bound: std::time::Duration) -> Retrying<A> {
        Retrying {
            api,
            bound,
            wait: std::thread::sleep,
        }
    }

    fn call<T>(
        &self,
        what: &str,
        f: impl Fn(&A) -> Result<T, KinesisError>,
    ) -> Result<T, KinesisError> {
        use std::time::{Duration, Instant};
        let started = Instant::now();
        let (mut waited, mut backoff) = (Duration::ZERO, Duration::ZERO);
        let mut tries = 0;
        loop {
            tries += 1;
            let e = match f(&self.api) {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => e,
            };
            backoff = if backoff.is_zero() {
                Duration::from_millis(100)
            } else {
                (backoff * 2).min(Duration::from_secs(10))
            };
            // The time spent: the clock's, or the waits' when these do not
            // really sleep (tests).
            let spent = started.elapsed().max(waited);
            if tries >= MAX_TRIES || spent + backoff > self.bound {
                let text = format!(
                    "{what}: gave up after {tries} tries over {} ms (fetchSequenceNumberTimeout {} ms): {e}",
                    spent.as_millis(),
                    self.bound.as_millis()
                );
                return Err(match e {
                    KinesisError::Throttled(_) => KinesisError::Throttled(text),
                    _ => KinesisError::Transient(text),
                });
            }
            log::warn!("{what}: {e}; retrying in {} ms", backoff.as_millis());
            (self.wait)(backoff);
            waited += backoff;
        }
    }
}

impl<A: KinesisApi> KinesisApi for Retrying<A> {
    fn shard_iterator(
        &self,
        stream: &str,
        shard: &str,
        start: &IteratorStart,
    ) -> Result<Option<String>, KinesisError> {
        self.call(&format!("GetShardIterator {stream}/{shard}"), |a| {
            a.shard_iterator(stream, shard, start)
        })
    }

    fn records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, KinesisError> {
        self.call("GetRecords", |a| a.records(iterator, limit))
    }

    fn list_shards(&self, stream: &str) -> Result<Vec<ShardInfo>, KinesisError> {
        self.call(&format!("ListShards {stream}"), |a| a.list_shards(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::time::Duration;

    #[test]
    fn error_replies_are_summed_up_from_json_xml_or_text() {
        let json = br#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#;
        assert_eq!(
            reply_summary(400, json),
            "HTTP 400: UnrecognizedClientException: The security token included in the request is invalid."
        );
        let xml = b"<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>bad token</Message></Error></Errors></ErrorResponse>";
        assert_eq!(
            reply_summary(403, xml),
            "HTTP 403: InvalidClientTokenId: bad token"
        );
        assert_eq!(
            reply_summary(502, b"  Bad Gateway\n"),
            "HTTP 502: Bad Gateway"
        );
        assert!(
            with_credentials_hint(400, "HTTP 400: UnrecognizedClientException: x")
                .contains("druid.kinesis.accessKey")
        );
        assert_eq!(
            with_credentials_hint(400, "HTTP 400: ResourceNotFoundException: x"),
            "HTTP 400: ResourceNotFoundException: x"
        );
    }

    /// ListShards answering the scripted failures, then one shard.
    struct Flaky {
        failures: RefCell<Vec<KinesisError>>,
        calls: RefCell<u32>,
    }

    impl KinesisApi for Flaky {
        fn shard_iterator(
            &self,
            _: &str,
            _: &str,
            _: &IteratorStart,
        ) -> Result<Option<String>, KinesisError> {
            unreachable!()
        }
        fn records(&self, _: &str, _: i32) -> Result<RecordsPage, KinesisError> {
            unreachable!()
        }
        fn list_shards(&self, _: &str) -> Result<Vec<ShardInfo>, KinesisError> {
            *self.calls.borrow_mut() += 1;
            match self.failures.borrow_mut().pop() {
                Some(e) => Err(e),
                None => Ok(Vec::new()),
            }
        }
    }

    fn retrying(failures: Vec<KinesisError>, bound_ms: u64) -> Retrying<Flaky> {
        Retrying {
            api: Flaky {
                failures: RefCell::new(failures),
                calls: RefCell::new(0),
            },
            bound: Duration::from_millis(bound_ms),
            wait: |_| {},
        }
    }

    #[test]
    fn throttling_and_transient_failures_are_retried_until_they_pass() {
        let r = retrying(
            vec![
                KinesisError::Transient("connection reset".into()),
                KinesisError::Throttled("LimitExceededException".into()),
            ],
            20_000,
        );
        assert!(r.list_shards("s").is_ok());
        assert_eq!(*r.api.calls.borrow(), 3);
    }

    #[test]
    fn a_fatal_failure_is_not_retried() {
        let r = retrying(vec![KinesisError::Fatal("AccessDenied".into())], 20_000);
        assert!(matches!(r.list_shards("s"), Err(KinesisError::Fatal(_))));
        assert_eq!(*r.api.calls.borrow(), 1);
    }

    /// Failures past the bound: the waits (100, 200, 400 ms) stop before
    /// the next would pass 1 s; the error says what, how often and why.
    #[test]
    fn retries_end_at_the_bound_with_a_clear_message() {
        let always = || KinesisError::Transient("dispatch failure: connection refused".into());
        let r = retrying((0..50).map(|_| always()).collect(), 1_000);
        let e = r.list_shards("flights").unwrap_err().to_string();
        assert_eq!(*r.api.calls.borrow(), 4, "{e}");
        assert!(
            e.contains("ListShards flights: gave up after 4 tries")
                && e.contains("fetchSequenceNumberTimeout 1000 ms")
                && e.contains("connection refused"),
            "{e}"
        );
        // A large bound: at most MAX_TRIES calls.
        let r = retrying((0..50).map(|_| always()).collect(), 10_000_000);
        assert!(r.list_shards("flights").is_err());
        assert_eq!(*r.api.calls.borrow(), MAX_TRIES);
    }
}
