//! Stopping and restoring a task (Druid's `restoreTasksOnRestart`): a task
//! stopped on request persists every row it holds and writes
//! `persist/restore.json` beside the spills, naming the sequence it was
//! building, where each shard stands, the row counts so far and the
//! spills. The next run of the same task in the same base directory reads
//! it, takes the spills as they are and reads on after the saved offsets:
//! no persisted row is read again. Druid keeps the same state in
//! `sequences.json` and the appenderator's commit metadata; this file is
//! our own shape of it.

use super::*;
use crate::persist::Spill;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const FILE: &str = "restore.json";
const VERSION: u32 = 1;

/// Everything a stopped task needs to go on where it stopped.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SavedRun {
    version: u32,
    task_id: String,
    /// Which of the task's sequences (from `context.checkpoints`) was being
    /// read; handoffs after it add sequences of their own.
    pub span_index: usize,
    /// The persist directory of the sequence, under `persist/`.
    pub persist_dir: String,
    pub sequence: SavedSequence,
    pub shards: Vec<SavedShard>,
    pub records: u64,
    pub row_stats: RowStats,
    /// Newest first, as the report lists them.
    pub saved_parse_exceptions: Vec<String>,
    /// Dimensions discovered so far, in the order first seen.
    pub discovered_dimensions: Vec<String>,
    pub persists: usize,
    pub spills: Vec<SavedSpill>,
}

