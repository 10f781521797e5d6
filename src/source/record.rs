//! `record`: capture a live stream into the dump format, every shard
//! (closed parents and their children too), so a recording replays into
//! the segments the live run made. shards.json is rewritten (atomically)
//! whenever what it says changes, and each GetRecords page goes to its
//! shard's file in one write, so a recording stopped or failed part way
//! is still a dump that replays what was captured. Throttled and transient
//! failures are retried within fetchSequenceNumberTimeout.

use super::SequenceNumber;
use super::dump::{DumpLineOut, ShardInfo, ShardList};
use super::kinesis::{KinesisConfig, connect_control, list_shards, shard_is_closed};
use super::kinesis_api::{IteratorStart, KinesisApi, KinesisError};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    TrimHorizon,
    Latest,
}

#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// Stop each shard once a read returns nothing new and the shard is
    /// 0 ms behind (or closed and read to its end).
    CaughtUp,
    /// Stop after this long.
    For(Duration),
}

pub struct RecordOptions {
    pub config: KinesisConfig,
    pub out: PathBuf,
    pub from: From,
    pub until: Until,
}

/// One shard being captured.
struct Capture {
    info: ShardInfo,
    out: std::fs::File,
    iterator: Option<String>,
    last: Option<SequenceNumber>,
    count: u64,
    /// Read to its end: the shard is closed and every record is here.
    ended: bool,
}

fn start_capture(
    api: &impl KinesisApi,
    opts: &RecordOptions,
    info: ShardInfo,
    start: &IteratorStart,
) -> Result<Capture> {
    let path = opts.out.join(format!("{}.jsonl", info.shard_id));
    let out =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let iterator = api
        .shard_iterator(&opts.config.stream, &info.shard_id, start)
        .map_err(|e| anyhow!("GetShardIterator {}: {e}", info.shard_id))?;
    Ok(Capture {
        ended: iterator.is_none(),
        info,
        out,
        iterator,
        last: None,
        count: 0,
    })
}

/// Per shard: records written. Children of shards that close while
/// recording are captured too (from their first record); shards.json is
/// kept up to date as they are found, a shard marked closed only once it
/// was read to its end.
pub fn record(opts: &RecordOptions) -> Result<Vec<(String, u64)>> {
    let conn = connect_control(&opts.config)?;
    let stream = &opts.config.stream;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let shards = list_shards(&conn, stream)?;
    if shards.is_empty() {
        bail!("stream {stream} has no shards");
    }
    let start = match opts.from {
        From::TrimHorizon => IteratorStart::TrimHorizon,
        From::Latest => IteratorStart::Latest,
    };
    let mut captures = Vec::new();
    for info in shards {
        captures.push(start_capture(&conn, opts, info, &start)?);
    }
    write_shards_json(&opts.out, stream, &captures)?;

    // Shards are read in turn, one GetRecords each, so `--for` covers all.
    let started = Instant::now();
    let mut line = Vec::new();
    loop {
        if let Until::For(d) = opts.until
            && started.elapsed() >= d
        {
            break;
        }
        let mut active = 0;
        let mut got_any = false;
        let mut closed_now = false;
        for c in captures.iter_mut() {
            let Some(it) = c.iterator.take() else {
                continue;
            };
            active += 1;
            let page = match conn.records(&it, opts.config.records_per_fetch) {
                Ok(page) => page,
                Err(KinesisError::ExpiredIterator(_)) => {
                    // A new iterator after the last record written.
                    let from = c
                        .last
                        .as_ref()
                        .map_or(start.clone(), |l| IteratorStart::After(l.to_string()));
                    c.iterator = conn
                        .shard_iterator(stream, &c.info.shard_id, &from)
                        .map_err(|e| anyhow!("GetShardIterator {}: {e}", c.info.shard_id))?;
                    c.ended = c.iterator.is_none();
                    continue;
                }
                Err(e) => bail!("GetRecords {}: {e}", c.info.shard_id),
            };
            let empty = page.records.is_empty();
            got_any |= !empty;
            line.clear();
            for r in page.records {
                let seq = SequenceNumber::parse(&r.sequence_number)
                    .map_err(|e| anyhow!("{}: {e}", c.info.shard_id))?;
                if c.last.as_ref().is_some_and(|l| &seq <= l) {
                    bail!("{}: sequence numbers went backwards", c.info.shard_id);
                }
                let arrival = r.arrival.map(|t| t.as_secs_f64()).unwrap_or(0.0);
                let data = base64::engine::general_purpose::STANDARD.encode(&r.data);
                serde_json::to_writer(
                    &mut line,
                    &DumpLineOut {
                        sequence_number: &r.sequence_number,
                        approximate_arrival_timestamp: arrival,
                        data: &data,
                        partition_key: r.partition_key.as_deref().unwrap_or(""),
                    },
                )?;
                line.push(b'\n');
                c.last = Some(seq);
                c.count += 1;
            }
            // The page in one write: a recording stopped here ends at a
            // whole record.
            c.out
                .write_all(&line)
                .with_context(|| format!("writing {}.jsonl", c.info.shard_id))?;
            let caught_up = empty && page.millis_behind.unwrap_or(0) == 0;
            c.iterator = page.next_iterator;
            if c.iterator.is_none() {
                c.ended = true;
                closed_now = true;
            } else if matches!(opts.until, Until::CaughtUp)
                && caught_up
                && !shard_is_closed(&conn, stream, &c.info.shard_id)?
            {
                c.iterator = None;
            }
            if c.iterator.is_none() {
                eprintln!("{}: {} records, done", c.info.shard_id, c.count);
            }
        }
        if closed_now {
            // A shard closed: capture its children, from their start.
            for info in list_shards(&conn, stream)? {
                match captures
                    .iter_mut()
                    .find(|c| c.info.shard_id == info.shard_id)
                {
                    Some(c) => c.info = info,
                    None => {
                        eprintln!("{}: new shard, capturing it", info.shard_id);
                        captures.push(start_capture(
                            &conn,
                            opts,
                            info,
                            &IteratorStart::TrimHorizon,
                        )?);
                        active += 1;
                    }
                }
            }
            write_shards_json(&opts.out, stream, &captures)?;
        }
        if active == 0 {
            break;
        }
        if !got_any && !closed_now {
            // Nothing new on any shard: ask again shortly.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    write_shards_json(&opts.out, stream, &captures)?;
    Ok(captures
        .iter()
        .map(|c| (c.info.shard_id.clone(), c.count))
        .collect())
}

/// shards.json as the captures stand, replacing the old one at once (a
/// reader never sees half a file). A shard not read to its end here is
/// written open: the replay treats it so.
fn write_shards_json(dir: &Path, stream: &str, captures: &[Capture]) -> Result<()> {
    let list = ShardList {
        stream_name: stream.to_string(),
        shards: captures
            .iter()
            .map(|c| {
                let mut info = c.info.clone();
                if !c.ended {
                    info.sequence_number_range.ending_sequence_number = None;
                }
                info
            })
            .collect(),
    };
    let tmp = dir.join("shards.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&list)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("shards.json"))
        .with_context(|| format!("writing {}", dir.join("shards.json").display()))?;
    Ok(())
}
