//! Write then read: random segments (unicode with supplementary characters,
//! nulls, empty strings, multi-value rows, extreme numbers, NaN) under every
//! index spec the writer supports come back as they went in. Druid stores
//! NaN in double and float columns as it is, so NaN is written bit for bit.

use kinesis_peon::java::java_cmp_nullable;
use kinesis_peon::segment::reader::{self, read_segment};
use kinesis_peon::segment::writer::write_segment_dir;
use kinesis_peon::segment::*;
use kinesis_peon::spec::{Compression, LongEncoding, ResolvedIndexSpec};
use proptest::prelude::*;
use roaring::RoaringBitmap;

fn string_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(String::new())),
        6 => "[a-c\u{e9}\u{ffff}\u{10000}\u{1f600}]{0,4}".prop_map(Some),
    ]
}

/// A string column from row values: dictionary sorted in Java order, null first.
fn column(name: &str, rows: &[Option<String>]) -> StringColumn {
    let mut dictionary: Vec<Option<String>> = rows.to_vec();
    dictionary.sort_by(|a, b| java_cmp_nullable(a.as_deref(), b.as_deref()));
    dictionary.dedup();
    let ids = rows
        .iter()
        .map(|v| dictionary.iter().position(|d| d == v).unwrap() as u32)
        .collect();
    StringColumn {
        name: name.into(),
        offsets: None,
        dictionary,
        ids,
    }
}

/// A multi-value column: each row's values sorted (SORTED_ARRAY), an empty
/// row holding no ids and adding null to the dictionary, as Druid does.
fn multi_column(name: &str, rows: &[Vec<Option<String>>]) -> StringColumn {
    let mut dictionary: Vec<Option<String>> = rows.iter().flatten().cloned().collect();
    if rows.iter().any(Vec::is_empty) {
        dictionary.push(None);
    }
    dictionary.sort_by(|a, b| java_cmp_nullable(a.as_deref(), b.as_deref()));
    dictionary.dedup();
    let mut ids = Vec::new();
    let mut offsets = vec![0u32];
    for row in rows {
        let mut row = row.clone();
        row.sort_by(|a, b| java_cmp_nullable(a.as_deref(), b.as_deref()));
        for v in &row {
            ids.push(dictionary.iter().position(|d| d == v).unwrap() as u32);
        }
        offsets.push(ids.len() as u32);
    }
    StringColumn {
        name: name.into(),
        dictionary,
        ids,
        offsets: Some(offsets),
    }
}

/// Metrics with float values as bits, so NaN compares equal to itself.
fn metric_bits(metrics: &[MetricColumn]) -> Vec<(String, Vec<u64>, RoaringBitmap)> {
    metrics
        .iter()
        .map(|m| {
            let bits = match &m.values {
                NumericValues::Long(v) => v.iter().map(|x| *x as u64).collect(),
                NumericValues::Double(v) => v.iter().map(|x| x.to_bits()).collect(),
                NumericValues::Float(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
                NumericValues::Complex(..) => panic!("no complex metrics here"),
            };
            (m.name.clone(), bits, m.nulls.clone())
        })
        .collect()
}

fn metric(name: &str, values: NumericValues, null_rows: &[bool]) -> MetricColumn {
    let mut nulls = RoaringBitmap::new();
    // A null row's slot holds 0, as Druid writes it.
    let values = match values {
        NumericValues::Long(v) => NumericValues::Long(
            v.iter()
                .zip(null_rows)
                .map(|(x, n)| if *n { 0 } else { *x })
                .collect(),
        ),
        NumericValues::Double(v) => NumericValues::Double(
            v.iter()
                .zip(null_rows)
                .map(|(x, n)| if *n { 0.0 } else { *x })
                .collect(),
        ),
        NumericValues::Float(v) => NumericValues::Float(
            v.iter()
                .zip(null_rows)
                .map(|(x, n)| if *n { 0.0 } else { *x })
                .collect(),
        ),
        other => other,
    };
    for (i, n) in null_rows.iter().enumerate() {
        if *n {
            nulls.insert(i as u32);
        }
    }
    MetricColumn {
        name: name.into(),
        values,
        nulls,
    }
}

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(-1e300),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        -1e12f64..1e12
    ]
}

fn finite_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(0.0f32),
        Just(f32::MAX),
        Just(-f32::MIN_POSITIVE),
        Just(f32::NAN),
        -1e6f32..1e6
    ]
}

