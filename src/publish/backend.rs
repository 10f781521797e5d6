//! The statements the metadata commit needs, once per kind of store: the
//! embedded SQLite file and a Druid cluster's PostgreSQL. The rules
//! (allocation, compare-and-swap) live in `super` and see only this trait.

use anyhow::Result;

/// One `druid_pendingSegments` row.
pub struct PendingRow<'a> {
    pub id: &'a str,
    pub data_source: &'a str,
    pub created_date: &'a str,
    pub start: &'a str,
    pub end: &'a str,
    pub sequence_name: &'a str,
    pub sequence_prev_id: &'a str,
    pub sequence_name_prev_id_sha1: &'a str,
    pub payload: &'a [u8],
}

/// One `druid_segments` row (published used, partitioned).
pub struct SegmentRow<'a> {
    pub id: &'a str,
    pub data_source: &'a str,
    pub created_date: &'a str,
    pub start: &'a str,
    pub end: &'a str,
    pub version: &'a str,
    pub payload: &'a [u8],
}

/// A transaction on Druid's metadata tables.
pub trait MetaTx {
    /// The payload of the pending segment allocated for this key, if any.
    fn pending_by_key(&mut self, key_sha1: &str) -> Result<Option<Vec<u8>>>;
    /// (version, payload) of the used segments of one time chunk.
    fn used_in_chunk(&mut self, ds: &str, start: &str, end: &str)
    -> Result<Vec<(String, Vec<u8>)>>;
    /// Payloads of the pending segments of one time chunk.
    fn pending_in_chunk(&mut self, ds: &str, start: &str, end: &str) -> Result<Vec<Vec<u8>>>;
    /// Whether a segment with this id is published and used.
    fn is_used(&mut self, id: &str) -> Result<bool>;
    /// Payloads of a data source's used segments, by id.
    fn used_payloads(&mut self, ds: &str) -> Result<Vec<Vec<u8>>>;
    fn insert_pending(&mut self, row: &PendingRow) -> Result<()>;
    /// The data source's committed metadata payload.
    fn datasource_metadata(&mut self, ds: &str) -> Result<Option<Vec<u8>>>;
    fn insert_datasource(
        &mut self,
        ds: &str,
        created: &str,
        payload: &[u8],
        sha1: &str,
    ) -> Result<()>;
    /// Replace the payload only if its SHA-1 is still `old_sha1`; the
    /// number of rows changed.
    fn swap_datasource(
        &mut self,
        ds: &str,
        payload: &[u8],
        sha1: &str,
        old_sha1: &str,
    ) -> Result<u64>;
    /// Insert a used segment unless one with its id exists.
    fn insert_segment(&mut self, row: &SegmentRow) -> Result<()>;
    fn commit(self: Box<Self>) -> Result<()>;
}

/// The names of Druid's tables: `druid.metadata.storage.tables.base`
/// (default `druid`) with Druid's suffixes, each overridable by its own
/// property, as Druid's MetadataStorageTablesConfig reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub segments: String,
    pub pending_segments: String,
    pub data_source: String,
}

impl Tables {
    pub fn druid_default() -> Tables {
        Tables {
            segments: "druid_segments".into(),
            pending_segments: "druid_pendingSegments".into(),
            data_source: "druid_dataSource".into(),
        }
    }

    pub fn from_properties(props: &std::collections::BTreeMap<String, String>) -> Result<Tables> {
        const PREFIX: &str = "druid.metadata.storage.tables.";
        let get = |k: &str| {
            props
                .get(&format!("{PREFIX}{k}"))
                .map(|v| v.trim().to_string())
        };
        let base = get("base").unwrap_or_else(|| "druid".into());
        let name = |key: &str, suffix: &str| -> Result<String> {
            let n = get(key).unwrap_or_else(|| format!("{base}_{suffix}"));
            // Spliced into SQL: plain identifiers only.
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                anyhow::bail!(
                    "{PREFIX}{key} (or .base): {n:?} is not a plain table name (letters, digits, _)"
                );
            }
            Ok(n)
        };
        Ok(Tables {
            segments: name("segments", "segments")?,
            pending_segments: name("pendingSegments", "pendingSegments")?,
            data_source: name("dataSource", "dataSource")?,
        })
    }
}
