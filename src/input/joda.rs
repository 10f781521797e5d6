//! Joda-Time patterns in timestampSpec.format (`yyyy-MM-dd HH:mm:ss`,
//! `dd/MMM/yyyy:HH:mm:ss Z`, ...), compiled once at validation into a list
//! of fields and parsed without allocation. Druid parses these with Joda's
//! DateTimeFormat.forPattern in UTC: an offset in the text is honoured, the
//! whole text must match, and surrounding double quotes are stripped.

use crate::spec::time::days_from_civil;

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Literal(String),
    /// y / Y: a year, at least `min` digits (a sign allowed).
    Year,
    /// yy: two digits, in the century window Joda uses.
    TwoDigitYear,
    Month,
    MonthName,
    Day,
    DayOfYear,
    /// E: a day name, checked and ignored (the date fixes the weekday).
    DayName,
    Hour24,
    /// h (1-12) or K (0-11), with `a`.
    Hour12 {
        clock: bool,
    },
    /// k: 1-24.
    Hour24Clock,
    HalfDay,
    Minute,
    Second,
    /// S: fraction of a second, its digits scaled to milliseconds.
    Fraction,
    /// Z / ZZ: an offset (`+0800`, `-08:00`, `Z`); ZZZ: a zone id of
    /// fixed offset (UTC, GMT, Z).
    Offset,
    ZoneId,
}

