//! Druid granularities: parsing every JSON form, bucketing instants, and
//! serialising back the way Druid writes them (metadata.drd).

use super::period::{Period, PeriodField};
use super::time::{self, MS_PER_DAY};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub enum Granularity {
    None,
    All,
    /// A UTC period; `name` is set for Druid's standard named granularities.
    Period {
        period: Period,
        origin: Option<i64>,
        name: Option<&'static str>,
    },
    Duration {
        millis: i64,
        origin: i64,
    },
}

const NAMED: [(&str, &str); 14] = [
    ("SECOND", "PT1S"),
    ("MINUTE", "PT1M"),
    ("FIVE_MINUTE", "PT5M"),
    ("TEN_MINUTE", "PT10M"),
    ("FIFTEEN_MINUTE", "PT15M"),
    ("THIRTY_MINUTE", "PT30M"),
    ("HOUR", "PT1H"),
    ("SIX_HOUR", "PT6H"),
    ("EIGHT_HOUR", "PT8H"),
    ("DAY", "P1D"),
    ("WEEK", "P1W"),
    ("MONTH", "P1M"),
    ("QUARTER", "P3M"),
    ("YEAR", "P1Y"),
];

/// 1970-01-01 was a Thursday; Joda weeks start on Monday (1969-12-29).
const FIRST_MONDAY_MS: i64 = -3 * MS_PER_DAY;

impl Granularity {
    pub fn named(name: &str) -> Option<Granularity> {
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "NONE" => return Some(Granularity::None),
            "ALL" => return Some(Granularity::All),
            _ => {}
        }
        NAMED
            .iter()
            .find(|(n, _)| *n == upper)
            .map(|(n, p)| Granularity::Period {
                period: Period::parse(p).expect("built-in period"),
                origin: None,
                name: Some(n),
            })
    }

    /// Parse any of Druid's JSON forms: `"HOUR"`, `{"type":"hour"}`,
    /// `{"type":"none"}`, `{"type":"period","period":"PT2H",...}`,
    /// `{"type":"duration","duration":ms,"origin":...}`.
    pub fn from_json(value: &Value) -> Result<Granularity, String> {
        match value {
            Value::String(s) => {
                Granularity::named(s).ok_or_else(|| format!("unknown granularity {s:?}"))
            }
            Value::Object(map) => {
                let kind = map
                    .get("type")
                    .and_then(Value::as_str)
                    .ok_or("granularity object needs a \"type\"")?;
                let origin = match map.get("origin") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => {
                        Some(time::parse_iso(s).ok_or_else(|| format!("bad origin {s:?}"))?)
                    }
                    Some(Value::Number(n)) => Some(n.as_i64().ok_or("bad origin")?),
                    Some(other) => return Err(format!("bad origin {other}")),
                };
                match kind {
                    "period" => {
                        let text = map
                            .get("period")
                            .and_then(Value::as_str)
                            .ok_or("period granularity needs \"period\"")?;
                        let period = Period::parse(text)?;
                        if let Some(tz) = map.get("timeZone").and_then(Value::as_str)
                            && !matches!(tz, "UTC" | "Etc/UTC" | "Z" | "+00:00")
                        {
                            return Err(format!("timeZone {tz:?} is not supported yet (UTC only)"));
                        }
                        if period.fixed_millis() == Some(0) {
                            return Err("period must not be zero".into());
                        }
                        if !period.is_fixed()
                            && !matches!(
                                period.single_field(),
                                Some((PeriodField::Years | PeriodField::Months, _))
                            )
                        {
                            return Err(format!(
                                "the period {period} mixes years or months with other fields: not supported"
                            ));
                        }
                        let name = NAMED
                            .iter()
                            .find(|(_, p)| {
                                origin.is_none() && Period::parse(p).ok() == Some(period)
                            })
                            .map(|(n, _)| *n);
                        Ok(Granularity::Period {
                            period,
                            origin,
                            name,
                        })
                    }
                    "duration" => {
                        let millis = map
                            .get("duration")
                            .and_then(Value::as_i64)
                            .filter(|d| *d > 0)
                            .ok_or("duration granularity needs a positive \"duration\"")?;
                        Ok(Granularity::Duration {
                            millis,
                            origin: origin.unwrap_or(0),
                        })
                    }
                    other => Granularity::named(other)
                        .ok_or_else(|| format!("unknown granularity type {other:?}")),
                }
            }
            _ => Err(format!(
                "a granularity must be a string or an object, got {value}"
            )),
        }
    }

    /// Start of the bucket holding `t` (`Bucketer` keeps the shape worked
    /// out for a task's rows).
    pub fn bucket_start(&self, t: i64) -> i64 {
        Bucketer::new(self).start(t)
    }

    /// End (exclusive) of the bucket starting at `start`.
    pub fn bucket_end(&self, start: i64) -> i64 {
        Bucketer::new(self).end(start)
    }

    /// The JSON Druid writes for this granularity (named ones as bare strings).
    pub fn to_json(&self) -> Value {
        match self {
            Granularity::None => json!({"type": "none"}),
            Granularity::All => json!({"type": "all"}),
            Granularity::Period {
                name: Some(name), ..
            } => Value::String((*name).to_string()),
            Granularity::Period { period, origin, .. } => json!({
                "type": "period",
                "period": period.to_string(),
                "timeZone": "UTC",
                "origin": origin.map(time::format_iso),
            }),
            Granularity::Duration { millis, origin } => json!({
                "type": "duration",
                "duration": millis,
                "origin": time::format_iso(*origin),
            }),
        }
    }
}

