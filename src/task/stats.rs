//! Row accounting (`rowStats.buildSegments`) and Druid's parse-exception
//! handling: count first, log if asked, keep the newest reports, fail past
//! `maxParseExceptions`.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RowStats {
    pub processed: u64,
    pub processed_bytes: u64,
    pub processed_with_error: u64,
    pub thrown_away: u64,
    pub unparseable: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Unparseable,
    ProcessedWithError,
}

pub struct ParseErrors {
    max: i64,
    keep: usize,
    log: bool,
    /// Newest first, as Druid reports them.
    pub saved: VecDeque<String>,
}

impl ParseErrors {
    pub fn new(max_parse_exceptions: i64, max_saved: i64, log: bool) -> ParseErrors {
        ParseErrors {
            max: max_parse_exceptions,
            keep: max_saved.max(0) as usize,
            log,
            saved: VecDeque::new(),
        }
    }

    pub fn keeps_reports(&self) -> bool {
        self.keep > 0
    }

    /// Count one parse error; Err when the task must fail.
    pub fn record(
        &mut self,
        stats: &mut RowStats,
        kind: ErrorKind,
        message: String,
    ) -> Result<(), String> {
        match kind {
            ErrorKind::Unparseable => stats.unparseable += 1,
            ErrorKind::ProcessedWithError => stats.processed_with_error += 1,
        }
        if self.log {
            log::warn!("parse exception: {message}");
        }
        if self.keep > 0 {
            if self.saved.len() == self.keep {
                self.saved.pop_back();
            }
            self.saved.push_front(message.clone());
        }
        let errors = stats.unparseable + stats.processed_with_error;
        if errors as i64 > self.max {
            return Err(format!(
                "Max parse exceptions[{}] exceeded; last: {message}",
                self.max
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_past_the_limit_and_keeps_the_newest() {
        let mut stats = RowStats::default();
        let mut errors = ParseErrors::new(2, 2, false);
        errors
            .record(&mut stats, ErrorKind::Unparseable, "a".into())
            .unwrap();
        errors
            .record(&mut stats, ErrorKind::ProcessedWithError, "b".into())
            .unwrap();
        let err = errors
            .record(&mut stats, ErrorKind::Unparseable, "c".into())
            .unwrap_err();
        assert!(err.starts_with("Max parse exceptions[2] exceeded"));
        assert_eq!(errors.saved, ["c", "b"]);
        assert_eq!(stats.unparseable, 2);
        assert_eq!(stats.processed_with_error, 1);
    }

    #[test]
    fn zero_means_first_error_fails() {
        let mut stats = RowStats::default();
        let mut errors = ParseErrors::new(0, 0, false);
        assert!(
            errors
                .record(&mut stats, ErrorKind::Unparseable, "x".into())
                .is_err()
        );
        assert!(errors.saved.is_empty());
    }
}
