//! Merging the sorted segments of one interval (intermediate persists and
//! the rows still in memory) into the final partitions: a k-way merge in
//! (time, dimension values) order over dictionaries remapped to their union,
//! rows that meet across inputs rolled up again, and a new partition every
//! `maxRowsPerSegment` rows. Each partition's dictionaries are cut down to
//! the values it uses, exactly as a segment written straight from memory,
//! so the output does not depend on when persists happened.
//!
//! Persists are read from disk block by block (`SpillInput`): the merge
//! holds each persist's dictionaries and one decoded block per column, and
//! the partition being filled, never whole persists.

use crate::java::hll::Hll;
use crate::java::java_cmp_nullable;
use crate::persist::{numeric_column, order_bits};
use crate::segment::complex::{ComplexKind, read_pair};
use crate::segment::cursor::{DiskSegment, NumericCursor, NumericKind, StringCursor};
use crate::segment::reader::{Column, read_column};
use crate::segment::{MetricColumn, NumericDimension, NumericValues, SegmentData, StringColumn};
use crate::spec::{AggOp, Aggregator, AggregatorKind, NumType};
use anyhow::{Context, Result, bail};
use roaring::RoaringBitmap;
use std::cmp::Ordering;
use std::path::Path;

/// What the merged partitions look like.
pub struct MergePlan<'a> {
    /// All dimensions of the task in their final order (declared, then
    /// discovered); inputs hold a subsequence of them.
    pub dimensions: &'a [String],
    /// Per dimension: its numeric type, None for a string dimension.
    pub dimension_types: &'a [Option<NumType>],
    pub aggregators: &'a [Aggregator],
    pub rollup: bool,
    pub max_rows_per_segment: usize,
    pub metadata: &'a serde_json::Value,
}

/// One row of an input. Per plan dimension: a string dimension's ids in
/// the input's own dictionary (`ids[id_ends[d - 1]..id_ends[d]]`; one id,
/// or several for a multi-value row; none where the input lacks the
/// dimension), a numeric dimension's value as bits in `numbers` (None for
/// null). Metrics as bits (i64, f64 or f32 bits), None for null.
#[derive(Default, Clone)]
pub struct InputRow {
    pub time: i64,
    pub ids: Vec<u32>,
    pub id_ends: Vec<usize>,
    pub present: Vec<bool>,
    pub numbers: Vec<Option<u64>>,
    pub metrics: Vec<Option<u64>>,
    /// Per metric: a complex metric's cell (empty for numeric metrics).
    pub cells: Vec<Vec<u8>>,
}

impl InputRow {
    fn clear(&mut self) {
        self.ids.clear();
        self.id_ends.clear();
        self.present.clear();
        self.numbers.clear();
        self.metrics.clear();
        self.cells.clear();
    }

    /// Close dimension `d`'s values.
    fn end_dimension(&mut self, present: bool, number: Option<u64>) {
        self.id_ends.push(self.ids.len());
        self.present.push(present);
        self.numbers.push(number);
    }

    fn dimension_ids(&self, d: usize) -> &[u32] {
        let start = if d == 0 { 0 } else { self.id_ends[d - 1] };
        &self.ids[start..self.id_ends[d]]
    }
}

/// A column's value in row `row` as bits, None when null.
fn value_bits(m: &MetricColumn, row: usize) -> Option<u64> {
    if m.nulls.contains(row as u32) {
        return None;
    }
    Some(match &m.values {
        NumericValues::Long(v) => v[row] as u64,
        NumericValues::Double(v) => v[row].to_bits(),
        NumericValues::Float(v) => v[row].to_bits() as u64,
        NumericValues::Complex(..) => return None,
    })
}

/// A metric's stored type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Numeric(NumericKind),
    Complex(ComplexKind),
}

/// How rows that meet roll a metric up.
#[derive(Debug, Clone, Copy)]
enum Combine {
    Numeric(AggOp),
    First,
    Last,
    Fold,
}

