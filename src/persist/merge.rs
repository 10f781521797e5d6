//! Merging the sorted segments of one interval (intermediate persists and
//! the rows still in memory) into the final partitions: a k-way merge in
//! (time, dimension values) order over dictionaries remapped to their union,
//! rows that meet across inputs rolled up again, and a new partition every
//! `maxRowsPerSegment` rows. Each partition's dictionaries are cut down to
//! the values it uses, exactly as a segment written straight from memory,
//! so the output does not depend on when persists happened.

use crate::segment::bytes::java_cmp_nullable;
use crate::segment::{MetricColumn, NumericValues, SegmentData, StringColumn};
use crate::spec::{AggOp, Aggregator, AggregatorKind};
use anyhow::{Result, bail};
use roaring::RoaringBitmap;
use std::cmp::Ordering;

/// What the merged partitions look like.
pub struct MergePlan<'a> {
    /// All dimensions of the task in their final order (declared, then
    /// discovered); inputs hold a subsequence of them.
    pub dimensions: &'a [String],
    pub aggregators: &'a [Aggregator],
    pub rollup: bool,
    pub max_rows_per_segment: usize,
    pub metadata: &'a serde_json::Value,
}

/// One dimension of the merge: the union dictionary (Java order, null
/// first) and, per input, the union rank of each of its ids.
struct MergedDimension<'a> {
    name: &'a str,
    dictionary: Vec<Option<&'a str>>,
    /// None: the input lacks the dimension; its rows are null (rank 0).
    remap: Vec<Option<(&'a [u32], Vec<u32>)>>,
}

impl MergedDimension<'_> {
    fn rank(&self, input: usize, row: usize) -> u32 {
        match &self.remap[input] {
            Some((ids, ranks)) => ranks[ids[row] as usize],
            None => 0,
        }
    }
}

