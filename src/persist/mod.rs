//! Freezing the index into segments: a sink's rows sorted by time and
//! dimension values (dictionary ranks in Java string order), dictionaries
//! cut down to the values the sink uses, metrics gathered in row order.

use crate::index::{IncrementalIndex, MetricValues, Sink};
use crate::segment::bytes::java_cmp;
use crate::segment::{MetricColumn, NumericValues, SegmentData, StringColumn};
use roaring::RoaringBitmap;

/// Build the segment for one sink.
pub fn sink_to_segment(
    index: &IncrementalIndex,
    sink: &Sink,
    metadata: serde_json::Value,
) -> SegmentData {
    let rows: &[u32] = &sink.rows;
    let dims = &index.dimensions;

    // Per dimension: which ids this sink uses, their sorted order, and the
    // rank of each id in that order (ranks give the row order).
    let mut ranks: Vec<Vec<u32>> = Vec::with_capacity(dims.len());
    let mut used_sorted: Vec<Vec<u32>> = Vec::with_capacity(dims.len());
    for (d, dim) in dims.iter().enumerate() {
        let mut used = vec![false; dim.dictionary.len()];
        for &r in rows {
            used[key_id(index, r as usize, d) as usize] = true;
        }
        let mut ids: Vec<u32> = (0..used.len() as u32)
            .filter(|&i| used[i as usize])
            .collect();
        ids.sort_by(
            |&a, &b| match (dim.dictionary.value(a), dim.dictionary.value(b)) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, _) => std::cmp::Ordering::Less,
                (_, None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => java_cmp(x, y),
            },
        );
        let mut rank = vec![u32::MAX; used.len()];
        for (pos, &id) in ids.iter().enumerate() {
            rank[id as usize] = pos as u32;
        }
        ranks.push(rank);
        used_sorted.push(ids);
    }

    // Each row's dimension ranks side by side, so sorting compares slices.
    let width = dims.len();
    let mut ranked = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        for (d, rank) in ranks.iter().enumerate() {
            ranked.push(rank[key_id(index, r as usize, d) as usize]);
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
    });
    let order: Vec<u32> = positions.into_iter().map(|p| rows[p as usize]).collect();

    let times = order.iter().map(|&r| index.times[r as usize]).collect();
    let mut dimensions = Vec::new();
    for (d, dim) in dims.iter().enumerate() {
        let ids = &used_sorted[d];
        // A dimension with no value in this segment is not stored.
        if ids.iter().all(|&id| id == 0) {
            continue;
        }
        dimensions.push(StringColumn {
            name: dim.name.clone(),
            dictionary: ids
                .iter()
                .map(|&id| dim.dictionary.value(id).map(str::to_string))
                .collect(),
            ids: order
                .iter()
                .map(|&r| ranks[d][key_id(index, r as usize, d) as usize])
                .collect(),
        });
    }

    let metrics = index
        .metrics
        .iter()
        .map(|m| {
            let mut nulls = RoaringBitmap::new();
            let mut note_nulls = |set: &[bool]| {
                for (i, &r) in order.iter().enumerate() {
                    if !set[r as usize] {
                        nulls.insert(i as u32);
                    }
                }
            };
            let values = match &m.values {
                MetricValues::Count(v) => {
                    NumericValues::Long(order.iter().map(|&r| v[r as usize]).collect())
                }
                MetricValues::Long { values, set, .. } => {
                    note_nulls(set);
                    NumericValues::Long(order.iter().map(|&r| values[r as usize]).collect())
                }
                MetricValues::Double { values, set, .. } => {
                    note_nulls(set);
                    NumericValues::Double(order.iter().map(|&r| values[r as usize]).collect())
                }
                MetricValues::Float { values, set, .. } => {
                    note_nulls(set);
                    NumericValues::Float(order.iter().map(|&r| values[r as usize]).collect())
                }
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
        times,
        dimensions,
        metrics,
        metadata: Some(metadata),
    }
}

/// The id of dimension `d` in row `r` (0, null, past the stored key).
fn key_id(index: &IncrementalIndex, r: usize, d: usize) -> u32 {
    index.key(r).get(d).copied().unwrap_or(0)
}