fn long() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0i64),
        -5i64..5,
        any::<i64>()
    ]
}

prop_compose! {
    fn segment()(n in 1usize..200)(
        times in proptest::collection::vec(0i64..86_400_000, n),
        a in proptest::collection::vec(string_value(), n),
        b in proptest::collection::vec(string_value(), n),
        multi in proptest::collection::vec(proptest::collection::vec(string_value(), 0..4), n),
        longs in proptest::collection::vec(long(), n),
        doubles in proptest::collection::vec(finite_f64(), n),
        floats in proptest::collection::vec(finite_f32(), n),
        null_rows in proptest::collection::vec(any::<bool>(), n),
    ) -> SegmentData {
        let mut times = times;
        times.sort();
        let mut dimensions = Vec::new();
        for (name, rows) in [("a", &a), ("b", &b)] {
            // A dimension with no value at all is not stored.
            if rows.iter().any(Option::is_some) {
                dimensions.push(column(name, rows));
            }
        }
        if multi.iter().flatten().any(Option::is_some) {
            dimensions.push(multi_column("m", &multi));
        }
        // A long dimension first and a float dimension last, around the
        // string ones, as a dimensionsSpec may mix them.
        let numeric_dimensions = vec![
            NumericDimension {
                position: 0,
                column: metric("nl", NumericValues::Long(longs.clone()), &null_rows),
            },
            NumericDimension {
                position: dimensions.len() + 1,
                column: metric("nf", NumericValues::Float(floats.clone()), &null_rows),
            },
        ];
        SegmentData {
            interval: (0, 86_400_000),
            numeric_dimensions,
            times,
            dimensions,
            metrics: vec![
                metric("l", NumericValues::Long(longs), &null_rows),
                metric("d", NumericValues::Double(doubles), &null_rows),
                metric("f", NumericValues::Float(floats.clone()), &vec![false; floats.len()]),
            ],
            metadata: Some(serde_json::json!({"rollup": false})),
        }
    }
}