/// Merge `inputs` (each sorted as a segment is, earlier persists first) and
/// hand every finished partition to `emit` in order.
pub fn merge(
    interval: (i64, i64),
    inputs: &[SegmentData],
    plan: &MergePlan,
    mut emit: impl FnMut(SegmentData) -> Result<()>,
) -> Result<()> {
    if let Some(d) = inputs
        .iter()
        .flat_map(|i| &i.dimensions)
        .find(|d| d.offsets.is_some())
    {
        bail!(
            "dimension {}: multi-value columns are not merged by this build yet",
            d.name
        );
    }
    let dims = merged_dimensions(inputs, plan.dimensions);
    let metric_inputs: Vec<Vec<&MetricColumn>> = plan
        .aggregators
        .iter()
        .map(|a| {
            inputs
                .iter()
                .map(|input| {
                    input
                        .metrics
                        .iter()
                        .find(|m| m.name == a.name)
                        .ok_or_else(|| {
                            anyhow::anyhow!("a persisted segment lacks metric {}", a.name)
                        })
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let ops: Vec<AggOp> = plan
        .aggregators
        .iter()
        .map(|a| match &a.kind {
            AggregatorKind::Numeric { op, .. } => *op,
            _ => AggOp::Sum,
        })
        .collect();
    for (columns, a) in metric_inputs.iter().zip(plan.aggregators) {
        let kinds: Vec<std::mem::Discriminant<NumericValues>> = columns
            .iter()
            .map(|c| std::mem::discriminant(&c.values))
            .collect();
        if kinds.windows(2).any(|w| w[0] != w[1]) {
            bail!(
                "metric {} has different types in different persists",
                a.name
            );
        }
    }

    let mut out = Partition::new(interval, &dims, &metric_inputs, plan);
    let mut pos = vec![0usize; inputs.len()];
    let key_cmp = |a: (usize, usize), b: (usize, usize)| -> Ordering {
        inputs[a.0].times[a.1]
            .cmp(&inputs[b.0].times[b.1])
            .then_with(|| {
                for d in &dims {
                    let o = d.rank(a.0, a.1).cmp(&d.rank(b.0, b.1));
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            })
    };
    loop {
        // The smallest head; ties go to the earlier input (arrival order).
        let mut best: Option<usize> = None;
        for (i, input) in inputs.iter().enumerate() {
            if pos[i] < input.num_rows()
                && best.is_none_or(|b| key_cmp((i, pos[i]), (b, pos[b])) == Ordering::Less)
            {
                best = Some(i);
            }
        }
        let Some(i) = best else { break };
        let row = pos[i];
        pos[i] += 1;
        let time = inputs[i].times[row];
        let same_as_last = plan.rollup
            && out.len() > 0
            && out.times.last() == Some(&time)
            && dims
                .iter()
                .enumerate()
                .all(|(d, dim)| out.ranks[d].last() == Some(&dim.rank(i, row)));
        if same_as_last {
            out.combine_last(i, row, &metric_inputs, &ops);
            continue;
        }
        if out.len() >= plan.max_rows_per_segment {
            let full = std::mem::replace(
                &mut out,
                Partition::new(interval, &dims, &metric_inputs, plan),
            );
            emit(full.finish(&dims, plan))?;
        }
        out.push(time, i, row, &dims, &metric_inputs);
    }
    if out.len() > 0 {
        emit(out.finish(&dims, plan))?;
    }
    Ok(())
}

fn merged_dimensions<'a>(
    inputs: &'a [SegmentData],
    names: &'a [String],
) -> Vec<MergedDimension<'a>> {
    names
        .iter()
        .map(|name| {
            let columns: Vec<Option<&StringColumn>> = inputs
                .iter()
                .map(|i| i.dimensions.iter().find(|d| d.name == *name))
                .collect();
            let mut dictionary: Vec<Option<&str>> = Vec::new();
            if columns.iter().any(Option::is_none) {
                dictionary.push(None);
            }
            for c in columns.iter().flatten() {
                dictionary.extend(c.dictionary.iter().map(|v| v.as_deref()));
            }
            dictionary.sort_by(|a, b| java_cmp_nullable(*a, *b));
            dictionary.dedup();
            let remap = columns
                .iter()
                .map(|c| {
                    c.map(|c| {
                        // Both lists are sorted: one forward walk remaps them.
                        let mut ranks = Vec::with_capacity(c.dictionary.len());
                        let mut at = 0;
                        for v in &c.dictionary {
                            while dictionary[at] != v.as_deref() {
                                at += 1;
                            }
                            ranks.push(at as u32);
                        }
                        (c.ids.as_slice(), ranks)
                    })
                })
                .collect();
            MergedDimension {
                name,
                dictionary,
                remap,
            }
        })
        .collect()
}

/// Rows of the partition being filled, dimension values as union ranks.
struct Partition {
    interval: (i64, i64),
    times: Vec<i64>,
    ranks: Vec<Vec<u32>>,
    metrics: Vec<(NumericValues, Vec<bool>)>,
}

impl Partition {
    fn new(
        interval: (i64, i64),
        dims: &[MergedDimension],
        metric_inputs: &[Vec<&MetricColumn>],
        plan: &MergePlan,
    ) -> Partition {
        let metrics = plan
            .aggregators
            .iter()
            .enumerate()
            .map(|(m, _)| {
                let values = match metric_inputs[m].first().map(|c| &c.values) {
                    Some(NumericValues::Double(_)) => NumericValues::Double(Vec::new()),
                    Some(NumericValues::Float(_)) => NumericValues::Float(Vec::new()),
                    _ => NumericValues::Long(Vec::new()),
                };
                (values, Vec::new())
            })
            .collect();
        Partition {
            interval,
            times: Vec::new(),
            ranks: vec![Vec::new(); dims.len()],
            metrics,
        }
    }

    fn len(&self) -> usize {
        self.times.len()
    }

    fn push(
        &mut self,
        time: i64,
        input: usize,
        row: usize,
        dims: &[MergedDimension],
        metric_inputs: &[Vec<&MetricColumn>],
    ) {
        self.times.push(time);
        for (d, dim) in dims.iter().enumerate() {
            self.ranks[d].push(dim.rank(input, row));
        }
        for ((values, set), columns) in self.metrics.iter_mut().zip(metric_inputs) {
            let c = columns[input];
            set.push(!c.nulls.contains(row as u32));
            match (values, &c.values) {
                (NumericValues::Long(o), NumericValues::Long(v)) => o.push(v[row]),
                (NumericValues::Double(o), NumericValues::Double(v)) => o.push(v[row]),
                (NumericValues::Float(o), NumericValues::Float(v)) => o.push(v[row]),
                _ => unreachable!("metric types were checked to agree"),
            }
        }
    }

    /// Roll an input row into the last row, as the index rolls up inputs.
    fn combine_last(
        &mut self,
        input: usize,
        row: usize,
        metric_inputs: &[Vec<&MetricColumn>],
        ops: &[AggOp],
    ) {
        let last = self.times.len() - 1;
        for (((values, set), columns), op) in self.metrics.iter_mut().zip(metric_inputs).zip(ops) {
            let c = columns[input];
            if c.nulls.contains(row as u32) {
                continue;
            }
            let was_set = std::mem::replace(&mut set[last], true);
            match (values, &c.values) {
                (NumericValues::Long(o), NumericValues::Long(v)) => {
                    combine(&mut o[last], v[row], was_set, *op, i64::wrapping_add)
                }
                (NumericValues::Double(o), NumericValues::Double(v)) => {
                    combine(&mut o[last], v[row], was_set, *op, |a, b| a + b)
                }
                (NumericValues::Float(o), NumericValues::Float(v)) => {
                    combine(&mut o[last], v[row], was_set, *op, |a, b| a + b)
                }
                _ => unreachable!("metric types were checked to agree"),
            }
        }
    }

    fn finish(self, dims: &[MergedDimension], plan: &MergePlan) -> SegmentData {
        let mut dimensions = Vec::new();
        for (dim, ranks) in dims.iter().zip(&self.ranks) {
            let mut used = vec![false; dim.dictionary.len()];
            for &r in ranks {
                used[r as usize] = true;
            }
            let mut new_id = vec![0u32; used.len()];
            let mut dictionary = Vec::new();
            for (rank, _) in used.iter().enumerate().filter(|(_, u)| **u) {
                new_id[rank] = dictionary.len() as u32;
                dictionary.push(dim.dictionary[rank].map(str::to_string));
            }
            // A dimension with no value in this partition is not stored.
            if dictionary.iter().all(Option::is_none) {
                continue;
            }
            dimensions.push(StringColumn {
                name: dim.name.to_string(),
                offsets: None,
                dictionary,
                ids: ranks.iter().map(|&r| new_id[r as usize]).collect(),
            });
        }
        let metrics = self
            .metrics
            .into_iter()
            .zip(plan.aggregators)
            .map(|((values, set), a)| MetricColumn {
                name: a.name.clone(),
                values,
                nulls: set
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !**s)
                    .map(|(i, _)| i as u32)
                    .collect::<RoaringBitmap>(),
            })
            .collect();
        SegmentData {
            interval: self.interval,
            numeric_dimensions: Vec::new(),
            times: self.times,
            dimensions,
            metrics,
            metadata: Some(plan.metadata.clone()),
        }
    }
}

fn combine<T: PartialOrd + Copy>(
    acc: &mut T,
    x: T,
    was_set: bool,
    op: AggOp,
    add: impl Fn(T, T) -> T,
) {
    if !was_set {
        *acc = x;
        return;
    }
    *acc = match op {
        AggOp::Sum => add(*acc, x),
        AggOp::Min if x < *acc => x,
        AggOp::Max if x > *acc => x,
        _ => *acc,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AggregatorSpec, NumType};

    fn agg(name: &str, kind: AggregatorKind) -> Aggregator {
        Aggregator {
            name: name.into(),
            kind,
            field_name: Some(name.into()),
            spec: serde_json::from_value::<AggregatorSpec>(
                serde_json::json!({"type": "longSum", "name": name}),
            )
            .unwrap(),
        }
    }

    fn segment(rows: &[(i64, Option<&str>, Option<i64>)]) -> SegmentData {
        let mut dictionary: Vec<Option<String>> =
            rows.iter().map(|r| r.1.map(str::to_string)).collect();
        dictionary.sort_by(|a, b| java_cmp_nullable(a.as_deref(), b.as_deref()));
        dictionary.dedup();
        SegmentData {
            interval: (0, 100),
            numeric_dimensions: Vec::new(),
            times: rows.iter().map(|r| r.0).collect(),
            dimensions: vec![StringColumn {
                name: "d".into(),
                offsets: None,
                ids: rows
                    .iter()
                    .map(|r| dictionary.iter().position(|v| v.as_deref() == r.1).unwrap() as u32)
                    .collect(),
                dictionary,
            }],
            metrics: vec![MetricColumn {
                name: "m".into(),
                values: NumericValues::Long(rows.iter().map(|r| r.2.unwrap_or(0)).collect()),
                nulls: rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.2.is_none())
                    .map(|(i, _)| i as u32)
                    .collect(),
            }],
            metadata: None,
        }
    }

    fn run(inputs: &[SegmentData], op: AggOp, rollup: bool, max_rows: usize) -> Vec<SegmentData> {
        let dims = vec!["d".to_string()];
        let aggs = vec![agg(
            "m",
            AggregatorKind::Numeric {
                op,
                ty: NumType::Long,
            },
        )];
        let metadata = serde_json::Value::Null;
        let plan = MergePlan {
            dimensions: &dims,
            aggregators: &aggs,
            rollup,
            max_rows_per_segment: max_rows,
            metadata: &metadata,
        };
        let mut out = Vec::new();
        merge((0, 100), inputs, &plan, |s| {
            out.push(s);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn rows_meeting_across_inputs_roll_up_and_nulls_stay_null() {
        let a = segment(&[
            (1, Some("x"), Some(2)),
            (2, None, None),
            (3, Some("y"), None),
        ]);
        let b = segment(&[
            (1, Some("x"), Some(5)),
            (2, None, None),
            (3, Some("y"), Some(7)),
        ]);
        let out = run(&[a, b], AggOp::Sum, true, 100);
        assert_eq!(out.len(), 1);
        let expected = segment(&[
            (1, Some("x"), Some(7)),
            (2, None, None),
            (3, Some("y"), Some(7)),
        ]);
        assert_eq!(out[0].times, expected.times);
        assert_eq!(out[0].dimensions, expected.dimensions);
        assert_eq!(out[0].metrics, expected.metrics);
    }

    #[test]
    fn min_and_max_combine_and_without_rollup_rows_stay_apart() {
        let a = segment(&[(1, Some("x"), Some(2))]);
        let b = segment(&[(1, Some("x"), Some(-5))]);
        let min = run(&[a.clone(), b.clone()], AggOp::Min, true, 100);
        assert_eq!(min[0].metrics[0].values, NumericValues::Long(vec![-5]));
        let max = run(&[a.clone(), b.clone()], AggOp::Max, true, 100);
        assert_eq!(max[0].metrics[0].values, NumericValues::Long(vec![2]));
        let raw = run(&[a, b], AggOp::Sum, false, 100);
        assert_eq!(raw[0].metrics[0].values, NumericValues::Long(vec![2, -5]));
    }

    #[test]
    fn partitions_are_cut_and_their_dictionaries_trimmed() {
        let a = segment(&[(1, Some("a"), Some(1)), (2, Some("b"), Some(1))]);
        let b = segment(&[
            (3, Some("c"), Some(1)),
            (4, None, Some(1)),
            (5, Some("a"), Some(1)),
        ]);
        let out = run(&[a, b], AggOp::Sum, true, 2);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].times, vec![1, 2]);
        assert_eq!(
            out[1].dimensions[0].dictionary,
            vec![None, Some("c".to_string())]
        );
        assert_eq!(out[1].dimensions[0].ids, vec![1, 0]);
        assert_eq!(out[2].dimensions[0].dictionary, vec![Some("a".to_string())]);
    }

    #[test]
    fn a_dimension_missing_from_one_input_is_null_there() {
        let a = segment(&[(1, Some("a"), Some(1))]);
        let mut b = segment(&[(1, Some("z"), Some(1))]);
        b.dimensions.clear();
        let out = run(&[a, b], AggOp::Sum, true, 100);
        assert_eq!(out[0].times, vec![1, 1]);
        assert_eq!(
            out[0].dimensions[0].dictionary,
            vec![None, Some("a".to_string())]
        );
        assert_eq!(out[0].dimensions[0].ids, vec![0, 1]);
    }
}
