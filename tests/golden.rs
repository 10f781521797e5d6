//! The real Druid-written bytes in ../shared/fixtures/druid-golden: every
//! file reads back to the values its MANIFEST.md lists, and the layouts
//! whose bytes do not depend on the LZ4 compressor are written byte for byte.

mod common;

use kinesis_peon::segment::reader::{Column, read_column, read_index_drd};
use kinesis_peon::segment::writer::{index_drd, numeric_column, string_column};
use kinesis_peon::segment::*;
use kinesis_peon::spec::Compression;
use roaring::RoaringBitmap;

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(common::shared().join("fixtures/druid-golden").join(name)).unwrap()
}

fn longs(name: &str) -> Vec<i64> {
    match read_column(name, &golden(name)).unwrap() {
        Column::Numeric(NumericValues::Long(v), nulls) => {
            assert!(nulls.is_empty());
            v
        }
        _ => panic!("{name} is not a long column"),
    }
}

fn strings(name: &str) -> StringColumn {
    match read_column(name, &golden(name)).unwrap() {
        Column::String(s) => s,
        _ => panic!("{name} is not a string column"),
    }
}

const TIMES: [i64; 5] = [
    1704067200000,
    1704070800000,
    1704074400000,
    1704078000000,
    1704110400000,
];
const ADDED: [i64; 5] = [100, 50, 200, 150, 75];

#[test]
fn druid31_numeric_columns_read() {
    assert_eq!(longs("druid31_time.col"), TIMES);
    assert_eq!(longs("druid31_uncmp_time.col"), TIMES);
    assert_eq!(longs("druid31_added.col"), ADDED);
    assert_eq!(longs("druid31_muncmp_added.col"), ADDED);
    match read_column("d", &golden("druid31_added_d.col")).unwrap() {
        Column::Numeric(NumericValues::Double(v), _) => {
            assert_eq!(v, [100.0, 50.0, 200.0, 150.0, 75.0])
        }
        _ => panic!("double"),
    }
    match read_column("f", &golden("druid31_delta_f.col")).unwrap() {
        Column::Numeric(NumericValues::Float(v), _) => {
            assert_eq!(v, [90.0, 45.0, 180.0, 120.0, 50.0])
        }
        _ => panic!("float"),
    }
}

#[test]
fn druid27_legacy_columns_read() {
    let times: Vec<i64> = (0..10).map(|h| 1704070800000 + h * 3_600_000).collect();
    assert_eq!(longs("druid27_time.col"), times);
    assert_eq!(
        longs("druid27_value.col"),
        [10, 20, 30, 5, 40, 0, 15, 25, 0, 50]
    );
    match read_column("d", &golden("druid27_dval_sum.col")).unwrap() {
        Column::Numeric(NumericValues::Double(v), _) => {
            assert_eq!(v, [1.5, -2.25, std::f64::consts::PI, 0.0, 12345678.90625])
        }
        _ => panic!("double"),
    }
    match read_column("f", &golden("druid27_fval_sum.col")).unwrap() {
        Column::Numeric(NumericValues::Float(v), _) => {
            assert_eq!(v, [1.5, -2.25, 3.75, 0.5, -123.625])
        }
        _ => panic!("float"),
    }
    // longEncoding auto: a table of 10 hourly times, a delta of 300 values.
    let auto: Vec<i64> = (0..10).map(|h| 1709339400000 + h * 3_600_000).collect();
    assert_eq!(longs("druid27_auto_time.col"), auto);
    assert_eq!(
        longs("druid27_delta_lval.col"),
        (500..800).collect::<Vec<i64>>()
    );
}

fn page_rows() -> Vec<&'static str> {
    vec![
        "Main_Page",
        "Talk:Main_Page",
        "Accueil",
        "Hauptseite",
        "Main_Page",
    ]
}

