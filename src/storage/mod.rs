//! Deep storage: Druid's path layout and load specs. Local storage writes
//! `<storageDirectory>/<dataSource>/<start>_<end>/<version>/<partition>/<uuid>/index.zip`
//! (the unique path streaming tasks use) with a `local` loadSpec.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use crate::spec::time::format_iso;

/// Druid's default storage directory of a segment (DataSegmentPusher).
pub fn storage_dir(
    data_source: &str,
    interval: (i64, i64),
    version: &str,
    partition: u32,
) -> String {
    format!(
        "{data_source}/{}_{}/{version}/{partition}",
        format_iso(interval.0),
        format_iso(interval.1)
    )
}

pub struct LocalDeepStorage {
    root: PathBuf,
}

/// Where a pushed segment went.
pub struct Pushed {
    pub path: PathBuf,
    pub load_spec: Value,
}

impl LocalDeepStorage {
    pub fn new(root: &Path) -> Result<LocalDeepStorage> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating deep storage {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("resolving {}", root.display()))?;
        Ok(LocalDeepStorage { root })
    }

    /// Write an index.zip under a fresh unique directory.
    pub fn push(&self, zip: &[u8], dir: &str) -> Result<Pushed> {
        let target_dir = self.root.join(dir).join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&target_dir)
            .with_context(|| format!("creating {}", target_dir.display()))?;
        let target = target_dir.join("index.zip");
        std::fs::write(&target, zip).with_context(|| format!("writing {}", target.display()))?;
        Ok(Pushed {
            load_spec: json!({"type": "local", "path": target.to_string_lossy()}),
            path: target,
        })
    }

    /// Remove a pushed copy that will not be published (Druid deletes its
    /// own pushes when a replica already published the same segments).
    pub fn delete(&self, pushed: &Path) -> Result<()> {
        if let Some(dir) = pushed.parent() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn druid_storage_dir() {
        assert_eq!(
            storage_dir(
                "wiki",
                (1_704_067_200_000, 1_704_153_600_000),
                "2024-01-02T03:04:05.678Z",
                0
            ),
            "wiki/2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z/2024-01-02T03:04:05.678Z/0"
        );
    }
}
