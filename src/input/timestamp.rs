//! timestampSpec: the row time from its input value, by Druid's
//! `TimestampParser` rules, remembering the last string parsed.

use super::Value;
use crate::spec::{TimestampFormat, time};

pub struct TimestampParser {
    format: TimestampFormat,
    missing: Option<i64>,
    last_text: String,
    last_millis: i64,
    days: time::DayCache,
}

/// Druid keeps row times within what a Joda DateTime can hold.
const MAX_ABS_MILLIS: i64 = 9_223_372_036_854_775;

impl TimestampParser {
    pub fn new(format: TimestampFormat, missing: Option<i64>) -> TimestampParser {
        TimestampParser {
            format,
            missing,
            last_text: String::new(),
            last_millis: 0,
            days: time::DayCache::default(),
        }
    }

    pub fn parse(&mut self, value: &Value) -> Result<i64, String> {
        let millis = match value {
            Value::Null => return self.missing.ok_or_else(|| "null timestamp".to_string()),
            Value::Str(s) if s.is_empty() => {
                return self.missing.ok_or_else(|| "empty timestamp".to_string());
            }
            Value::Str(s) => {
                if !self.last_text.is_empty() && self.last_text == s.as_ref() {
                    return Ok(self.last_millis);
                }
                let t = self.parse_text(s)?;
                self.last_text.clear();
                self.last_text.push_str(s);
                self.last_millis = t;
                t
            }
            Value::Long(n) => self.parse_number(*n as f64, Some(*n))?,
            Value::Double(d) => self.parse_number(*d, None)?,
            other => return Err(format!("cannot read a timestamp from {other:?}")),
        };
        if millis.unsigned_abs() > MAX_ABS_MILLIS as u64 {
            return Err(format!("timestamp {millis} is out of range"));
        }
        Ok(millis)
    }

    fn parse_text(&mut self, s: &str) -> Result<i64, String> {
        let bad = || format!("could not parse timestamp {s:?} as {:?}", self.format);
        let numeric = |scale: f64| -> Result<i64, String> {
            let v: f64 = s.trim().parse().map_err(|_| bad())?;
            scaled(v, scale).ok_or_else(bad)
        };
        match &self.format {
            TimestampFormat::Auto => {
                let digits = s.strip_prefix('-').unwrap_or(s);
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse::<i64>().map_err(|_| bad())
                } else {
                    time::parse_iso_cached(s, &mut self.days).ok_or_else(bad)
                }
            }
            TimestampFormat::Iso => time::parse_iso_cached(s, &mut self.days).ok_or_else(bad),
            TimestampFormat::Millis => s.trim().parse::<i64>().map_err(|_| bad()),
            TimestampFormat::Posix => numeric(1000.0),
            TimestampFormat::Micro => numeric(0.001),
            TimestampFormat::Nano => numeric(0.000_001),
            TimestampFormat::Ruby => numeric(1000.0),
            TimestampFormat::Joda(p) => p.parse(s).ok_or_else(|| {
                format!(
                    "could not parse timestamp {s:?} with pattern {:?}",
                    p.pattern()
                )
            }),
        }
    }

    fn parse_number(&self, v: f64, exact: Option<i64>) -> Result<i64, String> {
        let bad = || format!("timestamp {v} is out of range");
        match self.format {
            // Numbers under a Joda pattern are epoch milliseconds, as in Druid.
            TimestampFormat::Auto
            | TimestampFormat::Iso
            | TimestampFormat::Millis
            | TimestampFormat::Joda(_) => exact
                .map(Ok)
                .unwrap_or_else(|| scaled(v, 1.0).ok_or_else(bad)),
            TimestampFormat::Posix | TimestampFormat::Ruby => match exact {
                Some(n) => n.checked_mul(1000).ok_or_else(bad),
                None => scaled(v, 1000.0).ok_or_else(bad),
            },
            TimestampFormat::Micro => Ok(exact
                .map(|n| n.div_euclid(1000))
                .unwrap_or((v / 1000.0).floor() as i64)),
            TimestampFormat::Nano => Ok(exact
                .map(|n| n.div_euclid(1_000_000))
                .unwrap_or((v / 1e6).floor() as i64)),
        }
    }
}

fn scaled(v: f64, scale: f64) -> Option<i64> {
    let ms = (v * scale).floor();
    (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn s(text: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(text))
    }

    #[test]
    fn formats() {
        let mut auto = TimestampParser::new(TimestampFormat::Auto, None);
        assert_eq!(
            auto.parse(&s("2013-01-01T10:15:00Z")),
            Ok(1_357_035_300_000)
        );
        assert_eq!(
            auto.parse(&s("2013-01-01T10:15:00Z")),
            Ok(1_357_035_300_000)
        );
        assert_eq!(auto.parse(&s("1357035300000")), Ok(1_357_035_300_000));
        assert_eq!(auto.parse(&Value::Long(5)), Ok(5));
        assert!(auto.parse(&Value::Null).is_err());
        assert!(auto.parse(&s("yesterday")).is_err());
        let mut posix = TimestampParser::new(TimestampFormat::Posix, None);
        assert_eq!(
            posix.parse(&Value::Long(1_357_035_300)),
            Ok(1_357_035_300_000)
        );
        assert_eq!(posix.parse(&s("1357035300")), Ok(1_357_035_300_000));
        let mut millis = TimestampParser::new(TimestampFormat::Millis, Some(42));
        assert_eq!(millis.parse(&Value::Null), Ok(42));
        assert!(millis.parse(&Value::Double(1e300)).is_err());
        let mut nano = TimestampParser::new(TimestampFormat::Nano, None);
        assert_eq!(nano.parse(&Value::Long(1_500_000)), Ok(1));
    }
}