/// The sequence being built, in the names of Druid's SequenceMetadata.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SavedSequence {
    sequence_name: String,
    start_offsets: BTreeMap<String, String>,
    exclusive_start_partitions: Vec<String>,
    end_offsets: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SavedShard {
    shard_id: String,
    parents: Vec<String>,
    start: String,
    exclusive: bool,
    end: String,
    last_read: Option<String>,
    records: u64,
    first_record: Option<u64>,
    last_record: Option<u64>,
    reached_end_of_shard: bool,
    closed: bool,
    finished: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SavedSpill {
    interval: (i64, i64),
    /// Relative to `persist/`.
    dir: String,
    rows: usize,
}

/// The spills a restored sequence starts with.
#[derive(Debug, Default)]
pub(super) struct RestoredSpills {
    pub spills: Vec<Spill>,
    pub persists: usize,
    pub discovered: Vec<String>,
}

fn sequence_number(text: &str, what: &str) -> Result<SequenceNumber> {
    SequenceNumber::parse(text).map_err(|e| anyhow!("{FILE}: {what}: {e}"))
}

fn offsets(map: &BTreeMap<String, SequenceNumber>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

/// What the stopped run holds, to be written by `save`.
pub(super) struct StopState<'a> {
    pub span_index: usize,
    pub persist_dir: &'a Path,
    pub span: &'a SequenceSpan,
    pub reading: &'a ingest::Reading,
    pub discovered: Vec<String>,
    pub persisted: &'a PersistResult,
    pub persists: usize,
}

impl SavedRun {
    pub fn of(
        task_id: &str,
        persist_root: &Path,
        state: &StopState,
        records: u64,
        row_stats: RowStats,
        saved_parse_exceptions: Vec<String>,
    ) -> Result<SavedRun> {
        let relative = |p: &Path| -> Result<String> {
            Ok(p.strip_prefix(persist_root)
                .with_context(|| {
                    format!("{} is not under {}", p.display(), persist_root.display())
                })?
                .to_string_lossy()
                .into_owned())
        };
        Ok(SavedRun {
            version: VERSION,
            task_id: task_id.to_string(),
            span_index: state.span_index,
            persist_dir: relative(state.persist_dir)?,
            sequence: SavedSequence {
                sequence_name: state.span.name.clone(),
                start_offsets: offsets(&state.span.start),
                exclusive_start_partitions: state.span.exclusive.clone(),
                end_offsets: offsets(&state.span.end),
            },
            shards: state
                .reading
                .shards
                .iter()
                .map(|s| SavedShard {
                    shard_id: s.assignment.shard_id.clone(),
                    parents: s.parents.clone(),
                    start: s.assignment.start.to_string(),
                    exclusive: s.assignment.exclusive,
                    end: s.assignment.end.to_string(),
                    last_read: s.last_read.as_ref().map(|l| l.to_string()),
                    records: s.records,
                    first_record: s.first_record,
                    last_record: s.last_record,
                    reached_end_of_shard: s.reached_end_of_shard,
                    closed: s.closed,
                    finished: s.finished,
                })
                .collect(),
            records,
            row_stats,
            saved_parse_exceptions,
            discovered_dimensions: state.discovered.clone(),
            persists: state.persists,
            spills: state
                .persisted
                .spills
                .iter()
                .map(|s| {
                    Ok(SavedSpill {
                        interval: s.interval,
                        dir: relative(&s.dir)?,
                        rows: s.rows,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    /// The sequence as the task's spans describe one.
    pub fn span(&self) -> Result<SequenceSpan> {
        let map = |m: &BTreeMap<String, String>, what: &str| -> Result<_> {
            m.iter()
                .map(|(k, v)| Ok((k.clone(), sequence_number(v, &format!("{what} of {k}"))?)))
                .collect::<Result<BTreeMap<_, _>>>()
        };
        Ok(SequenceSpan {
            name: self.sequence.sequence_name.clone(),
            start: map(&self.sequence.start_offsets, "startOffsets")?,
            exclusive: self.sequence.exclusive_start_partitions.clone(),
            end: map(&self.sequence.end_offsets, "endOffsets")?,
        })
    }

    /// Each shard as it stood: reading resumes after its last record read.
    pub fn shard_states(&self) -> Result<Vec<ShardState>> {
        self.shards
            .iter()
            .map(|s| {
                let what = |field: &str| format!("shard {} {field}", s.shard_id);
                let last_read = s
                    .last_read
                    .as_deref()
                    .map(|l| sequence_number(l, &what("lastRead")))
                    .transpose()?;
                let (start, exclusive) = match &last_read {
                    Some(last) => (last.clone(), true),
                    None => (sequence_number(&s.start, &what("start"))?, s.exclusive),
                };
                let mut state = ShardState::new(
                    ShardAssignment {
                        shard_id: s.shard_id.clone(),
                        start,
                        exclusive,
                        end: sequence_number(&s.end, &what("end"))?,
                    },
                    s.parents.clone(),
                );
                state.last_read = last_read;
                state.records = s.records;
                state.first_record = s.first_record;
                state.last_record = s.last_record;
                state.reached_end_of_shard = s.reached_end_of_shard;
                state.closed = s.closed;
                state.finished = s.finished;
                Ok(state)
            })
            .collect()
    }

    pub fn spills(&self, persist_root: &Path) -> RestoredSpills {
        RestoredSpills {
            spills: self
                .spills
                .iter()
                .map(|s| Spill {
                    interval: s.interval,
                    dir: persist_root.join(&s.dir),
                    rows: s.rows,
                })
                .collect(),
            persists: self.persists,
            discovered: self.discovered_dimensions.clone(),
        }
    }
}

/// The saved state of a stopped run of this task, if there is one. Without
/// one, whatever an interrupted run left under `persist/` (a crash, a kill)
/// is removed: its offsets were never saved, so its rows are read again.
pub(super) fn take(persist_root: &Path, task_id: &str) -> Result<Option<SavedRun>> {
    let file = persist_root.join(FILE);
    let saved = match std::fs::read(&file) {
        Ok(bytes) => {
            let saved: SavedRun = serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {} to restore the task", file.display()))?;
            if saved.version != VERSION || saved.task_id != task_id {
                bail!(
                    "{}: saved by another task or version ({} v{}); remove {} to start afresh",
                    file.display(),
                    saved.task_id,
                    saved.version,
                    persist_root.display()
                );
            }
            Some(saved)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    if saved.is_none() && persist_root.exists() {
        std::fs::remove_dir_all(persist_root)
            .with_context(|| format!("removing {}", persist_root.display()))?;
    }
    Ok(saved)
}

/// Write the saved state once the spills it names are on disk: the spills
/// and their directories are fsynced first, then the file is written to a
/// temporary name, fsynced and renamed, so a crash leaves either no file
/// (the rows are read again) or a whole one.
pub(super) fn save(persist_root: &Path, saved: &SavedRun, spills: &[Spill]) -> Result<()> {
    let mut dirs = std::collections::BTreeSet::new();
    for spill in spills {
        crate::storage::fsync_dir_files(&spill.dir)?;
        dirs.insert(spill.dir.clone());
        let mut parent = spill.dir.parent();
        while let Some(p) = parent {
            dirs.insert(p.to_path_buf());
            if p == persist_root {
                break;
            }
            parent = p.parent();
        }
    }
    std::fs::create_dir_all(persist_root)
        .with_context(|| format!("creating {}", persist_root.display()))?;
    let tmp = persist_root.join(format!("{FILE}.tmp"));
    let file = persist_root.join(FILE);
    {
        use std::io::Write;
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(saved)?)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &file).with_context(|| format!("renaming {}", tmp.display()))?;
    dirs.insert(persist_root.to_path_buf());
    dirs.iter().try_for_each(|d| crate::storage::fsync(d))
}

/// The saved state is spent once its sequence is published.
pub(super) fn forget(persist_root: &Path) -> Result<()> {
    match std::fs::remove_file(persist_root.join(FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", persist_root.join(FILE).display()))
        }
        _ => Ok(()),
    }
}
