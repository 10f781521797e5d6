//! Deep storage: Druid's path layout and load specs. Local storage writes
//! `<storageDirectory>/<dataSource>/<start>_<end>/<version>/<partition>/<uuid>/index.zip`
//! (the unique path streaming tasks use) with a `local` loadSpec.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    /// Directories under the root made (or found) by earlier pushes.
    made: Mutex<HashSet<PathBuf>>,
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
        Ok(LocalDeepStorage {
            root,
            made: Mutex::new(HashSet::new()),
        })
    }

    /// Make `dir` (relative to the root) one level at a time from the top,
    /// skipping levels already made: `create_dir_all` first tries the
    /// deepest path and walks up on each failure, three failed mkdirs a
    /// segment (a replay writes hundreds).
    fn make_dirs(&self, dir: &Path) -> Result<()> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        let mut path = self.root.clone();
        for part in dir.components() {
            path.push(part);
            if made.contains(&path) {
                continue;
            }
            match std::fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
            made.insert(path.clone());
        }
        Ok(())
    }

    /// Write an index.zip under a fresh unique directory.
    pub fn push(&self, zip: &[u8], dir: &str) -> Result<Pushed> {
        self.make_dirs(Path::new(dir))?;
        let target_dir = self.root.join(dir).join(uuid::Uuid::new_v4().to_string());
        if let Err(e) = std::fs::create_dir(&target_dir) {
            // A parent removed behind our back: forget what was made.
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e).with_context(|| format!("creating {}", target_dir.display()));
            }
            self.made.lock().unwrap_or_else(|e| e.into_inner()).clear();
            std::fs::create_dir_all(&target_dir)
                .with_context(|| format!("creating {}", target_dir.display()))?;
        }
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

    #[test]
    fn pushes_share_parents_and_survive_a_removed_one() {
        let root = tempfile::tempdir().unwrap();
        let storage = LocalDeepStorage::new(root.path()).unwrap();
        let dir = "ds/2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z/v1/0";
        let a = storage.push(b"a", dir).unwrap();
        let b = storage.push(b"b", dir).unwrap();
        assert_ne!(a.path, b.path);
        assert_eq!(
            a.path.parent().unwrap().parent(),
            b.path.parent().unwrap().parent()
        );
        assert_eq!(std::fs::read(&a.path).unwrap(), b"a");
        // Someone removes the data source's directory between pushes.
        std::fs::remove_dir_all(root.path().join("ds")).unwrap();
        let c = storage.push(b"c", dir).unwrap();
        assert_eq!(std::fs::read(&c.path).unwrap(), b"c");
        let d = storage.push(b"d", "ds/other/v1/1").unwrap();
        assert!(
            d.path
                .starts_with(root.path().canonicalize().unwrap().join("ds/other/v1/1"))
        );
    }
}
