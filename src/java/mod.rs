//! Java's and Druid's value semantics that several stages share, so that
//! each stage gets them from here rather than from another stage: Java's
//! string order, Java's number forms, Guava's murmur3 and Druid's
//! HyperLogLog collector. A leaf: it uses nothing of this crate.

pub mod hll;

use std::cmp::Ordering;

/// Java's `String.compareTo`: UTF-16 code unit order.
pub fn java_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Null sorts first, as in Druid's dictionaries.
pub fn java_cmp_nullable(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => java_cmp(a, b),
    }
}

/// Java's `Double.toString`: `1.0`, `0.001`, `1.0E7`, `1.5E-4`, `NaN`.
pub fn java_double_string(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let abs = d.abs();
    if (1e-3..1e7).contains(&abs) {
        let s = format!("{d}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        // Rust's shortest form `1.5e-4` → Java's `1.5E-4`, always with a fraction.
        let s = format!("{d:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// Java's `String.trim`: strips every char up to U+0020 (controls included)
/// from both ends, and nothing else (not Unicode spaces such as U+00A0).
pub fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// The length of Java's decimal float form at the start of `b`: digits with
/// an optional fraction (`1`, `1.`, `.5`) and exponent; ASCII digits only.
fn java_decimal_len(b: &[u8]) -> Option<usize> {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(0);
    let mut i = int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        frac = digits(i + 1);
        i += 1 + frac;
    }
    if int + frac == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let exp = digits(i + 1 + sign);
        if exp == 0 {
            return None;
        }
        i += 1 + sign + exp;
    }
    Some(i)
}

/// The part of `s` Rust's float parser should read, if `s` is in the form
/// Java's `Double.valueOf` and Guava's `Doubles.tryParse` accept (after any
/// trim): an optional sign, then `NaN`, `Infinity` or a decimal with an
/// optional `f`/`F`/`d`/`D` suffix. Hex floats (`0x1p3`) are not read
/// (a known difference). Rust's own spellings (`inf`, `nan`) are refused.
fn java_float_text(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let sign = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let body = &s[sign..];
    if body == "NaN" || body == "Infinity" {
        return Some(s);
    }
    let len = java_decimal_len(body.as_bytes())?;
    match &body.as_bytes()[len..] {
        [] => Some(s),
        [b'f' | b'F' | b'd' | b'D'] => Some(&s[..sign + len]),
        _ => None,
    }
}

/// Guava's `Doubles.tryParse` (and Java's `Double.valueOf` on trimmed text):
/// Java's decimal forms with an optional type suffix, NaN and Infinity
/// (signed or not); no whitespace, no `inf`/`nan`.
pub fn parse_java_double(s: &str) -> Option<f64> {
    let t = java_float_text(s)?;
    match t.trim_start_matches(['+', '-']) {
        "NaN" => Some(f64::NAN),
        "Infinity" if t.starts_with('-') => Some(f64::NEG_INFINITY),
        "Infinity" => Some(f64::INFINITY),
        _ => t.parse().ok(),
    }
}

/// Guava's `Floats.tryParse`: as `parse_java_double`, rounded once, straight
/// to a float (as `Float.parseFloat`), not through a double.
pub fn parse_java_float(s: &str) -> Option<f32> {
    let t = java_float_text(s)?;
    match t.trim_start_matches(['+', '-']) {
        "NaN" => Some(f32::NAN),
        "Infinity" if t.starts_with('-') => Some(f32::NEG_INFINITY),
        "Infinity" => Some(f32::INFINITY),
        _ => t.parse().ok(),
    }
}

/// Guava's `Longs.tryParse`: an optional `-` (no `+`), ASCII digits, no
/// overflow.
pub fn parse_guava_long(s: &str) -> Option<i64> {
    if s.starts_with('+') {
        return None;
    }
    s.parse().ok()
}

/// A number from text as Druid reads a metric's input (`Rows.objectToNumber`
/// with no expected type): Java-trimmed, every `,` removed, a `+` before a
/// digit dropped, then a long if `Longs.tryParse` reads one, else
/// `Double.valueOf`. None where Druid throws its ParseException.
pub fn druid_text_number(text: &str) -> Option<JavaNumber> {
    let t = java_trim(text);
    // Thousands separators: only this case allocates.
    let owned;
    let t = if t.contains(',') {
        owned = t.replace(',', "");
        owned.as_str()
    } else {
        t
    };
    let t = match t.as_bytes() {
        [b'+', d, ..] if d.is_ascii_digit() => &t[1..],
        _ => t,
    };
    match parse_guava_long(t) {
        Some(n) => Some(JavaNumber::Long(n)),
        None => parse_java_double(t).map(JavaNumber::Double),
    }
}

/// A boxed Java number: a `Long` or a `Double`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JavaNumber {
    Long(i64),
    Double(f64),
}

/// Druid's `DimensionHandlerUtils.getExactLongFromDecimalString`, the text
/// rule of a long dimension: `GuavaUtils.tryParseLong` (one leading `+`
/// dropped, then `Longs.tryParse`), else a `BigDecimal` (no whitespace, no
/// commas, no NaN) that is a whole number within a long (`12.0`, `1e3`).
pub fn druid_exact_long(s: &str) -> Option<i64> {
    if let Some(n) = parse_guava_long(s.strip_prefix('+').unwrap_or(s)) {
        return Some(n);
    }
    // BigDecimal's grammar: sign, digits with an optional point, exponent.
    let b = s.as_bytes();
    let negative = b.first() == Some(&b'-');
    let sign = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let body = &b[sign..];
    let len = java_decimal_len(body)?;
    if len != body.len() {
        return None;
    }
    let mantissa_end = body
        .iter()
        .position(|c| matches!(c, b'e' | b'E'))
        .unwrap_or(len);
    // BigDecimal refuses an exponent past an int.
    let exp: i64 = if mantissa_end < len {
        std::str::from_utf8(&body[mantissa_end + 1..])
            .ok()?
            .parse::<i32>()
            .ok()?
            .into()
    } else {
        0
    };
    let mantissa = &body[..mantissa_end];
    let (int, frac) = match mantissa.iter().position(|&c| c == b'.') {
        Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
        None => (mantissa, &mantissa[..0]),
    };
    // value = digits × 10^(exp − frac digits); whole if the digits dropped
    // by a negative power are zeros.
    let digits = int.iter().chain(frac).copied();
    let shift = exp - frac.len() as i64;
    let all: Vec<u8> = digits.skip_while(|&c| c == b'0').collect();
    let (kept, dropped) = if shift < 0 {
        let cut = all.len().saturating_sub(shift.unsigned_abs() as usize);
        all.split_at(cut)
    } else {
        (&all[..], &all[..0])
    };
    if dropped.iter().any(|&c| c != b'0') {
        return None;
    }
    if kept.is_empty() {
        return Some(0);
    }
    if kept.len() as i64 + shift.max(0) > 19 {
        return None;
    }
    let mut n: i128 = 0;
    for &c in kept {
        n = n * 10 + i128::from(c - b'0');
    }
    for _ in 0..shift.max(0) {
        n *= 10;
    }
    i64::try_from(if negative { -n } else { n }).ok()
}

/// Guava's `Hashing.murmur3_128().hashBytes(..).asBytes()`: h1 then h2,
/// each little-endian.
pub fn murmur3_128(bytes: &[u8]) -> [u8; 16] {
    let mut input = bytes;
    let h = murmur3::murmur3_x64_128(&mut input, 0).expect("reading a slice cannot fail");
    h.to_le_bytes()
}

/// Guava's `hashUnencodedChars`: the UTF-16 code units, little-endian.
pub fn murmur3_128_chars(s: &str) -> [u8; 16] {
    let units: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    murmur3_128(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_order_puts_supplementary_before_high_bmp() {
        assert_eq!(java_cmp("\u{10000}", "\u{FFFF}"), Ordering::Less);
        assert_eq!("\u{10000}".cmp("\u{FFFF}"), Ordering::Greater);
        assert_eq!(java_cmp("a", "b"), Ordering::Less);
    }

    #[test]
    fn numbers_become_java_strings() {
        assert_eq!(java_double_string(1.0), "1.0");
        assert_eq!(java_double_string(1.5), "1.5");
        assert_eq!(java_double_string(0.001), "0.001");
        assert_eq!(java_double_string(1e7), "1.0E7");
        assert_eq!(java_double_string(1.5e-4), "1.5E-4");
        assert_eq!(java_double_string(-2.5e21), "-2.5E21");
    }

    #[test]
    fn parses_numbers_as_guava() {
        assert_eq!(parse_java_double("1.5e3"), Some(1500.0));
        assert_eq!(parse_java_double("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_java_double("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_java_double("inf"), None);
        assert_eq!(parse_java_double("nan"), None);
        assert_eq!(parse_java_double("1.5d"), Some(1.5));
        assert_eq!(parse_java_double(".5"), Some(0.5));
        assert_eq!(parse_java_double("-Infinityf"), None);
        assert_eq!(parse_java_double(" 1"), None);
    }

    #[test]
    fn reads_metric_text_as_rows_object_to_number() {
        use JavaNumber::{Double as D, Long as L};
        // Druid's RowsTest (processing/.../data/input/impl/RowsTest.java)
        // validCases and invalidCases for strings.
        for (text, want) in [
            ("0", L(0)),
            ("+0", L(0)),
            ("1", L(1)),
            ("1,234", L(1234)),
            ("-1,234", L(-1234)),
            ("+1", L(1)),
            ("-1", L(-1)),
            ("9223372036854775807", L(i64::MAX)),
            ("-9223372036854775808", L(i64::MIN)),
            ("0.0", D(0.0)),
            ("+0.0", D(0.0)),
            ("1e1", D(10.0)),
            ("-1e1", D(-10.0)),
            ("1.0", D(1.0)),
            ("2.1", D(2.1)),
            ("1.7976931348623157E308", D(f64::MAX)),
            ("4.9E-324", D(4.9E-324)),
            ("Infinity", D(f64::INFINITY)),
            ("-Infinity", D(f64::NEG_INFINITY)),
        ] {
            assert_eq!(druid_text_number(text), Some(want), "{text:?}");
        }
        assert!(
            matches!(druid_text_number("-0.0"), Some(D(d)) if d == 0.0 && d.is_sign_negative())
        );
        assert!(matches!(druid_text_number("NaN"), Some(D(d)) if d.is_nan()));
        for bad in ["", "notanumber"] {
            assert_eq!(druid_text_number(bad), None, "{bad:?}");
        }
        // The rest of objectToNumber's rules: Java's trim (controls, not
        // U+00A0), commas anywhere, a long past its range read as a double,
        // Java's type suffixes, and none of Rust's own spellings.
        assert_eq!(druid_text_number(" \t12\n\u{0}"), Some(L(12)));
        assert_eq!(druid_text_number("\u{a0}12"), None);
        assert_eq!(druid_text_number(",1,,2,"), Some(L(12)));
        assert_eq!(druid_text_number("1,234.5"), Some(D(1234.5)));
        assert_eq!(
            druid_text_number("9223372036854775808"),
            Some(D(9.223372036854776e18))
        );
        assert_eq!(druid_text_number("1.5f"), Some(D(1.5)));
        assert_eq!(druid_text_number("2D"), Some(D(2.0)));
        assert!(matches!(druid_text_number("+NaN"), Some(D(d)) if d.is_nan()));
        for bad in [
            "inf", "nan", "infinity", "+", "-", ".", "1e", "1 2", "0x10", "++1", "1.5ff", "NaNd",
        ] {
            assert_eq!(druid_text_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reads_long_dimension_text_as_druid() {
        // DimensionHandlerUtils.getExactLongFromDecimalString: whole numbers
        // in any decimal form; no trim, no commas, no fractions, no NaN.
        for (text, want) in [
            ("12", 12),
            ("+12", 12),
            ("-12", -12),
            ("12.0", 12),
            ("12.", 12),
            ("1e3", 1000),
            ("1.5E1", 15),
            ("-0.0", 0),
            ("0e999", 0),
            ("120e-1", 12),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808.000", i64::MIN),
        ] {
            assert_eq!(druid_exact_long(text), Some(want), "{text:?}");
        }
        for bad in [
            "",
            " 12",
            "12 ",
            "1,234",
            "12.2",
            "1e-1",
            "NaN",
            "Infinity",
            "9223372036854775808",
            "1e19",
            "1e2147483648",
            "twelve",
            "12f",
            "0x10",
            "++1",
        ] {
            assert_eq!(druid_exact_long(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_floats_as_guava_floats() {
        // Rounded once to a float: this text lies just past a float tie, so
        // going through a double first rounds the other way.
        let t = "1.00000005960464477550";
        assert_eq!(parse_java_float(t), Some(1.000_000_1_f32));
        assert_ne!(parse_java_float(t), t.parse::<f64>().ok().map(|d| d as f32));
        assert_eq!(parse_java_float("-Infinity"), Some(f32::NEG_INFINITY));
        assert_eq!(parse_java_float(" 1"), None);
        assert_eq!(parse_java_float("inf"), None);
    }

    #[test]
    fn hashes_equal_guava() {
        // Printed by Guava 31.1 (Debian's libguava-java):
        // Hashing.murmur3_128().hashBytes(utf8).asBytes() and
        // .hashUnencodedChars(s).asBytes().
        for (s, bytes, chars) in [
            (
                "1545",
                "5fa7435f38226097f47e6c4046cd078b",
                "30dac4386386bd02caa4cf38e513c888",
            ),
            (
                "",
                "00000000000000000000000000000000",
                "00000000000000000000000000000000",
            ),
            (
                "héllo wörld 😀",
                "b0f32151dbd5fc42a5781d566b453ee3",
                "03cae0b2f0fc1e732a34917f310f4e95",
            ),
            (
                "UA",
                "241a7258b1ed9212d6955a5db730e60e",
                "03dbd0c089f6afe3c1943f3f0f10588d",
            ),
        ] {
            assert_eq!(hex::encode(murmur3_128(s.as_bytes())), bytes, "{s}");
            assert_eq!(hex::encode(murmur3_128_chars(s)), chars, "{s}");
        }
    }
}