/// A numeric column's type; None for a complex one.
fn numeric_type_of(values: &NumericValues) -> Option<NumType> {
    match kind_of(values) {
        MetricKind::Numeric(k) => Some(num_type(k)),
        MetricKind::Complex(_) => None,
    }
}

fn num_type(kind: NumericKind) -> NumType {
    match kind {
        NumericKind::Long => NumType::Long,
        NumericKind::Double => NumType::Double,
        NumericKind::Float => NumType::Float,
    }
}

/// A sorted segment read row by row, bound to a plan's dimensions and
/// metrics.
pub trait MergeInput {
    fn num_rows(&self) -> usize;
    /// The dictionary of plan dimension `d`; None when the input lacks it.
    fn dictionary(&self, d: usize) -> Option<&[Option<String>]>;
    fn metric_kind(&self, m: usize) -> MetricKind;
    fn read_row(&mut self, row: usize, out: &mut InputRow) -> Result<()>;
}

fn kind_of(values: &NumericValues) -> MetricKind {
    match values {
        NumericValues::Long(_) => MetricKind::Numeric(NumericKind::Long),
        NumericValues::Double(_) => MetricKind::Numeric(NumericKind::Double),
        NumericValues::Float(_) => MetricKind::Numeric(NumericKind::Float),
        NumericValues::Complex(k, _) => MetricKind::Complex(*k),
    }
}

/// Rows still in memory (a sink turned into segment data).
pub struct MemoryInput<'a> {
    data: &'a SegmentData,
    dims: Vec<MemoryDim<'a>>,
    metrics: Vec<&'a MetricColumn>,
}