fn specs() -> Vec<ResolvedIndexSpec> {
    let mut out = Vec::new();
    for dimension_compression in [
        Compression::Lz4,
        Compression::Lzf,
        Compression::Uncompressed,
    ] {
        for metric_compression in [
            Compression::Lz4,
            Compression::Lzf,
            Compression::Uncompressed,
            Compression::None,
        ] {
            for long_encoding in [LongEncoding::Longs, LongEncoding::Auto] {
                out.push(ResolvedIndexSpec {
                    dimension_compression,
                    metric_compression,
                    long_encoding,
                    run_compression: long_encoding == LongEncoding::Auto,
                });
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn segments_read_back_as_written(data in segment()) {
        let dir = tempfile::tempdir().unwrap();
        for (i, spec) in specs().into_iter().enumerate() {
            let path = dir.path().join(i.to_string());
            write_segment_dir(&path, &data, &spec).unwrap();
            let (_, back) = read_segment(&path).unwrap();
            prop_assert_eq!(&back.times, &data.times);
            prop_assert_eq!(&back.dimensions, &data.dimensions);
            prop_assert_eq!(back.dimension_names(), data.dimension_names());
            let numeric = |d: &SegmentData| metric_bits(&d.numeric_dimensions.iter().map(|n| n.column.clone()).collect::<Vec<_>>());
            prop_assert_eq!(numeric(&back), numeric(&data));
            let mut want = data.metrics.clone();
            want.sort_by(|x, y| x.name.cmp(&y.name));
            prop_assert_eq!(metric_bits(&back.metrics), metric_bits(&want), "{:?}", spec);
            prop_assert_eq!(&back.metadata, &data.metadata);
        }
    }
}

#[test]
fn three_byte_ids_round_trip() {
    // 70,000 distinct values need 3-byte ids and several id blocks.
    let rows: Vec<Option<String>> = (0..70_000).map(|i| Some(format!("v{i:06}"))).collect();
    let data = SegmentData {
        interval: (0, 10),
        numeric_dimensions: Vec::new(),
        times: vec![5; rows.len()],
        dimensions: vec![column("big", &rows)],
        metrics: vec![],
        metadata: None,
    };
    let dir = tempfile::tempdir().unwrap();
    for compression in [Compression::Lz4, Compression::Uncompressed] {
        let spec = ResolvedIndexSpec {
            dimension_compression: compression,
            ..Default::default()
        };
        let path = dir.path().join(format!("{compression:?}"));
        write_segment_dir(&path, &data, &spec).unwrap();
        let (_, back) = read_segment(&path).unwrap();
        assert_eq!(back.dimensions, data.dimensions, "{compression:?}");
    }
}

/// No Druid-written multi-value column was captured; these are the layouts
/// of spec 6.5 (VSizeColumnarMultiInts and V3CompressedVSizeColumnarMultiInts)
/// spelled out byte by byte.
#[test]
fn multi_value_layouts_follow_the_spec() {
    use kinesis_peon::segment::bytes::{write_prefixed_string, write_string_list};
    use kinesis_peon::segment::writer::string_column;
    let col = multi_column(
        "tags",
        &[
            vec![Some("b".into()), Some("a".into())],
            vec![],
            vec![Some("b".into())],
        ],
    );
    assert_eq!(col.ids, [1, 2, 2]);
    assert_eq!(col.offsets.as_deref(), Some(&[0, 2, 2, 3][..]));

    let mut head = Vec::new();
    write_prefixed_string(&mut head, MULTI_STRING_DESCRIPTOR);
    let dictionary = [None, Some("a"), Some("b")];

    let uncompressed = string_column(&col, Compression::Uncompressed).unwrap();
    let mut want = head.clone();
    want.push(1); // part version 1: uncompressed multi-value, no flags word
    write_string_list(&mut want, &dictionary);
    want.extend_from_slice(&[1, 1]); // VSizeColumnarMultiInts, 1-byte ids
    want.extend_from_slice(&22i32.to_be_bytes()); // 4 + 4*3 rows + 3 ids + 3 padding
    want.extend_from_slice(&3i32.to_be_bytes());
    for end in [2i32, 2, 3] {
        want.extend_from_slice(&end.to_be_bytes());
    }
    want.extend_from_slice(&[1, 2, 2, 0, 0, 0]);
    assert_eq!(&uncompressed[..want.len()], &want[..]);

    let compressed = string_column(&col, Compression::Lz4).unwrap();
    let mut want = head;
    want.push(2); // part version 2
    want.extend_from_slice(&2i32.to_be_bytes()); // flag MULTI_VALUE_V3
    write_string_list(&mut want, &dictionary);
    want.push(3); // V3 multi-ints
    want.push(2); // offsets: CompressedColumnarInts version 2
    want.extend_from_slice(&4i32.to_be_bytes()); // rows + 1 offsets
    want.extend_from_slice(&16384i32.to_be_bytes());
    want.push(1); // LZ4
    assert_eq!(&compressed[..want.len()], &want[..]);

    // Both read back to the same rows; the empty row is in null's bitmap.
    for bytes in [&uncompressed, &compressed] {
        let Ok(kinesis_peon::segment::reader::Column::String(back)) =
            kinesis_peon::segment::reader::read_column("tags", bytes)
        else {
            panic!("not a string column");
        };
        assert_eq!(back, col);
        let bitmaps = kinesis_peon::segment::reader::read_bitmaps("tags", bytes).unwrap();
        let rows: Vec<Vec<u32>> = bitmaps.iter().map(|(_, b)| b.iter().collect()).collect();
        assert_eq!(rows, vec![vec![1], vec![0], vec![0, 2]]);
    }
}

/// bitmap.compressRunOnSerialization: long runs of equal values are stored
/// as run containers (cookie 12347) when on, as arrays when off; both read
/// back to the same rows.
#[test]
fn run_compressed_bitmaps_round_trip() {
    use kinesis_peon::segment::reader::{read_bitmaps, read_column};
    use kinesis_peon::segment::writer::string_column_with;
    let rows: Vec<Option<String>> = (0..3000)
        .map(|i| Some(if !(1000..2500).contains(&i) { "a" } else { "b" }.to_string()))
        .collect();
    let col = column("runs", &rows);
    let run_cookie = [0x3b, 0x30];
    for run_compression in [true, false] {
        let bytes = string_column_with(&col, Compression::Lz4, run_compression).unwrap();
        let has_run_cookie = bytes.windows(2).any(|w| w == run_cookie);
        assert_eq!(has_run_cookie, run_compression);
        let Ok(reader::Column::String(back)) = read_column("runs", &bytes) else {
            panic!("not a string column");
        };
        assert_eq!(back, col);
        let bitmaps = read_bitmaps("runs", &bytes).unwrap();
        assert_eq!(bitmaps[0].1.len(), 1500);
        assert_eq!(bitmaps[1].1.iter().next(), Some(1000));
    }
}

/// LZF blocks as compress-lzf frames them: a full 64 KiB block needs two
/// chunks (65,535 + 1 bytes); incompressible bytes go in stored chunks.
#[test]
fn lzf_chunks_round_trip() {
    use kinesis_peon::segment::bytes::{lzf_decode, lzf_encode};
    let repetitive: Vec<u8> = (0..65_536u32).map(|i| (i / 700) as u8).collect();
    let mut noise = Vec::with_capacity(5000);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push(x as u8);
    }
    for (raw, chunks) in [(&repetitive, 2), (&noise, 1)] {
        let encoded = lzf_encode(raw);
        let signatures = encoded.windows(2).filter(|w| w == b"ZV").count();
        assert!(signatures >= chunks);
        assert_eq!(&encoded[..2], b"ZV");
        let stored = encoded[2] == 0;
        assert_eq!(
            stored,
            raw.len() == 5000,
            "noise is stored, runs compressed"
        );
        let mut back = vec![0u8; raw.len()];
        lzf_decode(&encoded, &mut back).unwrap();
        assert_eq!(&back, raw);
        // One byte short or long is an error, not a panic.
        assert!(lzf_decode(&encoded, &mut vec![0u8; raw.len() - 1]).is_err());
        assert!(lzf_decode(&encoded[..encoded.len() - 1], &mut back).is_err());
    }
}

/// The merge's block-by-block disk cursors read what the whole-segment
/// reader reads, under every index spec (blocks, contiguous windows,
/// table and delta encodings), over several blocks.
/// 20,000 rows of a string column and long, double and float metrics.
fn cursor_data() -> SegmentData {
    let n = 20_000usize;
    let strings: Vec<Option<String>> = (0..n)
        .map(|i| (i % 7 != 0).then(|| format!("v{}", (i * 31) % 300)))
        .collect();
    let few: Vec<i64> = (0..n).map(|i| (i % 5) as i64 * 1000 - 7).collect();
    let many: Vec<i64> = (0..n)
        .map(|i| (i as i64 * 7919) % 1_000_003 - 500_000)
        .collect();
    let doubles: Vec<f64> = (0..n).map(|i| i as f64 / 3.0).collect();
    let floats: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let nulls: Vec<bool> = (0..n).map(|i| i % 11 == 0).collect();
    SegmentData {
        interval: (0, 86_400_000),
        numeric_dimensions: Vec::new(),
        times: (0..n as i64).map(|i| i * 4000).collect(),
        dimensions: vec![column("s", &strings)],
        metrics: vec![
            metric("few", NumericValues::Long(few), &nulls),
            metric("many", NumericValues::Long(many), &vec![false; n]),
            metric("d", NumericValues::Double(doubles), &nulls),
            metric("f", NumericValues::Float(floats), &vec![false; n]),
        ],
        metadata: None,
    }
}

#[test]
fn disk_cursors_read_every_layout() {
    let data = cursor_data();
    let dir = tempfile::tempdir().unwrap();
    for (i, spec) in specs().into_iter().enumerate() {
        let path = dir.path().join(i.to_string());
        write_segment_dir(&path, &data, &spec).unwrap();
        check_cursors(&path, &data, &spec);
    }
}

/// The merge's block cursors read back every column of `data` from `path`.
fn check_cursors(path: &std::path::Path, data: &SegmentData, spec: &ResolvedIndexSpec) {
    use kinesis_peon::segment::cursor::DiskSegment;
    let n = data.num_rows();
    {
        let segment = DiskSegment::open(path).unwrap();
        let mut time = segment.numeric("__time").unwrap();
        let mut s = segment.strings("s").unwrap();
        assert_eq!(s.dictionary, data.dimensions[0].dictionary, "{spec:?}");
        // Backwards as well as forwards: blocks are fetched on demand.
        for row in (0..n).rev().step_by(997).chain(0..n) {
            assert_eq!(time.bits(row).unwrap() as i64, data.times[row], "{spec:?}");
            assert_eq!(s.id(row).unwrap(), data.dimensions[0].ids[row], "{spec:?}");
        }
        for m in &data.metrics {
            let mut cursor = segment.numeric(&m.name).unwrap();
            assert_eq!(cursor.nulls, m.nulls, "{} {spec:?}", m.name);
            for row in 0..n {
                let want = match &m.values {
                    NumericValues::Long(v) => v[row] as u64,
                    NumericValues::Double(v) => v[row].to_bits(),
                    NumericValues::Float(v) => v[row].to_bits() as u64,
                    NumericValues::Complex(..) => panic!("no complex metrics here"),
                };
                assert_eq!(
                    cursor.bits(row).unwrap(),
                    want,
                    "{} row {row} {spec:?}",
                    m.name
                );
            }
        }
    }
}

/// A segment past the chunk limit is smooshed into several chunk files as
/// Druid's FileSmoosher does (entries in write order, a new chunk when the
/// next entry does not fit the current one, no entry split), and both
/// readers (dump-segment's and the merge's cursors) read it back, from a
/// directory and from an index.zip. Below the limit the bytes do not change.
#[test]
fn segments_past_the_chunk_limit_are_smooshed_into_several_chunks() {
    use kinesis_peon::segment::reader::parse_meta_smoosh;
    use kinesis_peon::segment::writer::{SegmentZipper, build_segment, build_segment_chunked};
    let data = cursor_data();
    let dir = tempfile::tempdir().unwrap();
    for (i, spec) in specs().into_iter().enumerate() {
        let one = build_segment(&data, &spec).unwrap();
        assert_eq!(
            one,
            build_segment_chunked(&data, &spec, MAX_CHUNK_SIZE).unwrap(),
            "{spec:?}"
        );
        // A limit that holds the largest entry but not a third of them all.
        let (_, entries) =
            parse_meta_smoosh(&one.iter().find(|f| f.0 == "meta.smoosh").unwrap().1).unwrap();
        let largest = entries.iter().map(|e| e.end - e.start).max().unwrap();
        let total: usize = entries.iter().map(|e| e.end - e.start).sum();
        let limit = largest.max(total / 3 + 1) as i64;
        let files = build_segment_chunked(&data, &spec, limit).unwrap();
        let file = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap().1;
        let (chunks, entries) = parse_meta_smoosh(file("meta.smoosh")).unwrap();
        assert!(chunks >= 2, "{chunks} chunks under {spec:?}");
        let meta = String::from_utf8(file("meta.smoosh").clone()).unwrap();
        assert!(
            meta.starts_with(&format!("v1,{limit},{chunks}\n")),
            "{meta}"
        );
        // Rebuild the chunks from the entries, in the order written
        // (chunk, then start): each starts where the last ended and a new
        // chunk begins only when the entry would not fit the last one.
        let mut by_place: Vec<_> = entries.iter().collect();
        by_place.sort_by_key(|e| (e.chunk, e.start));
        let mut ends = vec![0usize; chunks];
        for e in &by_place {
            assert_eq!(
                e.start, ends[e.chunk],
                "{} starts where the last ended",
                e.name
            );
            if e.chunk > 0 && e.start == 0 {
                let size = e.end - e.start;
                assert!(
                    ends[e.chunk - 1] + size > limit as usize,
                    "{} fitted chunk {}",
                    e.name,
                    e.chunk - 1
                );
            }
            ends[e.chunk] = e.end;
        }
        for (n, end) in ends.iter().enumerate() {
            let chunk = file(&format!("{n:05}.smoosh"));
            assert_eq!(chunk.len(), *end);
            assert!(chunk.len() <= limit as usize);
        }

        let path = dir.path().join(i.to_string());
        std::fs::create_dir(&path).unwrap();
        for (name, bytes) in &files {
            std::fs::write(path.join(name), bytes).unwrap();
        }
        // What the one-chunk segment reads back as (the reader's normal form).
        let want = reader::read_segment_files(&reader::SegmentFiles::from_files(
            one.into_iter().collect(),
        ))
        .unwrap()
        .1;
        let (_, back) = read_segment(&path).unwrap();
        assert!(
            back == want,
            "{spec:?}: the chunked directory reads back otherwise"
        );
        check_cursors(&path, &data, &spec);
        let (zip, _) = SegmentZipper::default().zip(&files).unwrap();
        let zip_path = dir.path().join(format!("{i}.zip"));
        std::fs::write(&zip_path, zip).unwrap();
        let (_, back) = read_segment(&zip_path).unwrap();
        assert!(
            back == want,
            "{spec:?}: the chunked zip reads back otherwise"
        );
    }
    // One column larger than a whole chunk cannot be stored.
    let err = build_segment_chunked(&data, &specs()[0], 1024).unwrap_err();
    assert!(
        format!("{err:#}").contains("exceeds the smoosh chunk limit of 1024 bytes"),
        "{err:#}"
    );
}
