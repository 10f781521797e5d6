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

/// Guava's Doubles.tryParse: Java's decimal forms plus NaN and Infinity,
/// not Rust's extra spellings (`inf`, `nan`).
pub fn parse_java_double(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ if s
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        _ => s.parse().ok(),
    }
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