#[test]
fn druid31_string_columns_read() {
    for name in ["druid31_page.col", "druid31_uncmp_page.col"] {
        let col = strings(name);
        let dict: Vec<&str> = col
            .dictionary
            .iter()
            .map(|v| v.as_deref().unwrap())
            .collect();
        assert_eq!(
            dict,
            ["Accueil", "Hauptseite", "Main_Page", "Talk:Main_Page"]
        );
        assert_eq!(col.ids, [2, 3, 0, 1, 2]);
    }
    let lang = strings("druid31_language.col");
    assert_eq!(lang.ids, [1, 1, 2, 0, 1]);
    for name in ["druid31_hicard_page.col", "druid31_hicard_u_page.col"] {
        let col = strings(name);
        assert_eq!(col.dictionary.len(), 400);
        assert_eq!(col.dictionary[399].as_deref(), Some("page_399"));
        assert_eq!(col.ids, (0..400).collect::<Vec<u32>>());
    }
    let bitmaps =
        kinesis_peon::segment::reader::read_bitmaps("page", &golden("druid31_page.col")).unwrap();
    let rows: Vec<Vec<u32>> = bitmaps.iter().map(|(_, b)| b.iter().collect()).collect();
    assert_eq!(rows, vec![vec![2], vec![3], vec![0, 4], vec![1]]);
}

fn page_column(rows: &[&str]) -> StringColumn {
    let mut dict: Vec<&str> = rows.to_vec();
    dict.sort();
    dict.dedup();
    StringColumn {
        name: "page".into(),
        offsets: None,
        ids: rows
            .iter()
            .map(|r| dict.iter().position(|d| d == r).unwrap() as u32)
            .collect(),
        dictionary: dict.into_iter().map(|d| Some(d.to_string())).collect(),
    }
}

#[test]
fn uncompressed_layouts_are_written_byte_for_byte() {
    let none = RoaringBitmap::new();
    let added = numeric_column(
        LONG_DESCRIPTOR,
        &NumericValues::Long(ADDED.to_vec()),
        &none,
        Compression::Uncompressed,
    )
    .unwrap();
    assert_eq!(added, golden("druid31_muncmp_added.col"));
    let time = numeric_column(
        LONG_DESCRIPTOR,
        &NumericValues::Long(TIMES.to_vec()),
        &none,
        Compression::None,
    )
    .unwrap();
    assert_eq!(time, golden("druid31_uncmp_time.col"));
    let page = string_column(&page_column(&page_rows()), Compression::Uncompressed).unwrap();
    assert_eq!(page, golden("druid31_uncmp_page.col"));
    let hicard: Vec<String> = (0..400).map(|i| format!("page_{i:03}")).collect();
    let hicard_refs: Vec<&str> = hicard.iter().map(String::as_str).collect();
    let page = string_column(&page_column(&hicard_refs), Compression::Uncompressed).unwrap();
    assert_eq!(page, golden("druid31_hicard_u_page.col"));
}

#[test]
fn lz4_layouts_match_druid_up_to_the_compressor() {
    let none = RoaringBitmap::new();
    // Headers and framing are Druid's; block payloads may differ from
    // Druid's LZ4-HC output but must decode to the same values.
    for (ours, name) in [
        (
            numeric_column(
                LONG_DESCRIPTOR,
                &NumericValues::Long(ADDED.to_vec()),
                &none,
                Compression::Lz4,
            )
            .unwrap(),
            "druid31_added.col",
        ),
        (
            numeric_column(
                LONG_DESCRIPTOR,
                &NumericValues::Long(TIMES.to_vec()),
                &none,
                Compression::Lz4,
            )
            .unwrap(),
            "druid31_time.col",
        ),
        (
            string_column(&page_column(&page_rows()), Compression::Lz4).unwrap(),
            "druid31_page.col",
        ),
    ] {
        let theirs = golden(name);
        let header = 4 + LONG_DESCRIPTOR.len().min(STRING_DESCRIPTOR.len());
        assert_eq!(ours[..header], theirs[..header], "{name}: descriptor");
        let (a, b) = (
            read_column(name, &ours).unwrap(),
            read_column(name, &theirs).unwrap(),
        );
        match (a, b) {
            (Column::Numeric(x, _), Column::Numeric(y, _)) => assert_eq!(x, y, "{name}"),
            (Column::String(x), Column::String(y)) => assert_eq!(x, y, "{name}"),
            _ => panic!("{name}: kinds differ"),
        }
    }
    // The string column's id block is all literals, so even its bytes match.
    assert_eq!(
        string_column(&page_column(&page_rows()), Compression::Lz4).unwrap(),
        golden("druid31_page.col")
    );
}

