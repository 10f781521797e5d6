//! Validation of tuningConfig: the bounds of each knob, the indexSpecs and
//! the parse-exception limits the runner reads from `Resolved`.

use super::validate::Checker;
use super::*;

fn parse_compression(value: &str, path: &str, metrics: bool, c: &mut Checker) -> Compression {
    match value.to_ascii_lowercase().as_str() {
        "lz4" => Compression::Lz4,
        "lzf" => Compression::Lzf,
        "uncompressed" => Compression::Uncompressed,
        "none" if metrics => Compression::None,
        other => {
            c.fail(
                path,
                format!(
                    "{other:?} is not one of lz4, lzf, uncompressed{}",
                    if metrics { ", none" } else { "" }
                ),
            );
            Compression::Lz4
        }
    }
}

fn resolve_index_spec(spec: &IndexSpec, path: &str, c: &mut Checker) -> ResolvedIndexSpec {
    if !spec.bitmap.kind.eq_ignore_ascii_case("roaring") {
        c.fail(
            &format!("{path}.bitmap.type"),
            format!("{:?} is not supported (roaring)", spec.bitmap.kind),
        );
    }
    let long_encoding = match spec.long_encoding.to_ascii_lowercase().as_str() {
        "longs" => LongEncoding::Longs,
        "auto" => LongEncoding::Auto,
        other => {
            c.fail(
                &format!("{path}.longEncoding"),
                format!("{other:?} is not one of longs, auto"),
            );
            LongEncoding::Longs
        }
    };
    ResolvedIndexSpec {
        dimension_compression: parse_compression(
            &spec.dimension_compression,
            &format!("{path}.dimensionCompression"),
            false,
            c,
        ),
        metric_compression: parse_compression(
            &spec.metric_compression,
            &format!("{path}.metricCompression"),
            true,
            c,
        ),
        long_encoding,
        run_compression: spec.bitmap.compress_run_on_serialization.unwrap_or(true),
    }
}

pub(super) fn resolve_tuning(task: &Task, r: &mut Resolved, c: &mut Checker) {
    let t = &task.tuning_config;
    if t.kind != "KinesisTuningConfig" && t.kind != "kinesis" {
        c.fail(
            "tuningConfig.type",
            format!(
                "must be \"KinesisTuningConfig\" or \"kinesis\", got {:?}",
                t.kind
            ),
        );
    }
    c.positive("tuningConfig.maxRowsInMemory", t.max_rows_in_memory);
    if t.max_bytes_in_memory < -1 {
        c.fail(
            "tuningConfig.maxBytesInMemory",
            format!(
                "must be -1 (unlimited), 0 (default) or positive, got {}",
                t.max_bytes_in_memory
            ),
        );
    }
    c.positive("tuningConfig.maxRowsPerSegment", t.max_rows_per_segment);
    if let Some(n) = t.max_total_rows {
        c.positive("tuningConfig.maxTotalRows", n);
    }
    c.non_negative("tuningConfig.maxPendingPersists", t.max_pending_persists);
    c.non_negative(
        "tuningConfig.handoffConditionTimeout",
        t.handoff_condition_timeout,
    );
    c.positive("tuningConfig.recordBufferSize", t.record_buffer_size);
    c.positive(
        "tuningConfig.recordBufferOfferTimeout",
        t.record_buffer_offer_timeout,
    );
    c.non_negative(
        "tuningConfig.recordBufferFullWait",
        t.record_buffer_full_wait,
    );
    c.positive(
        "tuningConfig.fetchSequenceNumberTimeout",
        t.fetch_sequence_number_timeout,
    );
    if let Some(n) = t.fetch_threads {
        c.positive("tuningConfig.fetchThreads", n);
    }
    c.non_negative("tuningConfig.maxParseExceptions", t.max_parse_exceptions);
    c.non_negative(
        "tuningConfig.maxSavedParseExceptions",
        t.max_saved_parse_exceptions,
    );
    c.positive("tuningConfig.maxRecordsPerPoll", t.max_records_per_poll);
    if t.reset_offset_automatically && t.skip_sequence_number_availability_check {
        c.fail(
            "tuningConfig.skipSequenceNumberAvailabilityCheck",
            "cannot be true together with resetOffsetAutomatically",
        );
    }
    for (path, text) in [
        (
            "tuningConfig.intermediatePersistPeriod",
            &t.intermediate_persist_period,
        ),
        (
            "tuningConfig.intermediateHandoffPeriod",
            &t.intermediate_handoff_period,
        ),
    ] {
        match Period::parse(text) {
            Ok(p) if !p.is_fixed() => {
                c.fail(path, "must be a fixed-length period (no months or years)")
            }
            Ok(p) if path.ends_with("PersistPeriod") => r.intermediate_persist_period = Some(p),
            Ok(p) => r.intermediate_handoff_period = Some(p),
            Err(e) => c.fail(path, e),
        }
    }
    r.index_spec = resolve_index_spec(&t.index_spec, "tuningConfig.indexSpec", c);
    r.persist_index_spec = match &t.index_spec_for_intermediate_persists {
        Some(s) => resolve_index_spec(s, "tuningConfig.indexSpecForIntermediatePersists", c),
        None => r.index_spec.clone(),
    };
    // reportParseExceptions=true means the first parse error fails the task.
    if t.report_parse_exceptions {
        r.max_parse_exceptions = 0;
        r.max_saved_parse_exceptions = t.max_saved_parse_exceptions.min(1);
    } else {
        r.max_parse_exceptions = t.max_parse_exceptions;
        r.max_saved_parse_exceptions = t.max_saved_parse_exceptions;
    }
}
