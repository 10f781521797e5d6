//! Freezing the index into segments: a sink's rows sorted by time and
//! dimension values (dictionary ranks in Java string order), dictionaries
//! cut down to the values the sink uses, metrics gathered in row order.
//! Intermediate persists run on their own thread (`Persister`); `merge`
//! turns persists into final partitions.

pub mod merge;

use crate::index::{IncrementalIndex, MULTI_VALUE_BIT, MetricValues, RowBits, Sink};
use crate::java::java_cmp;
use crate::segment::complex::{ComplexKind, pair_cell};
use crate::segment::writer::write_segment_dir;
use crate::segment::{MetricColumn, NumericDimension, NumericValues, SegmentData, StringColumn};
use crate::spec::{NumType, ResolvedIndexSpec};
use anyhow::{Context, Result, anyhow};
use hashbrown::HashMap;
use roaring::RoaringBitmap;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One interval of one intermediate persist, written as a v9 segment
/// directory with indexSpecForIntermediatePersists.
#[derive(Debug, Clone)]
pub struct Spill {
    pub interval: (i64, i64),
    pub dir: PathBuf,
    pub rows: usize,
}

/// What the persist thread did.
#[derive(Debug, Default)]
pub struct PersistResult {
    pub spills: Vec<Spill>,
    pub persists: usize,
    pub busy: Duration,
}

/// The persist thread. A frozen index handed to `submit` is written while
/// ingestion goes on; `submit` blocks only when `maxPendingPersists` frozen
/// indexes already wait behind the one being written (Druid's rule: 0
/// means one persist may run, none may queue).
pub struct Persister {
    jobs: Option<crossbeam_channel::Sender<Box<(IncrementalIndex, PathBuf)>>>,
    worker: Option<JoinHandle<Result<PersistResult>>>,
    /// Persists finished so far and the nanoseconds they took, readable
    /// while the thread runs (the task's metrics).
    done: std::sync::Arc<[std::sync::atomic::AtomicU64; 2]>,
}

impl Persister {
    pub fn start(
        spec: ResolvedIndexSpec,
        max_pending: usize,
        metadata: serde_json::Value,
    ) -> Persister {
        // A bounded channel allocates its slots up front; every queued
        // persist holds a whole in-memory index, so memory runs out long
        // before this many could wait.
        const MOST_QUEUED: usize = 1 << 10;
        let (tx, rx) = crossbeam_channel::bounded::<Box<(IncrementalIndex, PathBuf)>>(
            max_pending.min(MOST_QUEUED),
        );
        let done: std::sync::Arc<[std::sync::atomic::AtomicU64; 2]> = Default::default();
        let progress = done.clone();
        let worker = std::thread::Builder::new()
            .name("persist".into())
            .spawn(move || {
                let mut result = PersistResult::default();
                for job in rx {
                    let (index, dir) = *job;
                    let t0 = Instant::now();
                    let orders = dimension_orders(&index);
                    for sink in index.sinks.iter().filter(|s| !s.rows.is_empty()) {
                        let data = sink_to_segment(&index, &orders, sink, metadata.clone());
                        let spill_dir =
                            dir.join(format!("{}_{}", sink.interval_start, sink.interval_end));
                        write_segment_dir(&spill_dir, &data, &spec).with_context(|| {
                            format!("intermediate persist to {}", spill_dir.display())
                        })?;
                        result.spills.push(Spill {
                            interval: (sink.interval_start, sink.interval_end),
                            dir: spill_dir,
                            rows: data.num_rows(),
                        });
                    }
                    drop(index);
                    result.persists += 1;
                    result.busy += t0.elapsed();
                    let relaxed = std::sync::atomic::Ordering::Relaxed;
                    progress[0].fetch_add(1, relaxed);
                    progress[1].fetch_add(t0.elapsed().as_nanos() as u64, relaxed);
                }
                Ok(result)
            })
            .expect("spawning the persist thread");
        Persister {
            jobs: Some(tx),
            worker: Some(worker),
            done,
        }
    }

    /// The persists finished so far and the time they took.
    pub fn done(&self) -> (u64, Duration) {
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        (
            self.done[0].load(relaxed),
            Duration::from_nanos(self.done[1].load(relaxed)),
        )
    }

    /// Queue a frozen index to be written under `dir`.
    pub fn submit(&mut self, index: IncrementalIndex, dir: PathBuf) -> Result<()> {
        let sent = self
            .jobs
            .as_ref()
            .map(|tx| tx.send(Box::new((index, dir))).is_ok());
        match sent {
            Some(true) => Ok(()),
            // The worker stopped: its error says why.
            _ => Err(self
                .join()
                .err()
                .unwrap_or_else(|| anyhow!("the persist thread stopped"))),
        }
    }