#[test]
fn index_drd_is_written_byte_for_byte() {
    let golden_bytes = golden("druid31_index.drd");
    let drd = read_index_drd(&golden_bytes).unwrap();
    assert_eq!(
        drd.dimensions,
        ["page", "user", "language", "city", "namespace", "channel"]
    );
    assert_eq!(drd.interval, (1704067200000, 1704153600000));
    let data = SegmentData {
        interval: drd.interval,
        numeric_dimensions: Vec::new(),
        times: vec![],
        dimensions: drd
            .dimensions
            .iter()
            .map(|d| StringColumn {
                name: d.clone(),
                offsets: None,
                dictionary: vec![],
                ids: vec![],
            })
            .collect(),
        // Given out of order: Druid sorts metric names.
        metrics: ["delta", "count", "added", "deleted"]
            .iter()
            .map(|m| MetricColumn {
                name: m.to_string(),
                values: NumericValues::Long(vec![]),
                nulls: RoaringBitmap::new(),
            })
            .collect(),
        metadata: None,
    };
    assert_eq!(index_drd(&data).unwrap(), golden_bytes);
}

#[test]
fn corrupt_golden_bytes_give_errors_not_panics() {
    for name in [
        "druid31_page.col",
        "druid31_added.col",
        "druid31_time.col",
        "druid31_hicard_page.col",
    ] {
        let bytes = golden(name);
        for cut in 0..bytes.len() {
            let _ = read_column(name, &bytes[..cut]);
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let _ = read_column(name, &b);
        }
        assert!(
            read_column(name, &bytes[..bytes.len() - 1]).is_err(),
            "{name}: truncation detected"
        );
    }
}

/// The supplier bytes of a legacy (V1) long column: everything after the descriptor.
fn legacy_supplier(name: &str) -> Vec<u8> {
    let bytes = golden(name);
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    bytes[4 + len..].to_vec()
}

#[test]
fn long_encoding_auto_is_written_as_druid_writes_it() {
    use kinesis_peon::segment::writer::numeric_column_encoded;
    use kinesis_peon::spec::LongEncoding;
    let none = RoaringBitmap::new();
    let supplier_of = |values: Vec<i64>, compression| {
        let col = numeric_column_encoded(
            LONG_DESCRIPTOR,
            &NumericValues::Long(values),
            &none,
            compression,
            LongEncoding::Auto,
        )
        .unwrap();
        // V2 part: descriptor, then [i32 size][supplier].
        col[4 + LONG_DESCRIPTOR.len() + 4..].to_vec()
    };
    // Table: 10 hourly times; the one block is all literals, so even the
    // LZ4 bytes equal Druid's.
    let times: Vec<i64> = (0..10).map(|h| 1709339400000 + h * 3_600_000).collect();
    assert_eq!(
        supplier_of(times.clone(), Compression::Lz4),
        legacy_supplier("druid27_auto_time.col")
    );
    // Delta: 300 values 500..799 in 12 bits; header and framing equal,
    // and the block decodes to the same values.
    let delta: Vec<i64> = (500..800).collect();
    let ours = supplier_of(delta.clone(), Compression::Lz4);
    let theirs = legacy_supplier("druid27_delta_lval.col");
    assert_eq!(ours[..24], theirs[..24], "delta header");
    for compression in [
        Compression::Lz4,
        Compression::Uncompressed,
        Compression::None,
    ] {
        for values in [
            times.clone(),
            delta.clone(),
            (0..70_000).map(|i| i * 3 - 100_000).collect(),
            vec![i64::MIN, i64::MAX],
        ] {
            let col = numeric_column_encoded(
                LONG_DESCRIPTOR,
                &NumericValues::Long(values.clone()),
                &none,
                compression,
                LongEncoding::Auto,
            )
            .unwrap();
            match read_column("x", &col).unwrap() {
                Column::Numeric(NumericValues::Long(back), _) => {
                    assert_eq!(back, values, "{compression:?}")
                }
                _ => panic!("long"),
            }
        }
    }
}
