//! The metadata commit: Druid's own tables (`druid_segments`,
//! `druid_dataSource`, `druid_pendingSegments`) in the embedded SQLite file
//! or in a Druid cluster's PostgreSQL, with Druid's allocation and
//! compare-and-swap rules (peon-protocol §8.1, §8.5) applied here, so
//! segments and stream offsets are published exactly once.

mod backend;
mod postgres;
mod sqlite;

pub use backend::Tables;
use backend::{MetaTx, PendingRow, SegmentRow};
pub use sqlite::BUSY_TIMEOUT_VAR;

use crate::spec::sequence::SequenceNumber;
use crate::spec::time::{format_interval, format_iso};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

/// Druid's DataSegment as it goes into `druid_segments.payload`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataSegment {
    pub data_source: String,
    pub interval: String,
    pub version: String,
    pub load_spec: Value,
    pub dimensions: String,
    pub metrics: String,
    pub shard_spec: ShardSpec,
    pub binary_version: i32,
    pub size: u64,
    pub identifier: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShardSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub partition_num: u32,
    pub partitions: u32,
}

/// An allocated segment identity (what SegmentAllocateAction returns).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentIdentity {
    pub data_source: String,
    pub interval: (i64, i64),
    pub version: String,
    pub partition_num: u32,
    pub partitions: u32,
}

/// An open allocation transaction (see `MetadataStore::allocator`).
pub struct Allocator<'a> {
    tx: Box<dyn MetaTx + 'a>,
}

impl Allocator<'_> {
    /// Ids for `partitions` consecutive partitions of one interval, each
    /// chained to the previous one as Druid chains pending segments.
    pub fn allocate(
        &mut self,
        data_source: &str,
        sequence_name: &str,
        interval: (i64, i64),
        partitions: usize,
        lock_version: &str,
    ) -> Result<Vec<SegmentIdentity>> {
        let mut out: Vec<SegmentIdentity> = Vec::with_capacity(partitions);
        // The chunk's version and highest partition, read once when the
        // first new id is needed and kept up to date here after: read per
        // id, a 14,555-partition interval took 209 s (every pending
        // segment of the interval parsed for each).
        let mut chunk: Option<ChunkState> = None;
        for _ in 0..partitions {
            let previous = out.last().map(SegmentIdentity::id).unwrap_or_default();
            let key_sha1 = pending_key_sha1(sequence_name, &previous, interval);
            if let Some(found) = find_pending(&mut *self.tx, data_source, interval, &key_sha1)? {
                out.push(found);
                continue;
            }
            let state = match &mut chunk {
                Some(state) => state,
                None => chunk.insert(chunk_state(
                    &mut *self.tx,
                    data_source,
                    interval,
                    lock_version,
                )?),
            };
            let identity = SegmentIdentity {
                data_source: data_source.to_string(),
                interval,
                version: state.version.clone(),
                partition_num: state.max_partition.map_or(0, |m| m + 1),
                partitions: state.core,
            };
            state.max_partition = Some(identity.partition_num);
            insert_pending(
                &mut *self.tx,
                &identity,
                sequence_name,
                &previous,
                &key_sha1,
            )?;
            out.push(identity);
        }
        Ok(out)
    }

    pub fn commit(self) -> Result<()> {
        self.tx.commit()
    }
}

impl SegmentIdentity {
    pub fn id(&self) -> String {
        segment_id(
            &self.data_source,
            self.interval,
            &self.version,
            self.partition_num,
        )
    }
}

pub fn segment_id(
    data_source: &str,
    interval: (i64, i64),
    version: &str,
    partition: u32,
) -> String {
    let base = format!(
        "{data_source}_{}_{}_{version}",
        format_iso(interval.0),
        format_iso(interval.1)
    );
    if partition == 0 {
        base
    } else {
        format!("{base}_{partition}")
    }
}