    /// Wait for every queued persist; the spills in the order written.
    pub fn finish(mut self) -> Result<PersistResult> {
        self.join()
    }

    fn join(&mut self) -> Result<PersistResult> {
        self.jobs = None;
        match self.worker.take() {
            Some(w) => w
                .join()
                .map_err(|_| anyhow!("the persist thread panicked"))?,
            None => Err(anyhow!("the persist thread already stopped")),
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Every dimension's dictionary ids in segment order: strings in Java
/// order, numbers in numeric order, null first. Sorted once per index, so
/// that each sink keeps the ids it uses in this order instead of sorting
/// them again (callgrind: those per-sink string sorts were ~1% of a
/// 366-segment flights replay).
pub fn dimension_orders(index: &IncrementalIndex) -> Vec<Vec<u32>> {
    index
        .dimensions
        .iter()
        .map(|dim| match &dim.numeric {
            Some(n) => {
                let mut ids: Vec<u32> = (0..n.values.len() as u32).collect();
                ids.sort_by_key(|&id| (id != 0, order_bits(n.ty, n.values[id as usize])));
                ids
            }
            None => {
                let mut ids: Vec<u32> = (0..dim.dictionary.len() as u32).collect();
                ids.sort_by(
                    |&a, &b| match (dim.dictionary.value(a), dim.dictionary.value(b)) {
                        (None, None) => std::cmp::Ordering::Equal,
                        (None, _) => std::cmp::Ordering::Less,
                        (_, None) => std::cmp::Ordering::Greater,
                        (Some(x), Some(y)) => java_cmp(x, y),
                    },
                );
                ids
            }
        })
        .collect()
}

/// Build the segment for one sink; `orders` is `dimension_orders(index)`.
pub fn sink_to_segment(
    index: &IncrementalIndex,
    orders: &[Vec<u32>],
    sink: &Sink,
    metadata: serde_json::Value,
) -> SegmentData {
    let rows: &[u32] = &sink.rows;
    let dims = &index.dimensions;
    let width = dims.len();
    // Each row's key ids side by side (0 where its key ends early), read
    // once here: three passes below looked each one up in the index's
    // arena (~9 lookups a row, ~2% of a csv replay's instructions).
    let mut key_table = vec![0u32; rows.len() * width];
    for (row_ids, &r) in key_table.chunks_exact_mut(width.max(1)).zip(rows) {
        let key = index.key(r as usize);
        let n = key.len().min(width);
        row_ids[..n].copy_from_slice(&key[..n]);
    }
    let key_at = |p: usize, d: usize| key_table[p * width + d];

    // Per dimension: which ids this sink uses, their sorted order, and the
    // rank of each id in that order (ranks give the row order).
    let mut ranks: Vec<Vec<u32>> = Vec::with_capacity(dims.len());
    let mut used_sorted: Vec<Vec<u32>> = Vec::with_capacity(dims.len());
    // Multi-value dimensions: each key's row-order rank.
    let mut key_ranks: Vec<Option<HashMap<u32, u32>>> = Vec::with_capacity(dims.len());
    for (d, dim) in dims.iter().enumerate() {
        let cardinality = match &dim.numeric {
            Some(n) => n.values.len(),
            None => dim.dictionary.len(),
        };
        let mut used = vec![false; cardinality];
        let mut has_lists = false;
        for p in 0..rows.len() {
            let k = key_at(p, d);
            has_lists |= k & MULTI_VALUE_BIT != 0;
            for &v in dim.lists.values(&k) {
                used[v as usize] = true;
            }
        }
        let ids: Vec<u32> = orders[d]
            .iter()
            .copied()
            .filter(|&i| used[i as usize])
            .collect();
        let mut rank = vec![u32::MAX; used.len()];
        for (pos, &id) in ids.iter().enumerate() {
            rank[id as usize] = pos as u32;
        }
        if has_lists {
            // Row order of a multi-value dimension: value by value, a
            // shorter list first when one is a prefix of the other (Druid's
            // StringDimensionHandler comparator).
            let mut keys: Vec<u32> = (0..rows.len()).map(|p| key_at(p, d)).collect();
            keys.sort_unstable();
            keys.dedup();
            keys.sort_by_cached_key(|k| -> Vec<u32> {
                dim.lists
                    .values(k)
                    .iter()
                    .map(|v| rank[*v as usize])
                    .collect()
            });
            let mut key_rank: HashMap<u32, u32> = HashMap::with_capacity(keys.len());
            for (pos, k) in keys.iter().enumerate() {
                key_rank.insert(*k, pos as u32);
            }
            key_ranks.push(Some(key_rank));
        } else {
            key_ranks.push(None);
        }
        ranks.push(rank);
        used_sorted.push(ids);
    }

    // Rows by their position in the sink, in segment order.
    let positions = row_order(index, rows, &key_table, &ranks, &key_ranks);
    let order: Vec<u32> = positions.iter().map(|&p| rows[p as usize]).collect();

    let times = order.iter().map(|&r| index.times[r as usize]).collect();
    let mut dimensions = Vec::new();
    let mut numeric_dimensions = Vec::new();
    for (d, dim) in dims.iter().enumerate() {
        let ids = &used_sorted[d];
        // A dimension with no value in this segment is not stored.
        if ids.iter().all(|&id| id == 0) {
            continue;
        }
        if let Some(n) = &dim.numeric {
            let row_ids = positions.iter().map(|&p| key_at(p as usize, d));
            numeric_dimensions.push(NumericDimension {
                position: dimensions.len() + numeric_dimensions.len(),
                column: numeric_column(
                    &dim.name,
                    n.ty,
                    row_ids.map(|id| (id != 0).then(|| n.values[id as usize])),
                ),
            });
            continue;
        }
        let dictionary = ids
            .iter()
            .map(|&id| dim.dictionary.value(id).map(str::to_string))
            .collect();
        if key_ranks[d].is_some() {
            let mut row_ids = Vec::new();
            let mut offsets = vec![0u32];
            for &p in &positions {
                let k = key_at(p as usize, d);
                row_ids.extend(dim.lists.values(&k).iter().map(|v| ranks[d][*v as usize]));
                offsets.push(row_ids.len() as u32);
            }
            dimensions.push(StringColumn {
                name: dim.name.clone(),
                offsets: Some(offsets),
                dictionary,
                ids: row_ids,
            });
            continue;
        }
        dimensions.push(StringColumn {
            name: dim.name.clone(),
            offsets: None,
            dictionary,
            ids: positions
                .iter()
                .map(|&p| ranks[d][key_at(p as usize, d) as usize])
                .collect(),
        });
    }

    let metrics = index
        .metrics
        .iter()
        .map(|m| {
            let mut nulls = RoaringBitmap::new();
            let mut note_nulls = |set: &RowBits| {
                if set.all_set() {
                    return;
                }
                for (i, &r) in order.iter().enumerate() {
                    if !set.get(r as usize) {
                        nulls.insert(i as u32);
                    }
                }
            };
            let values = match &m.values {
                MetricValues::Count(v) => NumericValues::Long(v.gather(&order)),
                MetricValues::Long { values, set, .. } => {
                    note_nulls(set);
                    NumericValues::Long(values.gather(&order))
                }
                MetricValues::Double { values, set, .. } => {
                    note_nulls(set);
                    NumericValues::Double(order.iter().map(|&r| values[r as usize]).collect())
                }
                MetricValues::Float { values, set, .. } => {
                    note_nulls(set);
                    NumericValues::Float(order.iter().map(|&r| values[r as usize]).collect())
                }
                MetricValues::FirstLast {
                    ty,
                    times,
                    values,
                    state,
                    ..
                } => NumericValues::Complex(
                    ComplexKind::Pair(*ty),
                    order
                        .iter()
                        .map(|&r| {
                            let r = r as usize;
                            match state[r] {
                                0 => Vec::new(),
                                s => pair_cell(times[r], (s == 2).then_some(values[r]), *ty),
                            }
                        })
                        .collect(),
                ),
                MetricValues::Sketch { sketches, .. } => NumericValues::Complex(
                    ComplexKind::HyperUnique,
                    order
                        .iter()
                        .map(|&r| sketches[r as usize].to_bytes())
                        .collect(),
                ),
            };
            MetricColumn {
                name: m.aggregator.name.clone(),
                values,
                nulls,
            }
        })
        .collect();

    SegmentData {
        interval: (sink.interval_start, sink.interval_end),
        numeric_dimensions,
        times,
        dimensions,
        metrics,
        metadata: Some(metadata),
    }
}

/// The sink's rows in segment order, as their positions in `rows`: by
/// time, then by dimension ranks; equal keys (only without rollup) keep
/// arrival order, as merge does. `key_table` holds each row's key ids.
fn row_order(
    index: &IncrementalIndex,
    rows: &[u32],
    key_table: &[u32],
    ranks: &[Vec<u32>],
    key_ranks: &[Option<HashMap<u32, u32>>],
) -> Vec<u32> {
    let width = ranks.len();
    // Inlined: three calls a row were ~2% of a csv replay's instructions.
    #[inline(always)]
    fn rank(
        key_table: &[u32],
        ranks: &[Vec<u32>],
        key_ranks: &[Option<HashMap<u32, u32>>],
        p: usize,
        d: usize,
    ) -> u32 {
        let k = key_table[p * ranks.len() + d];
        match &key_ranks[d] {
            Some(key_rank) => key_rank[&k],
            None => ranks[d][k as usize],
        }
    }
    let rank_of = |p: usize, d: usize| rank(key_table, ranks, key_ranks, p, d);
    let bits = |n: u64| 64 - n.leading_zeros();
    let (min_time, max_time) = rows
        .iter()
        .map(|&r| index.times[r as usize])
        .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let dim_bits: Vec<u32> = (0..width)
        .map(|d| match &key_ranks[d] {
            Some(key_rank) => bits(key_rank.len() as u64),
            None => bits(ranks[d].len() as u64),
        })
        .collect();
    let position_bits = bits(rows.len() as u64);
    let other_bits = dim_bits.iter().sum::<u32>() + position_bits;
    // The times are query-granularity buckets, so their offsets share low
    // zero bits (7 for hours: 3,600,000 = 2^7 x 28,125). Dropped when the
    // key would not pack otherwise: a year's segment of hourly rows then
    // takes 28 bits of time instead of 35, and its sort the integer way
    // instead of the slice comparator below (~5x dearer, callgrind).
    let time_span = max_time.abs_diff(min_time);
    let mut time_shift = 0;
    if bits(time_span) + other_bits > 64 {
        let offsets = rows.iter().fold(0, |acc, &r| {
            acc | index.times[r as usize].abs_diff(min_time)
        });
        // All offsets 0 (one time): 64 trailing zeros, no shift.
        time_shift = offsets.trailing_zeros() % 64;
    }
    let time_bits = bits(time_span >> time_shift);
    let total = time_bits + other_bits;
    if total <= 64 {
        // The whole key packed in one integer (time offset, ranks, then the
        // position): sorting integers is several times cheaper than
        // comparing keys field by field (callgrind: the comparator sort was
        // ~15% of a flights replay's instructions).
        let mut packed: Vec<u64> = rows
            .iter()
            .enumerate()
            .map(|(p, &r)| {
                let mut key = index.times[r as usize].abs_diff(min_time) >> time_shift;
                for (d, &b) in dim_bits.iter().enumerate() {
                    key = (key << b) | u64::from(rank_of(p, d));
                }
                (key << position_bits) | p as u64
            })
            .collect();
        packed.sort_unstable();
        let mask = (1u64 << position_bits) - 1;
        return packed.into_iter().map(|k| (k & mask) as u32).collect();
    }
    // Too wide to pack: each row's ranks side by side, compared as slices.
    let mut ranked = Vec::with_capacity(rows.len() * width);
    for p in 0..rows.len() {
        for d in 0..width {
            ranked.push(rank_of(p, d));
        }
    }
    let mut positions: Vec<u32> = (0..rows.len() as u32).collect();
    positions.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        index.times[rows[a] as usize]
            .cmp(&index.times[rows[b] as usize])
            .then_with(|| {
                ranked[a * width..(a + 1) * width].cmp(&ranked[b * width..(b + 1) * width])
            })
            .then(a.cmp(&b))
    });
    positions
}

/// A key that sorts numbers of type `ty` (given as bits) in numeric order
/// (Java's Long.compare / Double.compare order, -0.0 before 0.0, NaN last).
pub fn order_bits(ty: NumType, bits: u64) -> u64 {
    match ty {
        NumType::Long => bits ^ (1 << 63),
        NumType::Double => {
            if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            }
        }
        NumType::Float => {
            let b = bits as u32;
            (if b >> 31 == 1 { !b } else { b | (1 << 31) }) as u64
        }
    }
}

/// A numeric column (metric layout) from per-row values as bits.
pub fn numeric_column(
    name: &str,
    ty: NumType,
    rows: impl Iterator<Item = Option<u64>>,
) -> MetricColumn {
    let mut nulls = RoaringBitmap::new();
    let mut bits = Vec::new();
    for (i, v) in rows.enumerate() {
        if v.is_none() {
            nulls.insert(i as u32);
        }
        bits.push(v.unwrap_or(0));
    }
    let values = match ty {
        NumType::Long => NumericValues::Long(bits.into_iter().map(|b| b as i64).collect()),
        NumType::Double => NumericValues::Double(bits.into_iter().map(f64::from_bits).collect()),
        NumType::Float => {
            NumericValues::Float(bits.into_iter().map(|b| f32::from_bits(b as u32)).collect())
        }
    };
    MetricColumn {
        name: name.to_string(),
        values,
        nulls,
    }
}