enum MemoryDim<'a> {
    Absent,
    String(&'a StringColumn),
    Numeric(&'a MetricColumn),
}

impl<'a> MemoryInput<'a> {
    pub fn new(data: &'a SegmentData, plan: &MergePlan) -> Result<MemoryInput<'a>> {
        let dims = plan
            .dimensions
            .iter()
            .zip(plan.dimension_types)
            .map(|(n, ty)| {
                if let Some(c) = data.dimensions.iter().find(|d| d.name == *n) {
                    if ty.is_some() {
                        bail!("dimension {n} is numeric but stored as strings");
                    }
                    return Ok(MemoryDim::String(c));
                }
                match data.numeric_dimensions.iter().find(|d| d.column.name == *n) {
                    Some(d) if numeric_type_of(&d.column.values) == *ty => {
                        Ok(MemoryDim::Numeric(&d.column))
                    }
                    Some(_) => bail!("dimension {n} is stored with another type"),
                    None => Ok(MemoryDim::Absent),
                }
            })
            .collect::<Result<_>>()?;
        Ok(MemoryInput {
            data,
            dims,
            metrics: plan
                .aggregators
                .iter()
                .map(|a| {
                    data.metrics
                        .iter()
                        .find(|m| m.name == a.name)
                        .with_context(|| format!("no metric {}", a.name))
                })
                .collect::<Result<_>>()?,
        })
    }
}

impl MergeInput for MemoryInput<'_> {
    fn num_rows(&self) -> usize {
        self.data.num_rows()
    }

    fn dictionary(&self, d: usize) -> Option<&[Option<String>]> {
        match self.dims[d] {
            MemoryDim::String(c) => Some(c.dictionary.as_slice()),
            _ => None,
        }
    }

    fn metric_kind(&self, m: usize) -> MetricKind {
        kind_of(&self.metrics[m].values)
    }

    fn read_row(&mut self, row: usize, out: &mut InputRow) -> Result<()> {
        out.clear();
        out.time = self.data.times[row];
        for d in &self.dims {
            match d {
                MemoryDim::Absent => out.end_dimension(false, None),
                MemoryDim::String(c) => {
                    out.ids.extend_from_slice(c.row(row));
                    out.end_dimension(true, None);
                }
                MemoryDim::Numeric(c) => out.end_dimension(true, value_bits(c, row)),
            }
        }
        for m in &self.metrics {
            out.metrics.push(value_bits(m, row));
            out.cells.push(match &m.values {
                NumericValues::Complex(_, cells) => cells[row].clone(),
                _ => Vec::new(),
            });
        }
        Ok(())
    }
}

/// An intermediate persist on disk, read block by block.
pub struct SpillInput {
    rows: usize,
    time: NumericCursor,
    dims: Vec<SpillDim>,
    metrics: Vec<SpillMetric>,
}

/// A persist's metric: numbers read block by block, complex cells whole.
enum SpillMetric {
    Numeric(NumericCursor),
    Complex(ComplexKind, Vec<Vec<u8>>),
}

impl SpillMetric {
    fn len(&self) -> usize {
        match self {
            SpillMetric::Numeric(c) => c.len(),
            SpillMetric::Complex(_, cells) => cells.len(),
        }
    }
}

enum SpillDim {
    Absent,
    String(StringCursor),
    Numeric(NumericCursor),
}

impl SpillInput {
    pub fn open(dir: &Path, plan: &MergePlan) -> Result<SpillInput> {
        let segment = DiskSegment::open(dir)?;
        let time = segment.numeric("__time")?;
        let dims = plan
            .dimensions
            .iter()
            .zip(plan.dimension_types)
            .map(|(n, ty)| {
                if !segment.index.dimensions.contains(n) {
                    return Ok(SpillDim::Absent);
                }
                Ok(match ty {
                    None => SpillDim::String(segment.strings(n)?),
                    Some(ty) => {
                        let c = segment.numeric(n)?;
                        if num_type(c.kind) != *ty {
                            bail!(
                                "{}: dimension {n} is stored with another type",
                                dir.display()
                            );
                        }
                        SpillDim::Numeric(c)
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(extra) = segment
            .index
            .dimensions
            .iter()
            .find(|d| !plan.dimensions.contains(d))
        {
            bail!("{}: dimension {extra} is not the task's", dir.display());
        }
        let metrics = plan
            .aggregators
            .iter()
            .map(|a| match a.kind {
                AggregatorKind::FirstLast { .. } | AggregatorKind::HyperUnique { .. } => {
                    match read_column(&a.name, &segment.column_bytes(&a.name)?)? {
                        Column::Numeric(NumericValues::Complex(kind, cells), _) => {
                            Ok(SpillMetric::Complex(kind, cells))
                        }
                        _ => bail!("{}: metric {} is not complex", dir.display(), a.name),
                    }
                }
                _ => Ok(SpillMetric::Numeric(segment.numeric(&a.name)?)),
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = time.len();
        let dim_rows = |d: &SpillDim| match d {
            SpillDim::Absent => rows,
            SpillDim::String(c) => c.len(),
            SpillDim::Numeric(c) => c.len(),
        };
        if dims.iter().any(|d| dim_rows(d) != rows) || metrics.iter().any(|m| m.len() != rows) {
            bail!("{}: columns of different lengths", dir.display());
        }
        Ok(SpillInput {
            rows,
            time,
            dims,
            metrics,
        })
    }
}

impl MergeInput for SpillInput {
    fn num_rows(&self) -> usize {
        self.rows
    }

    fn dictionary(&self, d: usize) -> Option<&[Option<String>]> {
        match &self.dims[d] {
            SpillDim::String(c) => Some(c.dictionary.as_slice()),
            _ => None,
        }
    }

    fn metric_kind(&self, m: usize) -> MetricKind {
        match &self.metrics[m] {
            SpillMetric::Numeric(c) => MetricKind::Numeric(c.kind),
            SpillMetric::Complex(k, _) => MetricKind::Complex(*k),
        }
    }

    fn read_row(&mut self, row: usize, out: &mut InputRow) -> Result<()> {
        out.clear();
        out.time = self.time.bits(row)? as i64;
        for d in &mut self.dims {
            match d {
                SpillDim::Absent => out.end_dimension(false, None),
                SpillDim::String(c) => {
                    c.row_ids(row, &mut out.ids)?;
                    out.end_dimension(true, None);
                }
                SpillDim::Numeric(c) => {
                    let v = if c.nulls.contains(row as u32) {
                        None
                    } else {
                        Some(c.bits(row)?)
                    };
                    out.end_dimension(true, v);
                }
            }
        }
        for m in &mut self.metrics {
            match m {
                SpillMetric::Numeric(m) => {
                    out.metrics.push(if m.nulls.contains(row as u32) {
                        None
                    } else {
                        Some(m.bits(row)?)
                    });
                    out.cells.push(Vec::new());
                }
                SpillMetric::Complex(_, cells) => {
                    out.metrics.push(None);
                    out.cells.push(std::mem::take(&mut cells[row]));
                }
            }
        }
        Ok(())
    }
}

/// One dimension of the merge: the union dictionary (Java order, null
/// first) and, per input, the union rank of each of its ids.
struct MergedDimension<'a> {
    name: &'a str,
    ty: Option<NumType>,
    dictionary: Vec<Option<String>>,
    /// Per input: union rank of each id; None when the input lacks the
    /// dimension (its rows are null, rank 0).
    remap: Vec<Option<Vec<u32>>>,
}

/// An input's current row and its sort key, dimension by dimension: a
/// string dimension as its union ranks plus one, ended by 0 (so a list
/// that is a prefix of another sorts first, as in Druid's comparator), a
/// numeric dimension as (0, 0) for null or (1, the value in numeric order).
/// Comparing keys as flat lists compares rows dimension by dimension.
struct Head {
    row: InputRow,
    key: Vec<u64>,
}

/// Merge `inputs` (each sorted as a segment is, earlier persists first) and
/// hand every finished partition to `emit` in order.
pub fn merge(
    interval: (i64, i64),
    inputs: &mut [Box<dyn MergeInput + '_>],
    plan: &MergePlan,
    mut emit: impl FnMut(SegmentData) -> Result<()>,
) -> Result<()> {
    let dims = merged_dimensions(inputs, plan.dimensions, plan.dimension_types);
    let ops: Vec<Combine> = plan
        .aggregators
        .iter()
        .map(|a| match &a.kind {
            AggregatorKind::Numeric { op, .. } => Combine::Numeric(*op),
            AggregatorKind::FirstLast { last: false, .. } => Combine::First,
            AggregatorKind::FirstLast { last: true, .. } => Combine::Last,
            AggregatorKind::HyperUnique { .. } => Combine::Fold,
            _ => Combine::Numeric(AggOp::Sum),
        })
        .collect();
    let kinds: Vec<MetricKind> = (0..plan.aggregators.len())
        .map(|m| {
            inputs
                .first()
                .map_or(MetricKind::Numeric(NumericKind::Long), |i| i.metric_kind(m))
        })
        .collect();
    for (m, a) in plan.aggregators.iter().enumerate() {
        if inputs.iter().any(|i| i.metric_kind(m) != kinds[m]) {
            bail!(
                "metric {} has different types in different persists",
                a.name
            );
        }
    }

    let load = |input: &mut Box<dyn MergeInput + '_>, i: usize, row: usize| -> Result<Head> {
        let mut r = InputRow::default();
        input.read_row(row, &mut r)?;
        let mut key = Vec::with_capacity(2 * dims.len() + 2);
        for (d, dim) in dims.iter().enumerate() {
            match dim.ty {
                Some(ty) => match r.numbers[d] {
                    Some(bits) => key.extend([1, order_bits(ty, bits)]),
                    None => key.extend([0, 0]),
                },
                None => match (&dim.remap[i], r.present[d]) {
                    (Some(ranks), true) => {
                        for id in r.dimension_ids(d) {
                            let rank = ranks
                                .get(*id as usize)
                                .context("id outside its dictionary")?;
                            key.push(*rank as u64 + 1);
                        }
                        key.push(0);
                    }
                    // Absent: null (rank 0 of the union dictionary), ended.
                    _ => key.extend([1, 0]),
                },
            }
        }
        Ok(Head { row: r, key })
    };
    let mut pos = vec![0usize; inputs.len()];
    let mut heads: Vec<Option<Head>> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter_mut().enumerate() {
        heads.push(if input.num_rows() > 0 {
            Some(load(input, i, 0)?)
        } else {
            None
        });
    }
    let mut out = Partition::new(interval, dims.len(), &kinds);
    loop {
        // The smallest head; ties go to the earlier input (arrival order).
        let mut best: Option<usize> = None;
        for (i, h) in heads.iter().enumerate() {
            let Some(h) = h else { continue };
            if best.is_none_or(|b| {
                let bh = heads[b].as_ref().expect("best has a head");
                (h.row.time, &h.key).cmp(&(bh.row.time, &bh.key)) == Ordering::Less
            }) {
                best = Some(i);
            }
        }
        let Some(i) = best else { break };
        let head = heads[i].take().expect("best has a head");
        pos[i] += 1;
        if pos[i] < inputs[i].num_rows() {
            heads[i] = Some(load(&mut inputs[i], i, pos[i])?);
        }
        let same_as_last = plan.rollup
            && out.len() > 0
            && out.times.last() == Some(&head.row.time)
            && out.last_key == head.key;
        if same_as_last {
            out.combine_last(&head.row, &ops)?;
            continue;
        }
        if out.len() >= plan.max_rows_per_segment {
            let full = std::mem::replace(&mut out, Partition::new(interval, dims.len(), &kinds));
            emit(full.finish(&dims, plan))?;
        }
        out.push(&head, &dims);
    }
    if out.len() > 0 {
        emit(out.finish(&dims, plan))?;
    }
    Ok(())
}

fn merged_dimensions<'a>(
    inputs: &[Box<dyn MergeInput + '_>],
    names: &'a [String],
    types: &[Option<NumType>],
) -> Vec<MergedDimension<'a>> {
    names
        .iter()
        .zip(types)
        .enumerate()
        .map(|(d, (name, ty))| {
            let mut dictionary: Vec<Option<String>> = Vec::new();
            if inputs.iter().any(|i| i.dictionary(d).is_none()) {
                dictionary.push(None);
            }
            for input in inputs {
                if let Some(values) = input.dictionary(d) {
                    dictionary.extend(values.iter().cloned());
                }
            }
            dictionary.sort_by(|a, b| java_cmp_nullable(a.as_deref(), b.as_deref()));
            dictionary.dedup();
            let remap = inputs
                .iter()
                .map(|input| {
                    input.dictionary(d).map(|values| {
                        // Both lists are sorted: one forward walk remaps them.
                        let mut ranks = Vec::with_capacity(values.len());
                        let mut at = 0;
                        for v in values {
                            while dictionary[at] != *v {
                                at += 1;
                            }
                            ranks.push(at as u32);
                        }
                        ranks
                    })
                })
                .collect();
            MergedDimension {
                name,
                ty: *ty,
                dictionary,
                remap,
            }
        })
        .collect()
}

/// Rows of the partition being filled, dimension values as union ranks,
/// metrics as bits.
struct Partition {
    interval: (i64, i64),
    times: Vec<i64>,
    /// Per string dimension: every row's union ranks, and where each row
    /// ends in them.
    ranks: Vec<Vec<u32>>,
    rank_ends: Vec<Vec<u32>>,
    /// Per numeric dimension: values as bits (null: None).
    numbers: Vec<Vec<Option<u64>>>,
    last_key: Vec<u64>,
    kinds: Vec<MetricKind>,
    metrics: Vec<Vec<Option<u64>>>,
    /// Per complex metric, its cells (empty lists for numeric metrics).
    cells: Vec<Vec<Vec<u8>>>,
}

impl Partition {
    fn new(interval: (i64, i64), dims: usize, kinds: &[MetricKind]) -> Partition {
        Partition {
            interval,
            times: Vec::new(),
            ranks: vec![Vec::new(); dims],
            rank_ends: vec![Vec::new(); dims],
            numbers: vec![Vec::new(); dims],
            last_key: Vec::new(),
            kinds: kinds.to_vec(),
            metrics: vec![Vec::new(); kinds.len()],
            cells: vec![Vec::new(); kinds.len()],
        }
    }

    fn len(&self) -> usize {
        self.times.len()
    }

    fn push(&mut self, head: &Head, dims: &[MergedDimension]) {
        self.times.push(head.row.time);
        // Walk the key: it holds each string dimension's ranks.
        let mut at = 0;
        for (d, dim) in dims.iter().enumerate() {
            match dim.ty {
                Some(_) => {
                    self.numbers[d].push(head.row.numbers[d]);
                    at += 2;
                }
                None => {
                    while head.key[at] != 0 {
                        self.ranks[d].push(head.key[at] as u32 - 1);
                        at += 1;
                    }
                    self.rank_ends[d].push(self.ranks[d].len() as u32);
                    at += 1;
                }
            }
        }
        self.last_key.clone_from(&head.key);
        for (m, v) in head.row.metrics.iter().enumerate() {
            self.metrics[m].push(*v);
            if let MetricKind::Complex(_) = self.kinds[m] {
                self.cells[m].push(head.row.cells[m].clone());
            }
        }
    }

    /// Roll an input row into the last row, as the index rolls up inputs.
    fn combine_last(&mut self, row: &InputRow, ops: &[Combine]) -> Result<()> {
        for (m, incoming) in row.metrics.iter().enumerate() {
            let kind = match self.kinds[m] {
                MetricKind::Complex(_) => {
                    let last = self.cells[m].last_mut().expect("a row");
                    combine_cells(ops[m], last, &row.cells[m])?;
                    continue;
                }
                MetricKind::Numeric(kind) => kind,
            };
            let Combine::Numeric(op) = ops[m] else {
                bail!("a numeric metric with a complex rule");
            };
            let Some(x) = *incoming else { continue };
            let last = self.metrics[m].last_mut().expect("a row");
            *last = Some(match *last {
                None => x,
                Some(acc) => combine(kind, op, acc, x),
            });
        }
        Ok(())
    }

    fn finish(self, dims: &[MergedDimension], plan: &MergePlan) -> SegmentData {
        let mut dimensions = Vec::new();
        let mut numeric_dimensions = Vec::new();
        for (((dim, ranks), ends), numbers) in dims
            .iter()
            .zip(&self.ranks)
            .zip(&self.rank_ends)
            .zip(&self.numbers)
        {
            if let Some(ty) = dim.ty {
                // A dimension with no value in this partition is not stored.
                if numbers.iter().all(Option::is_none) {
                    continue;
                }
                numeric_dimensions.push(NumericDimension {
                    position: dimensions.len() + numeric_dimensions.len(),
                    column: numeric_column(dim.name, ty, numbers.iter().copied()),
                });
                continue;
            }
            let mut used = vec![false; dim.dictionary.len()];
            for &r in ranks {
                used[r as usize] = true;
            }
            let mut new_id = vec![0u32; used.len()];
            let mut dictionary = Vec::new();
            for (rank, _) in used.iter().enumerate().filter(|(_, u)| **u) {
                new_id[rank] = dictionary.len() as u32;
                dictionary.push(dim.dictionary[rank].clone());
            }
            // A dimension with no value in this partition is not stored.
            if dictionary.iter().all(Option::is_none) {
                continue;
            }
            // Multi-value when any row holds other than one value.
            let single = ends.len() == ranks.len()
                && ends.iter().enumerate().all(|(i, e)| *e as usize == i + 1);
            let mut offsets = vec![0u32];
            offsets.extend_from_slice(ends);
            dimensions.push(StringColumn {
                name: dim.name.to_string(),
                offsets: (!single).then_some(offsets),
                dictionary,
                ids: ranks.iter().map(|&r| new_id[r as usize]).collect(),
            });
        }
        let metrics = self
            .metrics
            .into_iter()
            .zip(self.cells)
            .zip(&self.kinds)
            .zip(plan.aggregators)
            .map(|(((values, cells), kind), a)| {
                let kind = match kind {
                    MetricKind::Complex(k) => {
                        return MetricColumn {
                            name: a.name.clone(),
                            nulls: RoaringBitmap::new(),
                            values: NumericValues::Complex(*k, cells),
                        };
                    }
                    MetricKind::Numeric(k) => k,
                };
                MetricColumn {
                    name: a.name.clone(),
                    nulls: values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_none())
                        .map(|(i, _)| i as u32)
                        .collect::<RoaringBitmap>(),
                    values: match kind {
                        NumericKind::Long => NumericValues::Long(
                            values.iter().map(|v| v.unwrap_or(0) as i64).collect(),
                        ),
                        NumericKind::Double => NumericValues::Double(
                            values
                                .iter()
                                .map(|v| f64::from_bits(v.unwrap_or(0)))
                                .collect(),
                        ),
                        NumericKind::Float => NumericValues::Float(
                            values
                                .iter()
                                .map(|v| f32::from_bits(v.unwrap_or(0) as u32))
                                .collect(),
                        ),
                    },
                }
            })
            .collect();
        SegmentData {
            interval: self.interval,
            numeric_dimensions,
            times: self.times,
            dimensions,
            metrics,
            metadata: Some(plan.metadata.clone()),
        }
    }
}

/// Roll an incoming complex cell into the accumulated one: collectors
/// fold; pairs keep the earliest (first) or the latest-or-equal (last) time,
/// as Druid's first/last combiners do; an empty cell is nothing yet.
fn combine_cells(rule: Combine, acc: &mut Vec<u8>, incoming: &[u8]) -> Result<()> {
    match rule {
        Combine::Fold => {
            let mut a = Hll::from_bytes(acc).map_err(anyhow::Error::msg)?;
            a.fold(&Hll::from_bytes(incoming).map_err(anyhow::Error::msg)?);
            *acc = a.to_bytes();
        }
        Combine::First | Combine::Last => {
            let Some((t_in, _)) = read_pair(incoming) else {
                return Ok(());
            };
            let take = match read_pair(acc) {
                None => true,
                Some((t_acc, _)) => match rule {
                    Combine::First => t_in < t_acc,
                    _ => t_in >= t_acc,
                },
            };
            if take {
                acc.clear();
                acc.extend_from_slice(incoming);
            }
        }
        Combine::Numeric(_) => bail!("a complex metric with a numeric rule"),
    }
    Ok(())
}

/// Combine two non-null values (as bits) of one metric.
fn combine(kind: NumericKind, op: AggOp, acc: u64, x: u64) -> u64 {
    match kind {
        NumericKind::Long => {
            let (a, b) = (acc as i64, x as i64);
            (match op {
                AggOp::Sum => a.wrapping_add(b),
                AggOp::Min => a.min(b),
                AggOp::Max => a.max(b),
            }) as u64
        }
        NumericKind::Double => {
            let (a, b) = (f64::from_bits(acc), f64::from_bits(x));
            (match op {
                AggOp::Sum => a + b,
                AggOp::Min if b < a => b,
                AggOp::Max if b > a => b,
                _ => a,
            })
            .to_bits()
        }
        NumericKind::Float => {
            let (a, b) = (f32::from_bits(acc as u32), f32::from_bits(x as u32));
            (match op {
                AggOp::Sum => a + b,
                AggOp::Min if b < a => b,
                AggOp::Max if b > a => b,
                _ => a,
            })
            .to_bits() as u64
        }
    }
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
            fields: vec![name.into()],
            expression: None,
            filter: None,
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
            dimension_types: &[None],
            aggregators: &aggs,
            rollup,
            max_rows_per_segment: max_rows,
            metadata: &metadata,
        };
        let mut out = Vec::new();
        let mut boxed: Vec<Box<dyn MergeInput>> = inputs
            .iter()
            .map(|d| Box::new(MemoryInput::new(d, &plan).unwrap()) as Box<dyn MergeInput>)
            .collect();
        merge((0, 100), &mut boxed, &plan, |s| {
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
