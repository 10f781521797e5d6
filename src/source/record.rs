//! `record`: capture a live stream into the dump format, every shard
//! (closed parents and their children too), so a recording replays into
//! the segments the live run made.

use super::SequenceNumber;
use super::dump::{DumpLineOut, ShardInfo, ShardList};
use super::kinesis::{KinesisConfig, connect, list_shards, shard_is_closed};
use super::kinesis_api::{IteratorStart, KinesisApi};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
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
    out: BufWriter<std::fs::File>,
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
    let out = BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
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
/// written at the end, a shard marked closed only if it was read to its end.
pub fn record(opts: &RecordOptions) -> Result<Vec<(String, u64)>> {
    let conn = connect(&opts.config)?;
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
            let page = conn
                .records(&it, opts.config.records_per_fetch)
                .map_err(|e| anyhow!("GetRecords {}: {e}", c.info.shard_id))?;
            let empty = page.records.is_empty();
            got_any |= !empty;
            for r in page.records {
                let seq = SequenceNumber::parse(&r.sequence_number)
                    .map_err(|e| anyhow!("{}: {e}", c.info.shard_id))?;
                if c.last.as_ref().is_some_and(|l| &seq <= l) {
                    bail!("{}: sequence numbers went backwards", c.info.shard_id);
                }
                let arrival = r.arrival.map(|t| t.as_secs_f64()).unwrap_or(0.0);
                let data = base64::engine::general_purpose::STANDARD.encode(&r.data);
                line.clear();
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
                c.out.write_all(&line)?;
                c.last = Some(seq);
                c.count += 1;
            }
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
        }
        if active == 0 {
            break;
        }
        if !got_any && !closed_now {
            // Nothing new on any shard: ask again shortly.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let mut counts = Vec::new();
    let mut infos = Vec::new();
    for mut c in captures {
        c.out.flush()?;
        if !c.ended {
            // Not read to its end here: the replay treats it as open.
            c.info.sequence_number_range.ending_sequence_number = None;
        }
        counts.push((c.info.shard_id.clone(), c.count));
        infos.push(c.info);
    }
    let list = ShardList {
        stream_name: stream.clone(),
        shards: infos,
    };
    std::fs::write(
        opts.out.join("shards.json"),
        serde_json::to_vec_pretty(&list)?,
    )?;
    Ok(counts)
}
