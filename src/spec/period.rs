//! ISO-8601 periods (`PT10M`, `P1D`, `P2147483647D`) as Druid/Joda write them.

use std::fmt;

/// A Joda-style period: calendar fields kept apart because months and years
/// have no fixed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Period {
    pub years: i64,
    pub months: i64,
    pub weeks: i64,
    pub days: i64,
    pub hours: i64,
    pub minutes: i64,
    pub seconds: i64,
    pub millis: i64,
}

const MS_SECOND: i64 = 1_000;
const MS_MINUTE: i64 = 60 * MS_SECOND;
const MS_HOUR: i64 = 60 * MS_MINUTE;
const MS_DAY: i64 = 24 * MS_HOUR;
const MS_WEEK: i64 = 7 * MS_DAY;

impl Period {
    pub fn parse(text: &str) -> Result<Period, String> {
        let bad = || format!("not an ISO-8601 period: {text:?}");
        let rest = text.strip_prefix('P').ok_or_else(bad)?;
        if rest.is_empty() {
            return Err(bad());
        }
        let mut period = Period::default();
        let mut in_time = false;
        let mut number = String::new();
        for c in rest.chars() {
            match c {
                'T' if !in_time && number.is_empty() => in_time = true,
                '0'..='9' | '.' | '-' => number.push(c),
                _ => {
                    if number.is_empty() {
                        return Err(bad());
                    }
                    if c == 'S' && in_time && number.contains('.') {
                        let (whole, frac) = number.split_once('.').ok_or_else(bad)?;
                        period.seconds = whole.parse().map_err(|_| bad())?;
                        let frac = format!("{frac:0<3}");
                        period.millis = frac[..3].parse().map_err(|_| bad())?;
                        number.clear();
                        continue;
                    }
                    let value: i64 = number.parse().map_err(|_| bad())?;
                    number.clear();
                    let slot = match (in_time, c) {
                        (false, 'Y') => &mut period.years,
                        (false, 'M') => &mut period.months,
                        (false, 'W') => &mut period.weeks,
                        (false, 'D') => &mut period.days,
                        (true, 'H') => &mut period.hours,
                        (true, 'M') => &mut period.minutes,
                        (true, 'S') => &mut period.seconds,
                        _ => return Err(bad()),
                    };
                    *slot = value;
                }
            }
        }
        if !number.is_empty() || rest.ends_with('T') {
            return Err(bad());
        }
        Ok(period)
    }

    /// True when the period has a fixed length (no months or years).
    pub fn is_fixed(&self) -> bool {
        self.years == 0 && self.months == 0
    }

    /// Length in milliseconds of a fixed period (saturating, so
    /// `P2147483647D` stays a very long time rather than overflowing).
    pub fn fixed_millis(&self) -> Option<i64> {
        if !self.is_fixed() {
            return None;
        }
        let parts = [
            (self.weeks, MS_WEEK),
            (self.days, MS_DAY),
            (self.hours, MS_HOUR),
            (self.minutes, MS_MINUTE),
            (self.seconds, MS_SECOND),
            (self.millis, 1),
        ];
        Some(parts.iter().fold(0i64, |acc, (n, unit)| {
            acc.saturating_add(n.saturating_mul(*unit))
        }))
    }

    /// The single (field, count) of a period that sets exactly one field.
    pub fn single_field(&self) -> Option<(PeriodField, i64)> {
        let fields = [
            (PeriodField::Years, self.years),
            (PeriodField::Months, self.months),
            (PeriodField::Weeks, self.weeks),
            (PeriodField::Days, self.days),
            (PeriodField::Hours, self.hours),
            (PeriodField::Minutes, self.minutes),
            (PeriodField::Seconds, self.seconds),
            (PeriodField::Millis, self.millis),
        ];
        let mut set = fields.iter().filter(|(_, n)| *n != 0);
        let first = set.next()?;
        if set.next().is_some() {
            return None;
        }
        Some(*first)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodField {
    Years,
    Months,
    Weeks,
    Days,
    Hours,
    Minutes,
    Seconds,
    Millis,
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P")?;
        for (n, unit) in [
            (self.years, 'Y'),
            (self.months, 'M'),
            (self.weeks, 'W'),
            (self.days, 'D'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        if self.hours != 0 || self.minutes != 0 || self.seconds != 0 || self.millis != 0 {
            write!(f, "T")?;
            if self.hours != 0 {
                write!(f, "{}H", self.hours)?;
            }
            if self.minutes != 0 {
                write!(f, "{}M", self.minutes)?;
            }
            if self.millis != 0 {
                write!(f, "{}.{:03}S", self.seconds, self.millis)?;
            } else if self.seconds != 0 {
                write!(f, "{}S", self.seconds)?;
            }
        }
        if *self == Period::default() {
            write!(f, "T0S")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_druid_tuning_periods() {
        assert_eq!(
            Period::parse("PT10M").unwrap().fixed_millis(),
            Some(600_000)
        );
        assert_eq!(
            Period::parse("P2147483647D").unwrap().fixed_millis(),
            Some(2_147_483_647 * MS_DAY)
        );
        assert_eq!(Period::parse("PT1.5S").unwrap().fixed_millis(), Some(1_500));
        let month = Period::parse("P1M").unwrap();
        assert!(!month.is_fixed());
        assert_eq!(month.single_field(), Some((PeriodField::Months, 1)));
        assert_eq!(Period::parse("PT1H30M").unwrap().single_field(), None);
    }

    #[test]
    fn refuses_garbage() {
        for text in ["", "P", "10M", "PT", "P1X", "PTM", "P1H"] {
            assert!(Period::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for text in ["PT10M", "P1D", "P1Y2M", "PT1H30M", "PT1.500S", "P1W"] {
            assert_eq!(Period::parse(text).unwrap().to_string(), text);
        }
    }
}
