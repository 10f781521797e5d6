//! Kinesis sequence numbers and Druid's markers, ordered as Druid orders them
//! (`KinesisSequenceNumber`: big unsigned integers; end markers as +∞,
//! unread markers as −∞). They live in `spec` because the task JSON is made
//! of them; `source` re-exports them.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

const NO_END: &str = "NO_END_SEQUENCE_NUMBER";
pub const EOS: &str = "EOS";
const EXPIRED: &str = "EXPIRED";
pub const UNREAD_TRIM_HORIZON: &str = "UNREAD_TRIM_HORIZON";
const UNREAD_LATEST: &str = "UNREAD_LATEST";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SequenceNumber {
    /// A decimal number, stored without leading zeros ("0" for zero).
    Number(Arc<str>),
    NoEnd,
    EndOfShard,
    Expired,
    UnreadTrimHorizon,
    UnreadLatest,
}

impl SequenceNumber {
    pub fn parse(text: &str) -> Result<SequenceNumber, String> {
        Ok(match text {
            NO_END => SequenceNumber::NoEnd,
            EOS => SequenceNumber::EndOfShard,
            EXPIRED => SequenceNumber::Expired,
            UNREAD_TRIM_HORIZON => SequenceNumber::UnreadTrimHorizon,
            UNREAD_LATEST => SequenceNumber::UnreadLatest,
            _ => SequenceNumber::Number(Arc::from(normalize_decimal(text)?)),
        })
    }

    pub fn is_number(&self) -> bool {
        matches!(self, SequenceNumber::Number(_))
    }

    /// How this compares with a number given as normalized digits.
    pub fn cmp_digits(&self, digits: &str) -> Ordering {
        match self {
            SequenceNumber::Number(n) => cmp_decimal(n, digits),
            _ => self.rank().cmp(&0),
        }
    }

    /// A number from digits already normalized (`normalize_decimal`).
    pub fn from_digits(digits: &str) -> SequenceNumber {
        SequenceNumber::Number(Arc::from(digits))
    }

    fn rank(&self) -> i8 {
        match self {
            SequenceNumber::UnreadTrimHorizon | SequenceNumber::UnreadLatest => -1,
            SequenceNumber::Number(_) => 0,
            SequenceNumber::NoEnd | SequenceNumber::EndOfShard | SequenceNumber::Expired => 1,
        }
    }
}

/// Check a string of ASCII digits and strip its leading zeros.
pub fn normalize_decimal(text: &str) -> Result<&str, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("not a sequence number: {text:?}"));
    }
    Ok(trim_leading_zeros(text))
}

/// Leading zeros off digits already checked ("0" stays).
pub fn trim_leading_zeros(digits: &str) -> &str {
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() { "0" } else { trimmed }
}

/// Compare two normalized decimals as unsigned integers.
pub fn cmp_decimal(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SequenceNumber::Number(a), SequenceNumber::Number(b)) => cmp_decimal(a, b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SequenceNumber::Number(n) => n,
            SequenceNumber::NoEnd => NO_END,
            SequenceNumber::EndOfShard => EOS,
            SequenceNumber::Expired => EXPIRED,
            SequenceNumber::UnreadTrimHorizon => UNREAD_TRIM_HORIZON,
            SequenceNumber::UnreadLatest => UNREAD_LATEST,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> SequenceNumber {
        SequenceNumber::parse(s).unwrap()
    }

    #[test]
    fn orders_as_big_integers() {
        assert!(n("9") < n("10"));
        assert!(n("0009") == n("9"));
        assert!(
            n("49645260181590830166131860913909960308246281948219935181")
                < n("49649093786579754323194875749118625276018955597971147104")
        );
        assert!(n("5") < n(NO_END));
        assert_eq!(n(EOS).cmp(&n(NO_END)), Ordering::Equal);
        assert!(n(UNREAD_LATEST) < n("0"));
    }

    #[test]
    fn refuses_non_numbers() {
        assert!(SequenceNumber::parse("").is_err());
        assert!(SequenceNumber::parse("12a").is_err());
        assert!(SequenceNumber::parse("-1").is_err());
    }
}
