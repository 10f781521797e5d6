//! `record`: capture a live stream into the dump format, every shard
//! (closed parents and their children too), so a recording replays into
//! the segments the live run made.

use super::SequenceNumber;
use super::dump::{DumpLineOut, HashKeyRange, SequenceNumberRange, ShardInfo, ShardList};
use super::kinesis::{KinesisConfig, connect};
use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_kinesis::types::ShardIteratorType;
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

/// Per shard: records written.
pub fn record(opts: &RecordOptions) -> Result<Vec<(String, u64)>> {
    let conn = connect(&opts.config)?;
    let stream = &opts.config.stream;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let listed = conn
        .runtime
        .block_on(conn.client.list_shards().stream_name(stream).send())
        .map_err(|e| {
            anyhow!(
                "ListShards {stream}: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(&e)
            )
        })?;
    let shards: Vec<ShardInfo> = listed
        .shards
        .unwrap_or_default()
        .into_iter()
        .map(|s| ShardInfo {
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
        })
        .collect();
    if shards.is_empty() {
        bail!("stream {stream} has no shards");
    }
    let list = ShardList {
        stream_name: stream.clone(),
        shards: shards.clone(),
    };
    std::fs::write(
        opts.out.join("shards.json"),
        serde_json::to_vec_pretty(&list)?,
    )?;

    // Shards are read in turn, one GetRecords each, so `--for` covers all.
    struct Capture {
        shard_id: String,
        out: BufWriter<std::fs::File>,
        iterator: Option<String>,
        last: Option<SequenceNumber>,
        count: u64,
    }
    let mut captures = Vec::new();
    for shard in &shards {
        let path = opts.out.join(format!("{}.jsonl", shard.shard_id));
        let out = BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        let kind = match opts.from {
            From::TrimHorizon => ShardIteratorType::TrimHorizon,
            From::Latest => ShardIteratorType::Latest,
        };
        let iterator = conn
            .runtime
            .block_on(
                conn.client
                    .get_shard_iterator()
                    .stream_name(stream)
                    .shard_id(&shard.shard_id)
                    .shard_iterator_type(kind)
                    .send(),
            )
            .map_err(|e| {
                anyhow!(
                    "GetShardIterator {}: {}",
                    shard.shard_id,
                    aws_sdk_kinesis::error::DisplayErrorContext(&e)
                )
            })?
            .shard_iterator;
        captures.push(Capture {
            shard_id: shard.shard_id.clone(),
            out,
            iterator,
            last: None,
            count: 0,
        });
    }
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
        for c in captures.iter_mut() {
            let Some(it) = c.iterator.take() else {
                continue;
            };
            active += 1;
            let page = conn
                .runtime
                .block_on(
                    conn.client
                        .get_records()
                        .shard_iterator(it)
                        .limit(opts.config.records_per_fetch)
                        .send(),
                )
                .map_err(|e| {
                    anyhow!(
                        "GetRecords {}: {}",
                        c.shard_id,
                        aws_sdk_kinesis::error::DisplayErrorContext(&e)
                    )
                })?;
            let empty = page.records.is_empty();
            got_any |= !empty;
            for r in page.records {
                let seq = SequenceNumber::parse(&r.sequence_number)
                    .map_err(|e| anyhow!("{}: {e}", c.shard_id))?;
                if c.last.as_ref().is_some_and(|l| &seq <= l) {
                    bail!("{}: sequence numbers went backwards", c.shard_id);
                }
                let arrival = r
                    .approximate_arrival_timestamp
                    .map(|t| t.as_secs_f64())
                    .unwrap_or(0.0);
                let data = base64::engine::general_purpose::STANDARD.encode(r.data.as_ref());
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
            let caught_up = empty && page.millis_behind_latest.unwrap_or(0) == 0;
            c.iterator = page.next_shard_iterator;
            if matches!(opts.until, Until::CaughtUp) && caught_up {
                c.iterator = None;
            }
            if c.iterator.is_none() {
                eprintln!("{}: {} records, done", c.shard_id, c.count);
            }
        }
        if active == 0 {
            break;
        }
        if !got_any {
            // Nothing new on any shard: ask again shortly.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let mut counts = Vec::new();
    for mut c in captures {
        c.out.flush()?;
        counts.push((c.shard_id, c.count));
    }
    Ok(counts)
}