/// A start or end position of a stream, as committed with segments.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOffsets {
    pub stream: String,
    pub offsets: BTreeMap<String, SequenceNumber>,
    pub exclusive: Vec<String>,
}

impl StreamOffsets {
    /// `druid_dataSource.commit_metadata_payload` for an end position.
    pub fn end_metadata_json(&self) -> Value {
        let map: BTreeMap<&String, String> = self
            .offsets
            .iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        json!({
            "type": "kinesis",
            "partitions": {
                "type": "end",
                "stream": self.stream,
                "topic": self.stream,
                "partitionSequenceNumberMap": map,
                "partitionOffsetMap": map,
            }
        })
    }

    fn from_metadata_json(v: &Value) -> Result<StreamOffsets> {
        let p = v
            .get("partitions")
            .context("stored metadata has no partitions")?;
        let stream = p
            .get("stream")
            .or_else(|| p.get("topic"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let map = p
            .get("partitionSequenceNumberMap")
            .or_else(|| p.get("partitionOffsetMap"))
            .and_then(Value::as_object)
            .context("stored metadata has no partitionSequenceNumberMap")?;
        let mut offsets = BTreeMap::new();
        for (k, v) in map {
            let s = v
                .as_str()
                .context("stored sequence number is not a string")?;
            offsets.insert(
                k.clone(),
                SequenceNumber::parse(s).map_err(anyhow::Error::msg)?,
            );
        }
        Ok(StreamOffsets {
            stream,
            offsets,
            exclusive: Vec::new(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        let parts: Vec<String> = self
            .offsets
            .iter()
            .map(|(k, v)| {
                let ex = if self.exclusive.contains(k) {
                    " (exclusive)"
                } else {
                    ""
                };
                format!("{k}={v}{ex}")
            })
            .collect();
        format!("{}: {{{}}}", self.stream, parts.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PublishOutcome {
    Published,
    /// The same segment ids were already published (a replica or an
    /// earlier run of the same task): success, nothing written.
    AlreadyPublished,
}

/// Where the metadata lives.
enum Backend {
    Sqlite(rusqlite::Connection),
    /// A RefCell so that reads can take `&self`, as they do on SQLite.
    /// The target: to connect again after the server went away.
    Postgres(
        Box<RefCell<::postgres::Client>>,
        Tables,
        Box<postgres::PgTarget>,
    ),
}

pub struct MetadataStore {
    backend: Backend,
}

/// The property that picks the metadata store, as in Druid.
pub const STORE_TYPE_PROPERTY: &str = "druid.metadata.storage.type";

fn sha1_upper(bytes: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(bytes))
}

fn now_iso() -> String {
    format_iso(chrono::Utc::now().timestamp_millis())
}

impl MetadataStore {
    /// The embedded store: a SQLite file.
    pub fn open(path: &Path) -> Result<MetadataStore> {
        Ok(MetadataStore {
            backend: Backend::Sqlite(sqlite::open(path)?),
        })
    }

    /// The store the runtime properties name: `druid.metadata.storage.type`
    /// `postgresql` (a Druid cluster's, with Druid's connector and table
    /// properties), else the embedded SQLite file at `embedded`.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
        embedded: &Path,
    ) -> Result<MetadataStore> {
        match props.get(STORE_TYPE_PROPERTY).map(|s| s.trim()) {
            None | Some("") | Some("embedded") | Some("sqlite") => MetadataStore::open(embedded),
            Some("postgresql") => {
                let tables = Tables::from_properties(props)?;
                let target = postgres::target(props)?;
                let client = postgres::connect(&target, &tables)?;
                log::info!("metadata store: PostgreSQL at {}", target.describe);
                Ok(MetadataStore {
                    backend: Backend::Postgres(
                        Box::new(RefCell::new(client)),
                        tables,
                        Box::new(target),
                    ),
                })
            }
            Some(other) => bail!(
                "{STORE_TYPE_PROPERTY}={other:?} is not supported (postgresql, or unset for the embedded store)"
            ),
        }
    }

    fn begin(&mut self, data_source: &str) -> Result<Box<dyn MetaTx + '_>> {
        match &mut self.backend {
            Backend::Sqlite(conn) => sqlite::begin(conn),
            Backend::Postgres(client, tables, target) => {
                if client.get_mut().is_closed() {
                    // The server went away since the last call (a restart,
                    // a dropped connection): connect again.
                    log::info!(
                        "reconnecting to the PostgreSQL metadata store at {}",
                        target.describe
                    );
                    *client.get_mut() = postgres::connect(target, tables)?;
                }
                postgres::begin(client.get_mut(), tables, data_source)
            }
        }
    }

    /// A read on a transaction of its own, for `&self` callers.
    fn read<T>(
        &self,
        data_source: &str,
        f: impl FnOnce(&mut dyn MetaTx) -> Result<T>,
    ) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut tx = sqlite::begin_read(conn)?;
                let out = f(&mut *tx)?;
                tx.commit()?;
                Ok(out)
            }
            Backend::Postgres(client, tables, target) => {
                let mut client = client.borrow_mut();
                if client.is_closed() {
                    *client = postgres::connect(target, tables)?;
                }
                let mut tx = postgres::begin(&mut client, tables, data_source)?;
                let out = f(&mut *tx)?;
                tx.commit()?;
                Ok(out)
            }
        }
    }

    /// Allocate (or find again) the segments of one sequence, in one
    /// transaction, as SegmentAllocateAction does with lineage checks
    /// skipped: the same (sequence name, previous id, interval) always gets
    /// the same id. An interval's partitions come in order, each naming the
    /// one before it.
    pub fn allocate_sequence(
        &mut self,
        data_source: &str,
        sequence_name: &str,
        intervals: &[(i64, i64)],
        lock_version: &str,
    ) -> Result<Vec<SegmentIdentity>> {
        let mut allocator = self.allocator(data_source)?;
        let mut out: Vec<SegmentIdentity> = Vec::with_capacity(intervals.len());
        let mut i = 0;
        while i < intervals.len() {
            let n = intervals[i..]
                .iter()
                .take_while(|&&t| t == intervals[i])
                .count();
            out.extend(allocator.allocate(
                data_source,
                sequence_name,
                intervals[i],
                n,
                lock_version,
            )?);
            i += n;
        }
        allocator.commit()?;
        Ok(out)
    }

    /// Whether the last failure was the metadata store going away (the
    /// PostgreSQL connection closed): such a failure is worth retrying, on
    /// a new connection. SQLite's locks are waited out inside each call.
    pub fn connection_lost(&self) -> bool {
        match &self.backend {
            Backend::Sqlite(_) => false,
            Backend::Postgres(client, _, _) => client.borrow().is_closed(),
        }
    }

    /// Allocate segment ids interval by interval inside one transaction
    /// (one commit, however many intervals a sequence has).
    pub fn allocator(&mut self, data_source: &str) -> Result<Allocator<'_>> {
        Ok(Allocator {
            tx: self.begin(data_source)?,
        })
    }

    /// Publish segments and move the stream offsets from `start` to `end` in
    /// one transaction, by Druid's compare-and-swap rule.
    pub fn publish(
        &mut self,
        data_source: &str,
        segments: &[DataSegment],
        offsets: Option<(&StreamOffsets, &StreamOffsets)>,
    ) -> Result<PublishOutcome> {
        let mut tx = self.begin(data_source)?;
        if let Some((start, end)) = offsets {
            match tx.datasource_metadata(data_source)? {
                None => {
                    let payload = serde_json::to_vec(&end.end_metadata_json())?;
                    tx.insert_datasource(data_source, &now_iso(), &payload, &sha1_upper(&payload))?;
                }
                Some(bytes) => {
                    let stored_json: Value = serde_json::from_slice(&bytes)
                        .context("stored commit metadata is not JSON")?;
                    let stored_offsets = StreamOffsets::from_metadata_json(&stored_json)?;
                    if let Err(why) = start_matches(start, &stored_offsets) {
                        drop(tx);
                        if self.all_used(data_source, segments)? {
                            return Ok(PublishOutcome::AlreadyPublished);
                        }
                        bail!(
                            "Inconsistent metadata state: the stored offsets [{}] do not match the task's start [{}] ({why}); nothing was published",
                            stored_offsets.describe(),
                            start.describe()
                        );
                    }
                    let mut merged = stored_offsets.clone();
                    merged.stream = end.stream.clone();
                    for (k, v) in &end.offsets {
                        merged.offsets.insert(k.clone(), v.clone());
                    }
                    let payload = serde_json::to_vec(&merged.end_metadata_json())?;
                    let updated = tx.swap_datasource(
                        data_source,
                        &payload,
                        &sha1_upper(&payload),
                        &sha1_upper(&bytes),
                    )?;
                    if updated != 1 {
                        bail!("the stored offsets changed while publishing; try again");
                    }
                }
            }
        }
        let now = now_iso();
        for seg in segments {
            let (start, end) = seg.interval.split_once('/').context("segment interval")?;
            tx.insert_segment(&SegmentRow {
                id: &seg.identifier,
                data_source: &seg.data_source,
                created_date: &now,
                start,
                end,
                version: &seg.version,
                payload: &serde_json::to_vec(seg)?,
            })?;
        }
        tx.commit()?;
        Ok(PublishOutcome::Published)
    }

    fn all_used(&self, data_source: &str, segments: &[DataSegment]) -> Result<bool> {
        if segments.is_empty() {
            return Ok(false);
        }
        // One lookup per segment: the data source may hold many more.
        self.read(data_source, |tx| {
            for s in segments {
                if !tx.is_used(&s.identifier)? {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// The committed offsets of a data source, if any.
    pub fn committed_offsets(&self, data_source: &str) -> Result<Option<StreamOffsets>> {
        let bytes = self.read(data_source, |tx| tx.datasource_metadata(data_source))?;
        bytes
            .map(|b| StreamOffsets::from_metadata_json(&serde_json::from_slice(&b)?))
            .transpose()
    }

    /// Every used segment of a data source, by id (the store orders them).
    pub fn used_segments(&self, data_source: &str) -> Result<Vec<DataSegment>> {
        let payloads = self.read(data_source, |tx| tx.used_payloads(data_source))?;
        payloads
            .iter()
            .map(|b| serde_json::from_slice(b).context("bad segment payload"))
            .collect()
    }
}

/// What names a pending segment for idempotent allocation: the SHA-1 of
/// (sequence name, previous id, interval), as Druid keys
/// `sequence_name_prev_id_sha1`.
fn pending_key_sha1(sequence_name: &str, previous_id: &str, interval: (i64, i64)) -> String {
    let mut key = Vec::new();
    key.extend_from_slice(sequence_name.as_bytes());
    key.push(0xFF);
    key.extend_from_slice(previous_id.as_bytes());
    key.push(0xFF);
    key.extend_from_slice(&interval.0.to_be_bytes());
    key.extend_from_slice(&interval.1.to_be_bytes());
    sha1_upper(&key)
}

/// The id allocated before for the same key, if any.
fn find_pending(
    tx: &mut dyn MetaTx,
    data_source: &str,
    interval: (i64, i64),
    key_sha1: &str,
) -> Result<Option<SegmentIdentity>> {
    let Some(payload) = tx.pending_by_key(key_sha1)? else {
        return Ok(None);
    };
    let v: Value = serde_json::from_slice(&payload)?;
    Ok(Some(SegmentIdentity {
        data_source: data_source.to_string(),
        interval,
        version: v["version"].as_str().unwrap_or_default().to_string(),
        partition_num: v["shardSpec"]["partitionNum"].as_u64().unwrap_or(0) as u32,
        partitions: v["shardSpec"]["partitions"].as_u64().unwrap_or(0) as u32,
    }))
}

/// A time chunk's version, highest partition and core partition count, as
/// the next id in it is drawn from.
struct ChunkState {
    version: String,
    max_partition: Option<u32>,
    core: u32,
}

fn chunk_state(
    tx: &mut dyn MetaTx,
    data_source: &str,
    interval: (i64, i64),
    lock_version: &str,
) -> Result<ChunkState> {
    let (start, end) = (format_iso(interval.0), format_iso(interval.1));
    // A chunk that already has used segments keeps their version.
    let used = tx.used_in_chunk(data_source, &start, &end)?;
    let pending: Vec<Value> = tx
        .pending_in_chunk(data_source, &start, &end)?
        .iter()
        .map(|p| serde_json::from_slice(p))
        .collect::<Result<_, _>>()?;
    // The chunk keeps the version of its used segments, else of its
    // pending ones, else takes the task lock's.
    let version = used
        .iter()
        .map(|(v, _)| v.clone())
        .max()
        .or_else(|| {
            pending
                .iter()
                .filter_map(|p| p["version"].as_str().map(str::to_string))
                .max()
        })
        .unwrap_or_else(|| lock_version.to_string());
    let mut max_partition: Option<u32> = None;
    let mut core = 0u32;
    for (v, payload) in &used {
        if *v != version {
            continue;
        }
        let seg: DataSegment = serde_json::from_slice(payload)?;
        if max_partition.is_none_or(|m| seg.shard_spec.partition_num >= m) {
            core = seg.shard_spec.partitions;
        }
        max_partition = Some(max_partition.map_or(seg.shard_spec.partition_num, |m| {
            m.max(seg.shard_spec.partition_num)
        }));
    }
    for v in &pending {
        if v["version"].as_str() == Some(version.as_str()) {
            let n = v["shardSpec"]["partitionNum"].as_u64().unwrap_or(0) as u32;
            max_partition = Some(max_partition.map_or(n, |m| m.max(n)));
        }
    }
    Ok(ChunkState {
        version,
        max_partition,
        core,
    })
}

fn insert_pending(
    tx: &mut dyn MetaTx,
    identity: &SegmentIdentity,
    sequence_name: &str,
    previous_id: &str,
    key_sha1: &str,
) -> Result<()> {
    let payload = json!({
        "dataSource": identity.data_source,
        "interval": format_interval(identity.interval.0, identity.interval.1),
        "version": identity.version,
        "shardSpec": {"type": "numbered", "partitionNum": identity.partition_num, "partitions": identity.partitions},
    });
    tx.insert_pending(&PendingRow {
        id: &identity.id(),
        data_source: &identity.data_source,
        created_date: &now_iso(),
        start: &format_iso(identity.interval.0),
        end: &format_iso(identity.interval.1),
        sequence_name,
        sequence_prev_id: previous_id,
        sequence_name_prev_id_sha1: key_sha1,
        payload: &serde_json::to_vec(&payload)?,
    })
}

/// Druid's `matches` between a task's start and the stored end (turned into
/// a start with every shard exclusive): every shard both name must hold the
/// same number and be exclusive in the task's start.
fn start_matches(start: &StreamOffsets, stored: &StreamOffsets) -> Result<(), String> {
    if !stored.stream.is_empty() && stored.stream != start.stream {
        return Err(format!(
            "stream {:?} is not the stored {:?}",
            start.stream, stored.stream
        ));
    }
    for (shard, seq) in &start.offsets {
        if let Some(stored_seq) = stored.offsets.get(shard) {
            if stored_seq != seq {
                return Err(format!("{shard} starts at {seq}, stored {stored_seq}"));
            }
            if !start.exclusive.contains(shard) {
                return Err(format!(
                    "{shard} starts inclusively at the stored offset {seq}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(pairs: &[(&str, &str)], exclusive: &[&str]) -> StreamOffsets {
        StreamOffsets {
            stream: "s".into(),
            offsets: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), SequenceNumber::parse(v).unwrap()))
                .collect(),
            exclusive: exclusive.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn segment(id: &str) -> DataSegment {
        DataSegment {
            data_source: "ds".into(),
            interval: "2013-01-01T00:00:00.000Z/2013-01-02T00:00:00.000Z".into(),
            version: "v1".into(),
            load_spec: json!({"type": "local", "path": "/x"}),
            dimensions: "a".into(),
            metrics: "count".into(),
            shard_spec: ShardSpec {
                kind: "numbered".into(),
                partition_num: 0,
                partitions: 0,
            },
            binary_version: 9,
            size: 1,
            identifier: id.into(),
        }
    }

    #[test]
    fn compare_and_swap_follows_druid() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::open(&dir.path().join("m.db")).unwrap();
        let start = offsets(&[("a", "1")], &[]);
        let end = offsets(&[("a", "5")], &[]);
        assert_eq!(
            store
                .publish("ds", &[segment("s1")], Some((&start, &end)))
                .unwrap(),
            PublishOutcome::Published
        );
        // The same start again: a mismatch, but the segments exist, so success.
        assert_eq!(
            store
                .publish("ds", &[segment("s1")], Some((&start, &end)))
                .unwrap(),
            PublishOutcome::AlreadyPublished
        );
        // Same start, new segments: refused with a clear message.
        let err = store
            .publish("ds", &[segment("s2")], Some((&start, &end)))
            .unwrap_err();
        assert!(
            err.to_string().contains("do not match the task's start"),
            "{err}"
        );
        // Continuing exclusively from the stored end: accepted.
        let next_start = offsets(&[("a", "5")], &["a"]);
        let next_end = offsets(&[("a", "9")], &[]);
        store
            .publish("ds", &[segment("s3")], Some((&next_start, &next_end)))
            .unwrap();
        let stored = store.committed_offsets("ds").unwrap().unwrap();
        assert_eq!(stored.offsets["a"], SequenceNumber::parse("9").unwrap());
        assert_eq!(store.used_segments("ds").unwrap().len(), 2);
    }

    #[test]
    fn allocation_is_stable_per_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::open(&dir.path().join("m.db")).unwrap();
        let a = store
            .allocate_sequence("ds", "seq_0", &[(0, 10)], "v1")
            .unwrap();
        let again = store
            .allocate_sequence("ds", "seq_0", &[(0, 10)], "v2")
            .unwrap();
        assert_eq!(a, again);
        let b = store
            .allocate_sequence("ds", "seq_1", &[(0, 10)], "v2")
            .unwrap();
        assert_eq!(b[0].version, "v1");
        assert_eq!(b[0].partition_num, 1);
        assert_eq!(
            a[0].id(),
            "ds_1970-01-01T00:00:00.000Z_1970-01-01T00:00:00.010Z_v1"
        );
        assert!(b[0].id().ends_with("_1"));
        // Two partitions of one interval in one sequence: the second names the first.
        let split = store
            .allocate_sequence("ds", "seq_2", &[(20, 30), (20, 30)], "v3")
            .unwrap();
        assert_eq!((split[0].partition_num, split[1].partition_num), (0, 1));
        // A chain allocated before and now one longer: its ids come back,
        // the new one follows the chunk's highest partition.
        let first = store
            .allocate_sequence("ds", "seq_3", &[(20, 30), (20, 30)], "v3")
            .unwrap();
        let longer = store
            .allocate_sequence("ds", "seq_3", &[(20, 30), (20, 30), (20, 30)], "v3")
            .unwrap();
        assert_eq!(longer[..2], first[..]);
        let numbers: Vec<u32> = longer.iter().map(|s| s.partition_num).collect();
        assert_eq!(numbers, [2, 3, 4]);
    }
}
