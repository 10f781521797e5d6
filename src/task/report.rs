//! The files Druid expects at the end of a task: `status.json` (TaskStatus)
//! and `report.json` (the ingestionStatsAndErrors report).

use super::stats::RowStats;
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::Path;

/// Druid truncates a failed status's message to 100 characters plus "...".
fn truncate_error(msg: &str) -> String {
    if msg.chars().count() <= 100 {
        msg.to_string()
    } else {
        format!("{}...", msg.chars().take(100).collect::<String>())
    }
}

pub fn status_json(task_id: &str, error: Option<&str>) -> Value {
    json!({
        "id": task_id,
        "status": if error.is_some() { "FAILED" } else { "SUCCESS" },
        "duration": -1,
        "errorMsg": error.map(truncate_error),
        "location": {"host": null, "port": -1, "tlsPort": -1},
    })
}

pub fn report_json(
    task_id: &str,
    stats: &RowStats,
    saved: Option<Vec<String>>,
    error: Option<&str>,
) -> Value {
    let mut payload = json!({
        "ingestionState": if error.is_some() { "BUILD_SEGMENTS" } else { "COMPLETED" },
        "rowStats": {"buildSegments": stats},
        "errorMsg": error,
    });
    if let Some(saved) = saved {
        payload["unparseableEvents"] = json!({"buildSegments": saved});
    }
    json!({
        "ingestionStatsAndErrors": {
            "type": "ingestionStatsAndErrors",
            "taskId": task_id,
            "payload": payload,
        }
    })
}

/// Write the report, then the status (Druid's order), creating directories.
pub fn write_files(
    status_path: &Path,
    report_path: &Path,
    status: &Value,
    report: &Value,
) -> Result<()> {
    for (path, value) in [(report_path, report), (status_path, status)] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(value)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_status_truncates() {
        let long = "x".repeat(150);
        let s = status_json("t", Some(&long));
        assert_eq!(s["status"], "FAILED");
        assert_eq!(s["errorMsg"].as_str().unwrap().len(), 103);
        assert_eq!(status_json("t", None)["errorMsg"], Value::Null);
    }

    #[test]
    fn report_omits_events_when_none_kept() {
        let r = report_json("t", &RowStats::default(), None, None);
        let p = &r["ingestionStatsAndErrors"]["payload"];
        assert!(p.get("unparseableEvents").is_none());
        assert_eq!(p["rowStats"]["buildSegments"]["processed"], 0);
        assert_eq!(p["ingestionState"], "COMPLETED");
    }
}
