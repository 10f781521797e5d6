//! UTC instants as epoch milliseconds: ISO-8601 parsing in the lenient form
//! Druid's `auto`/`iso` timestamp formats accept, and Joda's `toString` form.

use std::fmt::Write;

pub const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Joda `DateTime.toString()` in UTC: `2013-01-01T10:15:00.000Z`.
pub fn format_iso(millis: i64) -> String {
    let mut out = String::with_capacity(24);
    write_iso(&mut out, millis);
    out
}

pub fn write_iso(out: &mut String, millis: i64) {
    let days = millis.div_euclid(MS_PER_DAY);
    let ms_of_day = millis.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (h, rest) = (ms_of_day / 3_600_000, ms_of_day % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    if (0..=9999).contains(&year) {
        let _ = write!(out, "{year:04}");
    } else {
        let _ = write!(out, "{year:+05}");
    }
    let _ = write!(out, "-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z");
}

/// Druid's interval form `start/end`.
pub fn format_interval(start: i64, end: i64) -> String {
    format!("{}/{}", format_iso(start), format_iso(end))
}

/// Add whole calendar months to an instant (day clamped to the month's end, as Joda does).
pub fn add_months(millis: i64, months: i64) -> i64 {
    let days = millis.div_euclid(MS_PER_DAY);
    let ms_of_day = millis.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let total = year * 12 + (month as i64 - 1) + months;
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let nd = day.min(days_in_month(ny, nm));
    days_from_civil(ny, nm, nd) * MS_PER_DAY + ms_of_day
}

/// Whole months from `from` to `to` as Joda-Time's
/// `months().getDifference(to, from)` counts them (Druid buckets months
/// from an origin with it): negative when `to` is earlier; a month counts
/// once the day and time of `from` are reached again, except that the last
/// day of a shorter month stands for any later day (Jan 31 to Feb 28 is one
/// month).
pub fn months_between(from: i64, to: i64) -> i64 {
    if to < from {
        return -months_between(to, from);
    }
    let (to_year, to_month, to_day) = civil_from_days(to.div_euclid(MS_PER_DAY));
    let (from_year, from_month, from_day) = civil_from_days(from.div_euclid(MS_PER_DAY));
    let mut difference = (to_year - from_year) * 12 + to_month as i64 - from_month as i64;
    let into_month =
        |millis: i64, day: u32| (day as i64 - 1) * MS_PER_DAY + millis.rem_euclid(MS_PER_DAY);
    let to_rem = into_month(to, to_day);
    let to_month_days = days_in_month(to_year, to_month);
    let from_rem = if to_day == to_month_days && from_day > to_day {
        into_month(from, to_day)
    } else {
        into_month(from, from_day)
    };
    if to_rem < from_rem {
        difference -= 1;
    }
    difference
}

/// Whole years from `from` to `to` as Joda-Time's
/// `years().getDifference(to, from)` counts them: the time into the year,
/// with a leap day left out when only one of the two years has it.
pub fn years_between(from: i64, to: i64) -> i64 {
    if to < from {
        return -years_between(to, from);
    }
    let (to_year, _, _) = civil_from_days(to.div_euclid(MS_PER_DAY));
    let (from_year, _, _) = civil_from_days(from.div_euclid(MS_PER_DAY));
    let year_start = |year: i64| days_from_civil(year, 1, 1) * MS_PER_DAY;
    let leap = |year: i64| days_in_month(year, 2) == 29;
    // Milliseconds into a leap year where Feb 29 begins.
    let feb_29 = (31 + 28) * MS_PER_DAY;
    let mut to_rem = to - year_start(to_year);
    let mut from_rem = from - year_start(from_year);
    if from_rem >= feb_29 && leap(from_year) {
        if !leap(to_year) {
            from_rem -= MS_PER_DAY;
        }
    } else if to_rem >= feb_29 && leap(to_year) {
        to_rem -= MS_PER_DAY;
    }
    let mut difference = to_year - from_year;
    if to_rem < from_rem {
        difference -= 1;
    }
    difference
}

/// Whole months between 1970-01 and the month holding `millis`.
pub fn months_since_epoch(millis: i64) -> i64 {
    let (year, month, _) = civil_from_days(millis.div_euclid(MS_PER_DAY));
    (year - 1970) * 12 + month as i64 - 1
}

/// Start (epoch ms) of a month counted from 1970-01.
pub fn month_start(months: i64) -> i64 {
    let (year, month) = (
        1970 + months.div_euclid(12),
        (months.rem_euclid(12) + 1) as u32,
    );
    days_from_civil(year, month, 1) * MS_PER_DAY
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Exactly `n` digits.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let end = self.pos.checked_add(n)?;
        let slice = self.bytes.get(self.pos..end)?;
        let mut v = 0i64;
        for &b in slice {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (b - b'0') as i64;
        }
        self.pos = end;
        Some(v)
    }

    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

/// Parse an ISO-8601 date-time the way Joda's `dateTimeParser` does for the
/// forms seen in practice: `yyyy[-MM[-dd]]` optionally followed by `T` (or a
/// space, as `auto` allows) and `HH[:mm[:ss[.SSS…]]]`, then an optional
/// offset `Z`, `±HH`, `±HH:mm` or `±HHmm`. Fractions beyond milliseconds are
/// truncated. No offset means UTC.
pub fn parse_iso(text: &str) -> Option<i64> {
    parse_iso_cached(text, &mut DayCache::default())
}

fn parse_iso_general(text: &str) -> Option<i64> {
    let mut sc = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let negative = sc.eat(b'-');
    if !negative {
        sc.eat(b'+');
    }
    let digits_start = sc.pos;
    while sc.peek().is_some_and(|b| b.is_ascii_digit()) {
        sc.pos += 1;
    }
    let year_len = sc.pos - digits_start;
    if !(4..=9).contains(&year_len) {
        return None;
    }
    sc.pos = digits_start;
    let mut year = sc.digits(year_len)?;
    if negative {
        year = -year;
    }
    let (mut month, mut day) = (1u32, 1u32);
    if sc.eat(b'-') {
        month = sc.digits(2)? as u32;
        if sc.eat(b'-') {
            day = sc.digits(2)? as u32;
        }
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms_of_day = 0i64;
    if sc.eat(b'T') || sc.eat(b' ') {
        let hour = sc.digits(2)?;
        let (mut minute, mut second, mut millis) = (0, 0, 0);
        if sc.eat(b':') {
            minute = sc.digits(2)?;
            if sc.eat(b':') {
                second = sc.digits(2)?;
                if sc.eat(b'.') || sc.eat(b',') {
                    let mut scale = 100;
                    let mut any = false;
                    while let Some(b) = sc.peek().filter(u8::is_ascii_digit) {
                        millis += (b - b'0') as i64 * scale;
                        scale /= 10;
                        sc.pos += 1;
                        any = true;
                    }
                    if !any {
                        return None;
                    }
                }
            }
        }
        if hour > 24
            || minute > 59
            || second > 59
            || (hour == 24 && (minute | second | millis) != 0)
        {
            return None;
        }
        ms_of_day = ((hour * 60 + minute) * 60 + second) * 1000 + millis;
    }
    let mut offset_ms = 0i64;
    if sc.eat(b'Z') {
    } else if let Some(sign) = sc.peek().filter(|b| *b == b'+' || *b == b'-') {
        sc.pos += 1;
        let oh = sc.digits(2)?;
        let mut om = 0;
        // `+hh:mm` or `+hhmm`.
        if sc.eat(b':') || !sc.done() {
            om = sc.digits(2)?;
        }
        if oh > 23 || om > 59 {
            return None;
        }
        offset_ms = (oh * 60 + om) * 60_000 * if sign == b'-' { -1 } else { 1 };
    }
    if !sc.done() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    days.checked_mul(MS_PER_DAY)?
        .checked_add(ms_of_day)?
        .checked_sub(offset_ms)
}

/// The day number of the last date read in the fixed shape. A stream's
/// rows mostly share the date of the row before (98.6% of the flights
/// replay's), and those skip the date's digits and calendar arithmetic.
#[derive(Default, Clone, Copy)]
pub struct DayCache {
    /// The `yyyy-MM-dd` bytes of a valid date; all zero before the first.
    date: [u8; 10],
    days: i64,
}

/// `parse_iso`, remembering the last fixed-shape date in `cache`.
pub fn parse_iso_cached(text: &str, cache: &mut DayCache) -> Option<i64> {
    // Unquoted text of a fixed shape first: most rows, and no trim.
    parse_iso_utc_fixed_with(text.as_bytes(), cache).or_else(|| {
        let text = text.trim_matches('"');
        parse_iso_utc_fixed_with(text.as_bytes(), cache).or_else(|| parse_iso_general(text))
    })
}

/// The two shapes most data has, `yyyy-MM-ddTHH:mm:ssZ` and
/// `yyyy-MM-ddTHH:mm:ss.SSSZ`, read at fixed positions (the general parser
/// was ~390 instructions a timestamp, ~3% of a csv replay). None sends
/// anything else, including hour 24 and every error, to the general parser.
fn parse_iso_utc_fixed_with(b: &[u8], cache: &mut DayCache) -> Option<i64> {
    match b.len() {
        20 => {}
        24 if b[19] == b'.' => {}
        _ => return None,
    }
    // A fixed-size copy (missing millis read as "000"), so every position
    // below is known in bounds: the slice version's checks were most of
    // its ~210 instructions a timestamp (callgrind).
    // One constant-length copy per shape: a copy of `b.len()` bytes was a
    // memcpy call.
    let mut a = [b'0'; 24];
    match b.len() {
        20 => a[..20].copy_from_slice(&b[..20]),
        _ => a.copy_from_slice(&b[..24]),
    }
    if a[4] != b'-' || a[7] != b'-' || a[10] != b'T' || a[13] != b':' || a[16] != b':' {
        return None;
    }
    if b[b.len() - 1] != b'Z' {
        return None;
    }
    let digit = |i: usize| i64::from(a[i].wrapping_sub(b'0'));
    let all_digits = |at: &[usize]| at.iter().all(|&i| a[i].wrapping_sub(b'0') < 10);
    let two = |i: usize| digit(i) * 10 + digit(i + 1);
    let date: [u8; 10] = a[..10].try_into().expect("ten bytes");
    let days = if date == cache.date {
        cache.days
    } else {
        if !all_digits(&[0, 1, 2, 3, 5, 6, 8, 9]) {
            return None;
        }
        let year = two(0) * 100 + two(2);
        let (month, day) = (two(5) as u32, two(8) as u32);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let days = days_from_civil(year, month, day);
        *cache = DayCache { date, days };
        days
    };
    // The millis positions hold "000" when there are none.
    if !all_digits(&[11, 12, 14, 15, 17, 18, 20, 21, 22]) {
        return None;
    }
    let (hour, minute, second) = (two(11), two(14), two(17));
    let millis = two(20) * 10 + digit(22);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_iso_utc_fixed(b: &[u8]) -> Option<i64> {
        parse_iso_utc_fixed_with(b, &mut DayCache::default())
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 15_706, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(15_706), (2013, 1, 1));
    }

    #[test]
    fn formats_like_joda() {
        assert_eq!(format_iso(1_357_035_300_000), "2013-01-01T10:15:00.000Z");
        assert_eq!(format_iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso(-1), "1969-12-31T23:59:59.999Z");
    }

    /// The fixed-position reading agrees with the general one: every
    /// formatted time of a span of days (leap days, year ends, millis and
    /// none) reads back, and near misses (a bad field, another separator,
    /// hour 24, an offset) give what the general parser gives.
    #[test]
    fn fixed_iso_shapes_read_as_the_general_parser_does() {
        let mut t = -70 * 365 * MS_PER_DAY;
        while t < 80 * 365 * MS_PER_DAY {
            let with_millis = format_iso(t);
            assert_eq!(
                parse_iso_utc_fixed(with_millis.as_bytes()),
                Some(t),
                "{with_millis}"
            );
            assert_eq!(parse_iso_general(&with_millis), Some(t), "{with_millis}");
            let whole = t - t.rem_euclid(1000);
            let without = format!("{}Z", &format_iso(whole)[..19]);
            assert_eq!(
                parse_iso_utc_fixed(without.as_bytes()),
                Some(whole),
                "{without}"
            );
            assert_eq!(parse_iso_general(&without), Some(whole), "{without}");
            t += 7 * MS_PER_DAY / 3 + 12_345;
        }
        for text in [
            "2012-02-29T00:00:00Z",
            "2013-02-29T00:00:00Z",
            "2013-13-01T00:00:00Z",
            "2013-00-01T00:00:00Z",
            "2013-01-32T00:00:00Z",
            "2013-01-01T24:00:00Z",
            "2013-01-01T24:00:00.000Z",
            "2013-01-01T23:60:00Z",
            "2013-01-01T23:59:60Z",
            "2013-01-01 10:15:00Z",
            "2013-01-01T10:15:00+0",
            "2013-01-01T10:15:00.5Z",
            "2013-01-01T1a:15:00Z",
            "2013-01-01T10:15:00.00aZ",
            "+013-01-01T10:15:00Z",
        ] {
            let general = parse_iso_general(text);
            if let Some(fixed) = parse_iso_utc_fixed(text.as_bytes()) {
                assert_eq!(Some(fixed), general, "{text}");
            }
            assert_eq!(parse_iso(text), general, "{text}");
        }
        assert_eq!(parse_iso("2013-01-01T24:00:00Z"), Some(1_357_084_800_000));
        assert_eq!(parse_iso("2013-02-29T00:00:00Z"), None);
    }

    /// Any one byte of either shape changed to any ASCII character: the
    /// fixed reading (with the valid date cached, and without) is None or
    /// what the general parser reads: no bad byte gets past the fixed
    /// positions or the cached date.
    #[test]
    fn every_single_byte_change_reads_as_the_general_parser_does() {
        for valid in ["2013-07-15T10:15:42Z", "2013-07-15T10:15:42.123Z"] {
            for i in 0..valid.len() {
                for c in 0x20u8..0x7f {
                    let mut bytes = valid.as_bytes().to_vec();
                    bytes[i] = c;
                    let text = std::str::from_utf8(&bytes).unwrap();
                    let general = parse_iso_general(text);
                    let mut warm = DayCache::default();
                    parse_iso_utc_fixed_with(valid.as_bytes(), &mut warm).expect("valid");
                    for mut cache in [warm, DayCache::default()] {
                        if let Some(fixed) = parse_iso_utc_fixed_with(bytes.as_slice(), &mut cache)
                        {
                            assert_eq!(Some(fixed), general, "{text}");
                        }
                    }
                }
            }
        }
    }

    /// With a day cache, every reading equals the uncached one: dates
    /// alternating and repeating, and near misses right after a valid
    /// reading of the same date (the cache must not vouch for them).
    #[test]
    fn cached_days_read_as_without_the_cache() {
        let mut cache = DayCache::default();
        let mut t = 15_000 * MS_PER_DAY;
        while t < 15_800 * MS_PER_DAY {
            for text in [format_iso(t), format!("{}Z", &format_iso(t)[..19])] {
                assert_eq!(
                    parse_iso_cached(&text, &mut cache),
                    parse_iso(&text),
                    "{text}"
                );
            }
            t += MS_PER_DAY / 7 + 1_234;
        }
        let valid = "2013-01-01T10:15:00Z";
        for text in [
            "2013-01-01T24:00:00Z",
            "2013-01-01T23:60:00Z",
            "2013-01-01T23:59:60Z",
            "2013-01-01T1a:15:00Z",
            "2013-01-01T10:15:00.00aZ",
            "2013-01-01T10:15:00.000X",
            "2013-01-01T10:15:00+0",
            "2013-01-01 10:15:00Z",
            "2013-01-01T10:15:00.123Z",
            "2013-02-29T00:00:00Z",
            "2013-01-0aT10:15:00Z",
            "\"2013-01-01T10:15:00Z\"",
        ] {
            assert_eq!(parse_iso_cached(valid, &mut cache), parse_iso(valid));
            assert_eq!(
                parse_iso_cached(text, &mut cache),
                parse_iso(text),
                "{text}"
            );
            assert_eq!(
                parse_iso_cached(text, &mut cache),
                parse_iso(text),
                "{text} again"
            );
        }
        // An invalid date is never remembered as valid.
        let mut cache = DayCache::default();
        assert_eq!(parse_iso_cached("2013-02-29T00:00:00Z", &mut cache), None);
        assert_eq!(parse_iso_cached("2013-02-29T00:00:00Z", &mut cache), None);
    }

    #[test]
    fn parses_iso_forms() {
        let t = 1_357_035_300_000;
        assert_eq!(parse_iso("2013-01-01T10:15:00Z"), Some(t));
        assert_eq!(parse_iso("2013-01-01T10:15:00.000Z"), Some(t));
        assert_eq!(parse_iso("2013-01-01 10:15:00"), Some(t));
        assert_eq!(parse_iso("2013-01-01T10:15"), Some(t));
        assert_eq!(parse_iso("2013-01-01T12:15:00+02:00"), Some(t));
        assert_eq!(parse_iso("2013-01-01T05:15:00-0500"), Some(t));
        assert_eq!(parse_iso("2013-01-01T10:15:00.000123Z"), Some(t));
        assert_eq!(parse_iso("2013-01-01"), Some(1_356_998_400_000));
        assert_eq!(parse_iso("2013"), Some(1_356_998_400_000));
        assert_eq!(parse_iso("\"2013-01-01T10:15:00Z\""), Some(t));
    }

    #[test]
    fn refuses_bad_dates() {
        for text in [
            "",
            "2013-13-01",
            "2013-02-29",
            "2013-01-01T25:00",
            "2013-01-01T10:15:00Q",
            "13-01-01",
            "2013-01-01T",
            "x2013",
        ] {
            assert_eq!(parse_iso(text), None, "{text}");
        }
    }

    #[test]
    fn adds_months_clamping_day() {
        let jan31 = days_from_civil(2013, 1, 31) * MS_PER_DAY;
        assert_eq!(
            add_months(jan31, 1),
            days_from_civil(2013, 2, 28) * MS_PER_DAY
        );
        assert_eq!(
            month_start(months_since_epoch(jan31)),
            days_from_civil(2013, 1, 1) * MS_PER_DAY
        );
    }
}