fn floor_int(v: i64, step: i64) -> i64 {
    v.div_euclid(step) * step
}

/// How a granularity floors a time, worked out once: most granularities
/// are a fixed step from an origin, and working that out per row was ~2% of
/// a replay's instructions.
#[derive(Debug, Clone, Copy)]
pub enum Bucketer {
    Fixed {
        step: i64,
        origin: i64,
    },
    /// Calendar months (years are twelve), from the epoch's.
    Months(i64),
    /// Whole months from an origin, as Druid's PeriodGranularity counts
    /// them with an origin (Joda's month difference; `years` counts whole
    /// years instead, as Druid does for a period in years).
    MonthsFromOrigin {
        months: i64,
        origin: i64,
        years: bool,
    },
    All,
}

impl Bucketer {
    pub fn new(g: &Granularity) -> Bucketer {
        match g {
            Granularity::None => Bucketer::Fixed { step: 1, origin: 0 },
            Granularity::All => Bucketer::All,
            Granularity::Duration { millis, origin } => Bucketer::Fixed {
                step: (*millis).max(1),
                origin: *origin,
            },
            Granularity::Period { period, origin, .. } => match (origin, period.single_field()) {
                (Some(origin), Some((PeriodField::Years, n))) => Bucketer::MonthsFromOrigin {
                    months: 12 * n,
                    origin: *origin,
                    years: true,
                },
                (Some(origin), Some((PeriodField::Months, n))) => Bucketer::MonthsFromOrigin {
                    months: n,
                    origin: *origin,
                    years: false,
                },
                (Some(origin), _) => Bucketer::Fixed {
                    step: period.fixed_millis().unwrap_or(1).max(1),
                    origin: *origin,
                },
                (None, Some((PeriodField::Years, n))) => Bucketer::Months(12 * n),
                (None, Some((PeriodField::Months, n))) => Bucketer::Months(n),
                (None, Some((PeriodField::Weeks, n))) => Bucketer::Fixed {
                    step: n * 7 * MS_PER_DAY,
                    origin: FIRST_MONDAY_MS,
                },
                (None, _) => Bucketer::Fixed {
                    step: period.fixed_millis().unwrap_or(1).max(1),
                    origin: 0,
                },
            },
        }
    }

    #[inline]
    pub fn start(&self, t: i64) -> i64 {
        match *self {
            Bucketer::Fixed { step, origin } => floor_to(t, step, origin),
            Bucketer::Months(n) => time::month_start(floor_int(time::months_since_epoch(t), n)),
            Bucketer::MonthsFromOrigin {
                months,
                origin,
                years,
            } => {
                // Druid: the whole periods since the origin, truncated toward
                // zero, and one period back for a time before that start.
                let whole = whole_months(origin, t, years);
                let m = whole - whole % months;
                let start = time::add_months(origin, m);
                if t < start {
                    time::add_months(origin, m - months)
                } else {
                    start
                }
            }
            Bucketer::All => i64::MIN,
        }
    }

    /// End (exclusive) of the bucket that `start` begins.
    pub fn end(&self, start: i64) -> i64 {
        match *self {
            Bucketer::Fixed { step, .. } => start.saturating_add(step),
            Bucketer::Months(n) => time::month_start(time::months_since_epoch(start) + n),
            // Where the next bucket starts. Druid's `increment` adds the
            // period to the start instead, which from an origin on the
            // 29th to 31st can end a bucket days before the next one
            // begins (Jan 31 + 1 month is Feb 28, + 1 month Mar 28, while
            // the next bucket starts Mar 31), leaving rows outside their
            // segment's interval.
            Bucketer::MonthsFromOrigin {
                months,
                origin,
                years,
            } => time::add_months(origin, whole_months(origin, start, years) + months),
            Bucketer::All => i64::MAX,
        }
    }
}