/// A compiled Joda pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct JodaPattern {
    pattern: String,
    fields: Vec<(Field, usize)>,
    /// First year of the two-digit-year window (Joda: this year - 30).
    pivot: i64,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl JodaPattern {
    /// Compile a pattern; an error names the letter this build cannot parse.
    pub fn compile(pattern: &str) -> Result<JodaPattern, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut fields: Vec<(Field, usize)> = Vec::new();
        let mut i = 0;
        let mut literal = String::new();
        let flush = |literal: &mut String, fields: &mut Vec<(Field, usize)>| {
            if !literal.is_empty() {
                fields.push((Field::Literal(std::mem::take(literal)), 0));
            }
        };
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                // 'text' is literal; '' is a quote.
                if chars.get(i + 1) == Some(&'\'') {
                    literal.push('\'');
                    i += 2;
                    continue;
                }
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == '\'')
                    .ok_or_else(|| format!("unterminated quote in pattern {pattern:?}"))?;
                literal.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
                continue;
            }
            if !c.is_ascii_alphabetic() {
                literal.push(c);
                i += 1;
                continue;
            }
            let count = chars[i..].iter().take_while(|&&x| x == c).count();
            i += count;
            flush(&mut literal, &mut fields);
            let field = match c {
                'y' | 'Y' | 'x' if count == 2 => Field::TwoDigitYear,
                'y' | 'Y' | 'x' | 'u' => Field::Year,
                'M' if count >= 3 => Field::MonthName,
                'M' => Field::Month,
                'd' => Field::Day,
                'D' => Field::DayOfYear,
                'E' => Field::DayName,
                'H' => Field::Hour24,
                'k' => Field::Hour24Clock,
                'h' => Field::Hour12 { clock: true },
                'K' => Field::Hour12 { clock: false },
                'a' => Field::HalfDay,
                'm' => Field::Minute,
                's' => Field::Second,
                'S' => Field::Fraction,
                'Z' if count >= 3 => Field::ZoneId,
                'Z' => Field::Offset,
                'z' => {
                    return Err(format!(
                        "pattern {pattern:?}: time zone names (z) cannot be parsed, as in Joda; use Z or ZZZ"
                    ));
                }
                other => {
                    return Err(format!(
                        "pattern {pattern:?}: the letter {other:?} is not supported"
                    ));
                }
            };
            fields.push((field, count));
        }
        flush(&mut literal, &mut fields);
        let has = |f: &Field| fields.iter().any(|(x, _)| x == f);
        let twelve = fields
            .iter()
            .any(|(f, _)| matches!(f, Field::Hour12 { .. }));
        if twelve != has(&Field::HalfDay) {
            return Err(format!(
                "pattern {pattern:?}: a 12-hour clock (h, K) needs the AM/PM marker (a) and the other way round"
            ));
        }
        use chrono::Datelike;
        Ok(JodaPattern {
            pattern: pattern.to_string(),
            fields,
            pivot: chrono::Utc::now().year() as i64 - 30,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Print a UTC instant with this pattern, as Joda's formatter does
    /// (numbers zero-padded to the letter count, names in English).
    pub fn format(&self, millis: i64, out: &mut String) {
        use std::fmt::Write;
        let days = millis.div_euclid(86_400_000);
        let ms = millis.rem_euclid(86_400_000);
        let (year, month, day) = crate::spec::time::civil_from_days(days);
        let hour = ms / 3_600_000;
        let title = |s: &str, n: usize| -> String {
            let full = if n >= 4 { s } else { &s[..3] };
            let mut c = full.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        };
        for (field, count) in &self.fields {
            let n = *count;
            let _ = match field {
                Field::Literal(l) => write!(out, "{l}"),
                Field::Year if year < 0 => write!(out, "-{:0n$}", -year),
                Field::Year => write!(out, "{year:0n$}"),
                Field::TwoDigitYear => write!(out, "{:02}", year.rem_euclid(100)),
                Field::Month => write!(out, "{month:0n$}"),
                Field::MonthName => write!(out, "{}", title(MONTHS[month as usize - 1], n)),
                Field::Day => write!(out, "{day:0n$}"),
                Field::DayOfYear => {
                    let doy = days - days_from_civil(year, 1, 1) + 1;
                    write!(out, "{doy:0n$}")
                }
                Field::DayName => {
                    let dow = (days + 3).rem_euclid(7) as usize;
                    write!(out, "{}", title(DAYS[dow], n))
                }
                Field::Hour24 => write!(out, "{hour:0n$}"),
                Field::Hour24Clock => write!(out, "{:0n$}", if hour == 0 { 24 } else { hour }),
                Field::Hour12 { clock: true } => {
                    write!(out, "{:0n$}", if hour % 12 == 0 { 12 } else { hour % 12 })
                }
                Field::Hour12 { clock: false } => write!(out, "{:0n$}", hour % 12),
                Field::HalfDay => write!(out, "{}", if hour < 12 { "AM" } else { "PM" }),
                Field::Minute => write!(out, "{:0n$}", ms / 60_000 % 60),
                Field::Second => write!(out, "{:0n$}", ms / 1000 % 60),
                Field::Fraction => {
                    // Milliseconds as a fraction: S is tenths, SSS millis,
                    // more letters pad with zeros.
                    let frac = format!("{:03}", ms % 1000);
                    let shown: String =
                        frac.chars().chain(std::iter::repeat('0')).take(n).collect();
                    write!(out, "{shown}")
                }
                Field::Offset if n >= 2 => write!(out, "+00:00"),
                Field::Offset => write!(out, "+0000"),
                Field::ZoneId => write!(out, "UTC"),
            };
        }
    }

    /// Epoch milliseconds of `text`, or None when it does not match.
    pub fn parse(&self, text: &str) -> Option<i64> {
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        let b = text.as_bytes();
        let mut at = 0;
        let (mut year, mut month, mut day) = (1970i64, 1u32, 1u32);
        let mut day_of_year: Option<u32> = None;
        let (mut hour, mut minute, mut second, mut millis) = (0u32, 0u32, 0u32, 0u32);
        let mut pm: Option<bool> = None;
        let mut hour12: Option<(u32, bool)> = None;
        let mut offset_ms = 0i64;
        for (i, (field, count)) in self.fields.iter().enumerate() {
            // A number directly followed by another number field takes
            // exactly its width (yyyyMMdd); otherwise up to its maximum.
            let next_is_number = matches!(
                self.fields.get(i + 1),
                Some((f, _)) if !matches!(
                    f,
                    Field::Literal(_) | Field::MonthName | Field::DayName | Field::HalfDay | Field::Offset | Field::ZoneId
                )
            );
            let width = |max: usize| if next_is_number { *count.max(&1) } else { max };
            match field {
                Field::Literal(l) => {
                    if !b[at..].starts_with(l.as_bytes()) {
                        return None;
                    }
                    at += l.len();
                }
                Field::Year => {
                    let negative = b.get(at) == Some(&b'-');
                    if negative || b.get(at) == Some(&b'+') {
                        at += 1;
                    }
                    let v = digits(b, &mut at, 1, width(9))? as i64;
                    year = if negative { -v } else { v };
                }
                Field::TwoDigitYear => {
                    let v = digits(b, &mut at, 2, 2)? as i64;
                    let base = self.pivot - self.pivot.rem_euclid(100);
                    year = base + v;
                    if year < self.pivot {
                        year += 100;
                    }
                }
                Field::Month => month = digits(b, &mut at, 1, width(2))?,
                Field::MonthName => month = name(b, &mut at, &MONTHS)? + 1,
                Field::Day => day = digits(b, &mut at, 1, width(2))?,
                Field::DayOfYear => day_of_year = Some(digits(b, &mut at, 1, width(3))?),
                Field::DayName => {
                    name(b, &mut at, &DAYS)?;
                }
                Field::Hour24 => hour = digits(b, &mut at, 1, width(2))?,
                Field::Hour24Clock => {
                    let h = digits(b, &mut at, 1, width(2))?;
                    if !(1..=24).contains(&h) {
                        return None;
                    }
                    hour = h % 24;
                }
                Field::Hour12 { clock } => {
                    hour12 = Some((digits(b, &mut at, 1, width(2))?, *clock));
                }
                Field::HalfDay => {
                    let rest = &b[at..];
                    let marker = rest.get(..2)?;
                    pm = Some(if marker.eq_ignore_ascii_case(b"PM") {
                        true
                    } else if marker.eq_ignore_ascii_case(b"AM") {
                        false
                    } else {
                        return None;
                    });
                    at += 2;
                }
                Field::Minute => minute = digits(b, &mut at, 1, width(2))?,
                Field::Second => second = digits(b, &mut at, 1, width(2))?,
                Field::Fraction => {
                    let start = at;
                    let v = digits(b, &mut at, 1, width(9))?;
                    let n = at - start;
                    millis = if n >= 3 {
                        (v as u64 / 10u64.pow(n as u32 - 3)) as u32
                    } else {
                        v * 10u32.pow(3 - n as u32)
                    };
                }
                Field::Offset => offset_ms = offset(b, &mut at)?,
                Field::ZoneId => {
                    let rest = &text[at..];
                    let id = ["Etc/UTC", "UTC", "GMT", "Z"]
                        .into_iter()
                        .find(|z| rest.starts_with(z))?;
                    at += id.len();
                }
            }
        }
        if at != b.len() {
            return None;
        }
        if let Some((h, clock)) = hour12 {
            let base = match (clock, h) {
                (true, 1..=12) => h % 12,
                (false, 0..=11) => h,
                _ => return None,
            };
            hour = base + if pm == Some(true) { 12 } else { 0 };
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let days = match day_of_year {
            Some(d) => {
                let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
                if d == 0 || d > 365 + leap as u32 {
                    return None;
                }
                days_from_civil(year, 1, 1) + d as i64 - 1
            }
            None => {
                if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
                    return None;
                }
                days_from_civil(year, month, day)
            }
        };
        let ms = days.checked_mul(86_400_000)?
            + hour as i64 * 3_600_000
            + minute as i64 * 60_000
            + second as i64 * 1000
            + millis as i64;
        Some(ms - offset_ms)
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Between `min` and `max` ASCII digits.
fn digits(b: &[u8], at: &mut usize, min: usize, max: usize) -> Option<u32> {
    let n = b[*at..]
        .iter()
        .take(max)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if n < min {
        return None;
    }
    let mut v: u64 = 0;
    for c in &b[*at..*at + n] {
        v = v * 10 + (c - b'0') as u64;
    }
    *at += n;
    u32::try_from(v).ok()
}

/// A month or day name, full or its first three letters, any case: its index.
fn name(b: &[u8], at: &mut usize, names: &[&str]) -> Option<u32> {
    let rest = &b[*at..];
    for (i, full) in names.iter().enumerate() {
        let full = full.as_bytes();
        if rest.len() >= full.len() && rest[..full.len()].eq_ignore_ascii_case(full) {
            *at += full.len();
            return Some(i as u32);
        }
    }
    for (i, full) in names.iter().enumerate() {
        let short = &full.as_bytes()[..3];
        if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(short) {
            *at += 3;
            return Some(i as u32);
        }
    }
    None
}

/// `Z`, `+0800`, `-08:00`, `+08`: milliseconds east of UTC.
fn offset(b: &[u8], at: &mut usize) -> Option<i64> {
    match b.get(*at)? {
        b'Z' => {
            *at += 1;
            Some(0)
        }
        sign @ (b'+' | b'-') => {
            *at += 1;
            let hours = digits(b, at, 2, 2)? as i64;
            if b.get(*at) == Some(&b':') {
                *at += 1;
            }
            let minutes = if b.get(*at).is_some_and(u8::is_ascii_digit) {
                digits(b, at, 2, 2)? as i64
            } else {
                0
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let ms = (hours * 60 + minutes) * 60_000;
            Some(if *sign == b'-' { -ms } else { ms })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pattern: &str, text: &str) -> Option<i64> {
        JodaPattern::compile(pattern).unwrap().parse(text)
    }

    fn iso(text: &str) -> i64 {
        crate::spec::time::parse_iso(text).unwrap()
    }

    // Patterns and example values from Druid's documentation
    // (docs/ingestion/ingestion-spec.md#timestampspec: "Joda format") and
    // the access-log tutorial (Apache `dd/MMM/yyyy:HH:mm:ss Z`).
    #[test]
    fn common_patterns() {
        assert_eq!(
            at("yyyy-MM-dd HH:mm:ss", "2013-01-01 10:15:00"),
            Some(iso("2013-01-01T10:15:00Z"))
        );
        assert_eq!(
            at("dd/MMM/yyyy:HH:mm:ss Z", "10/Oct/2000:13:55:36 -0700"),
            Some(iso("2000-10-10T20:55:36Z"))
        );
        assert_eq!(
            at(
                "yyyy-MM-dd'T'HH:mm:ss.SSSZZ",
                "2016-06-27T00:00:11.080+02:00"
            ),
            Some(iso("2016-06-26T22:00:11.080Z"))
        );
        assert_eq!(
            at("MM/dd/yyyy", "02/29/2016"),
            Some(iso("2016-02-29T00:00:00Z"))
        );
        assert_eq!(
            at("yyyyMMdd", "20130101"),
            Some(iso("2013-01-01T00:00:00Z"))
        );
        assert_eq!(
            at("yyyyMMddHHmmss", "20130101101500"),
            Some(iso("2013-01-01T10:15:00Z"))
        );
        assert_eq!(
            at(
                "EEE, dd MMM yyyy HH:mm:ss ZZZ",
                "Tue, 01 Jan 2013 10:15:00 UTC"
            ),
            Some(iso("2013-01-01T10:15:00Z"))
        );
        assert_eq!(
            at("MMMM d, yyyy h:mm a", "January 5, 2013 1:05 PM"),
            Some(iso("2013-01-05T13:05:00Z"))
        );
        assert_eq!(
            at("yyyy-MM-dd h a", "2013-01-05 12 AM"),
            Some(iso("2013-01-05T00:00:00Z"))
        );
        assert_eq!(
            at("yyyy-DDD", "2013-032"),
            Some(iso("2013-02-01T00:00:00Z"))
        );
        assert_eq!(
            at("yyyy-MM-dd HH:mm:ss", "\"2013-01-01 10:15:00\""),
            Some(iso("2013-01-01T10:15:00Z")),
            "quotes are stripped"
        );
    }

    #[test]
    fn mismatches_are_none() {
        assert_eq!(at("yyyy-MM-dd", "2013-02-30"), None);
        assert_eq!(at("yyyy-MM-dd", "2013-13-01"), None);
        assert_eq!(at("yyyy-MM-dd", "2013-01-01 extra"), None);
        assert_eq!(at("yyyy-MM-dd HH:mm", "2013-01-01 24:00"), None);
        assert_eq!(at("dd/MMM/yyyy", "10/Foo/2000"), None);
        assert_eq!(at("yyyy-MM-dd", ""), None);
        assert_eq!(at("HH:mm Z", "10:00 +2500"), None);
    }

    #[test]
    fn unusable_patterns_are_refused_at_compile_time() {
        assert!(
            JodaPattern::compile("yyyy-MM-dd HH:mm z")
                .unwrap_err()
                .contains("(z)")
        );
        assert!(
            JodaPattern::compile("yyyy-MM-dd 'T")
                .unwrap_err()
                .contains("quote")
        );
        assert!(
            JodaPattern::compile("yyyy-MM-dd hh:mm")
                .unwrap_err()
                .contains("AM/PM")
        );
        assert!(JodaPattern::compile("yyyy-ww").unwrap_err().contains("'w'"));
    }
}