/// Months from `origin` to `t` as Joda counts them (in whole years when
/// the period is in years, as Druid counts those).
fn whole_months(origin: i64, t: i64, years: bool) -> i64 {
    if years {
        12 * time::years_between(origin, t)
    } else {
        time::months_between(origin, t)
    }
}

/// A `Bucketer` that remembers the last bucket: rows mostly come in time
/// order, so most fall in the bucket of the row before and need no
/// division (two per row, ~1% of a csv replay's instructions, callgrind).
#[derive(Debug, Clone, Copy)]
pub struct LastBucket {
    bucketer: Bucketer,
    start: i64,
    /// Exclusive; below `start` until a bucket was asked for.
    end: i64,
}

impl LastBucket {
    pub fn new(bucketer: Bucketer) -> LastBucket {
        LastBucket {
            bucketer,
            start: i64::MAX,
            end: i64::MIN,
        }
    }

    #[inline(always)]
    pub fn start(&mut self, t: i64) -> i64 {
        if t >= self.start && t < self.end {
            return self.start;
        }
        let start = self.bucketer.start(t);
        self.start = start;
        self.end = self.bucketer.end(start);
        start
    }
}

fn floor_to(t: i64, step: i64, origin: i64) -> i64 {
    origin.wrapping_add(floor_int(t.wrapping_sub(origin), step))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::time::parse_iso;

    fn at(s: &str) -> i64 {
        parse_iso(s).unwrap()
    }

    /// The remembered bucket answers as the bucketer does, on either side
    /// of each bucket's edges, for fixed steps, weeks, months, years and all.
    #[test]
    fn the_last_bucket_answers_as_the_bucketer() {
        for name in [
            "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR", "ALL", "NONE",
        ] {
            let g = Granularity::from_json(&json!(name)).unwrap();
            let bucketer = Bucketer::new(&g);
            let mut last = LastBucket::new(bucketer);
            let mut t = at("2012-12-30T22:00:00Z");
            let end = at("2013-03-02T02:00:00Z");
            while t < end {
                for probe in [t - 1, t, t + 1] {
                    assert_eq!(last.start(probe), bucketer.start(probe), "{name} {probe}");
                }
                t += 37 * 60 * 1000;
            }
            // Back in time, and far away.
            for probe in [
                at("2013-01-01T00:00:00Z"),
                0,
                -1,
                at("2099-06-15T12:00:00Z"),
            ] {
                assert_eq!(last.start(probe), bucketer.start(probe), "{name} {probe}");
            }
        }
    }

    /// Months and years from an origin follow Druid's
    /// PeriodGranularity.truncate: whole periods since the origin by Joda's
    /// difference, truncated toward zero, one period back before that
    /// start; a bucket ends one period after it starts (`increment`).
    #[test]
    fn calendar_periods_count_from_an_origin() {
        let g = |period: &str, origin: &str| {
            Granularity::from_json(&json!({"type": "period", "period": period, "origin": origin}))
                .unwrap()
        };
        let cases = [
            (
                "P1M",
                "2013-01-15T00:00:00Z",
                "2013-02-20T00:00:00Z",
                "2013-02-15T00:00:00Z",
            ),
            (
                "P1M",
                "2013-01-15T00:00:00Z",
                "2013-02-10T00:00:00Z",
                "2013-01-15T00:00:00Z",
            ),
            (
                "P1M",
                "2013-01-15T00:00:00Z",
                "2013-02-15T00:00:00Z",
                "2013-02-15T00:00:00Z",
            ),
            (
                "P1M",
                "2013-01-15T10:00:00Z",
                "2013-02-15T09:59:59.999Z",
                "2013-01-15T10:00:00Z",
            ),
            // Before the origin: one period back from where the count lands.
            (
                "P1M",
                "2013-01-15T00:00:00Z",
                "2012-12-20T00:00:00Z",
                "2012-12-15T00:00:00Z",
            ),
            (
                "P1M",
                "2013-01-15T00:00:00Z",
                "2012-12-10T00:00:00Z",
                "2012-11-15T00:00:00Z",
            ),
            (
                "P3M",
                "2013-01-15T00:00:00Z",
                "2013-05-01T00:00:00Z",
                "2013-04-15T00:00:00Z",
            ),
            (
                "P3M",
                "2013-01-15T00:00:00Z",
                "2013-04-14T00:00:00Z",
                "2013-01-15T00:00:00Z",
            ),
            // A month-end origin: Feb 28 is a whole month after Jan 31.
            (
                "P1M",
                "2013-01-31T00:00:00Z",
                "2013-02-28T12:00:00Z",
                "2013-02-28T00:00:00Z",
            ),
            (
                "P1M",
                "2013-01-31T00:00:00Z",
                "2013-02-27T12:00:00Z",
                "2013-01-31T00:00:00Z",
            ),
            (
                "P1Y",
                "2012-02-29T00:00:00Z",
                "2013-02-28T00:00:00Z",
                "2013-02-28T00:00:00Z",
            ),
            (
                "P1Y",
                "2012-06-01T00:00:00Z",
                "2013-05-31T23:59:59Z",
                "2012-06-01T00:00:00Z",
            ),
            (
                "P2Y",
                "2012-06-01T00:00:00Z",
                "2015-07-01T00:00:00Z",
                "2014-06-01T00:00:00Z",
            ),
        ];
        for (period, origin, t, start) in cases {
            let granularity = g(period, origin);
            let bucketer = Bucketer::new(&granularity);
            assert_eq!(
                time::format_iso(bucketer.start(at(t))),
                time::format_iso(at(start)),
                "{period} from {origin}: {t}"
            );
            let end = bucketer.end(at(start));
            assert_eq!(end, granularity.bucket_end(at(start)), "{period} {start}");
            assert!(
                at(start) <= at(t) && at(t) < end,
                "{period} {t} in its bucket"
            );
            let mut last = LastBucket::new(bucketer);
            assert_eq!(last.start(at(t)), at(start));
        }
        assert_eq!(
            time::format_iso(
                Bucketer::new(&g("P1M", "2013-01-15T00:00:00Z")).end(at("2013-01-15T00:00:00Z"))
            ),
            "2013-02-15T00:00:00.000Z"
        );
        // Buckets from a month-end origin meet: each ends where the next starts.
        let bucketer = Bucketer::new(&g("P1M", "2013-01-31T00:00:00Z"));
        let mut start = at("2013-01-31T00:00:00Z");
        for next in ["2013-02-28", "2013-03-31", "2013-04-30", "2013-05-31"] {
            let end = bucketer.end(start);
            assert_eq!(time::format_iso(end), format!("{next}T00:00:00.000Z"));
            assert_eq!(bucketer.start(end - 1), start);
            assert_eq!(bucketer.start(end), end);
            start = end;
        }
        // Years or months mixed with other fields: refused, origin or not.
        for spec in [
            json!({"type": "period", "period": "P1M1D", "origin": "2013-01-15T00:00:00Z"}),
            json!({"type": "period", "period": "P1Y2M"}),
        ] {
            let err = Granularity::from_json(&spec).unwrap_err();
            assert!(err.contains("mixes years or months"), "{err}");
        }
    }

    /// Joda's month and year differences (values worked out from
    /// BasicMonthOfYearDateTimeField / BasicYearDateTimeField.getDifferenceAsLong).
    #[test]
    fn month_and_year_differences_count_as_joda_does() {
        let months = [
            ("2013-01-31T00:00:00Z", "2013-02-28T00:00:00Z", 1),
            ("2013-01-31T00:00:00Z", "2013-02-27T23:59:59Z", 0),
            ("2013-01-15T10:00:00Z", "2013-02-15T09:59:59Z", 0),
            ("2013-01-15T10:00:00Z", "2013-02-15T10:00:00Z", 1),
            ("2013-03-31T00:00:00Z", "2013-02-28T00:00:00Z", -1),
            ("2013-01-15T00:00:00Z", "2012-12-20T00:00:00Z", 0),
            ("1969-12-15T00:00:00Z", "1970-03-20T00:00:00Z", 3),
        ];
        let years = [
            ("2012-02-29T00:00:00Z", "2013-02-28T00:00:00Z", 1),
            ("2012-02-29T00:00:00Z", "2013-02-27T00:00:00Z", 0),
            ("2011-03-01T00:00:00Z", "2012-02-29T00:00:00Z", 0),
            ("2011-03-01T00:00:00Z", "2012-03-01T00:00:00Z", 1),
            ("2013-06-01T00:00:00Z", "2012-06-01T00:00:00Z", -1),
        ];
        // Typed as a function pointer, so both functions fit one array.
        let months_between: fn(i64, i64) -> i64 = time::months_between;
        for (between, cases) in [
            (months_between, &months[..]),
            (time::years_between, &years[..]),
        ] {
            for &(from, to, want) in cases {
                assert_eq!(between(at(from), at(to)), want, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn buckets_named_granularities() {
        let t = at("2013-05-15T10:47:13.123Z");
        let cases = [
            ("MINUTE", "2013-05-15T10:47:00Z", "2013-05-15T10:48:00Z"),
            (
                "FIFTEEN_MINUTE",
                "2013-05-15T10:45:00Z",
                "2013-05-15T11:00:00Z",
            ),
            ("HOUR", "2013-05-15T10:00:00Z", "2013-05-15T11:00:00Z"),
            ("SIX_HOUR", "2013-05-15T06:00:00Z", "2013-05-15T12:00:00Z"),
            ("DAY", "2013-05-15T00:00:00Z", "2013-05-16T00:00:00Z"),
            ("WEEK", "2013-05-13T00:00:00Z", "2013-05-20T00:00:00Z"),
            ("MONTH", "2013-05-01T00:00:00Z", "2013-06-01T00:00:00Z"),
            ("QUARTER", "2013-04-01T00:00:00Z", "2013-07-01T00:00:00Z"),
            ("YEAR", "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
        ];
        for (name, start, end) in cases {
            let g = Granularity::named(name).unwrap();
            let s = g.bucket_start(t);
            assert_eq!(s, at(start), "{name}");
            assert_eq!(g.bucket_end(s), at(end), "{name}");
        }
    }

    #[test]
    fn parses_all_json_forms() {
        let hour = Granularity::named("HOUR").unwrap();
        assert_eq!(Granularity::from_json(&json!("hour")).unwrap(), hour);
        assert_eq!(
            Granularity::from_json(&json!({"type": "hour"})).unwrap(),
            hour
        );
        assert_eq!(
            Granularity::from_json(
                &json!({"type":"period","period":"PT1H","timeZone":"UTC","origin":null})
            )
            .unwrap(),
            hour
        );
        assert_eq!(
            Granularity::from_json(&json!({"type": "none"})).unwrap(),
            Granularity::None
        );
        assert_eq!(hour.to_json(), json!("HOUR"));
        assert_eq!(Granularity::None.to_json(), json!({"type": "none"}));
        let two_hours = Granularity::from_json(&json!({"type":"period","period":"PT2H"})).unwrap();
        assert_eq!(
            two_hours.bucket_start(at("2013-01-01T03:30:00Z")),
            at("2013-01-01T02:00:00Z")
        );
        assert!(Granularity::from_json(&json!("FORTNIGHT")).is_err());
        assert!(
            Granularity::from_json(
                &json!({"type":"period","period":"P1D","timeZone":"America/New_York"})
            )
            .is_err()
        );
    }

    /// Every granularity puts a time in a bucket that holds it, and a
    /// bucket's start floors to itself.
    #[test]
    fn buckets_hold_their_times() {
        let mut granularities: Vec<Granularity> = [
            "NONE",
            "SECOND",
            "MINUTE",
            "FIFTEEN_MINUTE",
            "HOUR",
            "SIX_HOUR",
            "DAY",
            "WEEK",
            "MONTH",
            "QUARTER",
            "YEAR",
        ]
        .iter()
        .map(|n| Granularity::named(n).unwrap())
        .collect();
        for j in [
            json!({"type":"period","period":"PT2H"}),
            json!({"type":"period","period":"P2W"}),
            json!({"type":"period","period":"P3M"}),
            json!({"type":"period","period":"PT1H","origin":"2013-01-01T00:30:00Z"}),
            json!({"type":"duration","duration":7200000,"origin":"1970-01-01T00:17:00Z"}),
        ] {
            granularities.push(Granularity::from_json(&j).unwrap());
        }
        for g in &granularities {
            for t in [-86_400_001, -1, 0, 1, 1_357_000_000_123, 1_700_000_000_000] {
                let start = g.bucket_start(t);
                assert!(start <= t && t < g.bucket_end(start), "{g:?} at {t}");
                assert_eq!(g.bucket_start(start), start, "{g:?} at {t}");
            }
        }
        let hours_from_half_past = Granularity::from_json(
            &json!({"type":"period","period":"PT1H","origin":"2013-01-01T00:30:00Z"}),
        )
        .unwrap();
        assert_eq!(
            hours_from_half_past.bucket_start(at("2013-05-15T10:47:13Z")),
            at("2013-05-15T10:30:00Z")
        );
        assert_eq!(Granularity::All.bucket_start(0), i64::MIN);
    }

    #[test]
    fn negative_times_floor_down() {
        let g = Granularity::named("DAY").unwrap();
        assert_eq!(g.bucket_start(-1), -MS_PER_DAY);
    }
}
