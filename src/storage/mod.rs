//! Deep storage: Druid's path layout and load specs. Local storage writes
//! under `<storageDirectory>/<dataSource>/<start>_<end>/<version>/<partition>/<uuid>/`
//! (the unique path streaming tasks use) a segment's files as they are, in
//! `index/` (Druid's local default since 26.0.0), or zipped as `index.zip`
//! with `druid.storage.zip=true`; either way with a `local` loadSpec.
//! `druid.storage.type` s3, azure and google push `index.zip` through
//! object_store under Druid's keys (`cloud`, `layout`, `config`).

pub mod cloud;
pub mod config;
pub mod layout;

use anyhow::{Context, Result};
use hashbrown::HashSet;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::segment::writer::{SegmentFileSet, SegmentZipper};

/// The runtime property choosing how local deep storage keeps a segment.
pub const ZIP_PROPERTY: &str = "druid.storage.zip";

/// How a pushed segment is kept: Druid's LocalDataSegmentPusherConfig.zip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaging {
    /// The segment's files in an `index/` directory (Druid's default).
    Directory,
    /// One `index.zip`.
    Zip,
}

impl Packaging {
    /// From `druid.storage.zip` (absent: Druid's default, false). Booleans
    /// as Jackson reads them from a property: true or false in any case.
    pub fn from_property(value: Option<&str>) -> Result<Packaging> {
        match value.map(str::trim) {
            None => Ok(Packaging::Directory),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Packaging::Directory),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Packaging::Zip),
            Some(v) => anyhow::bail!("{ZIP_PROPERTY}: {v:?} is not true or false"),
        }
    }
}

pub struct LocalDeepStorage {
    root: PathBuf,
    packaging: Packaging,
    /// One DEFLATE state for every zipped segment (zlib's tables are large
    /// to set up; see SegmentZipper).
    zipper: Mutex<SegmentZipper>,
    /// Directories under the root made (or found) by earlier pushes.
    made: Mutex<HashSet<PathBuf>>,
    /// Directories this process created whose parent has not been fsynced
    /// since (a new directory's name lives in its parent).
    fresh: Mutex<Vec<PathBuf>>,
}

/// Where a pushed segment went.
pub struct Pushed {
    /// index.zip, or the index/ directory.
    pub path: PathBuf,
    pub load_spec: Value,
    pub size: u64,
}

/// Where a pushed segment is: a local file or directory, or an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Object(cloud::ObjectLocation),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::Object(o) => f.write_str(&o.url),
        }
    }
}

/// A push to any deep storage: where, the loadSpec, Druid's `size`.
pub struct PushedSegment {
    pub location: Location,
    pub load_spec: Value,
    pub size: u64,
}

/// The deep storage `druid.storage.type` names.
pub enum DeepStorage {
    Local(LocalDeepStorage),
    Cloud(cloud::CloudDeepStorage),
}

impl DeepStorage {
    /// From the runtime properties, at the start of a task: a type other
    /// than local, s3, azure or google, or a setting it lacks, stops the
    /// task naming the property. Local storage lives under
    /// `druid.storage.storageDirectory`, else under `local_root`.
    pub fn from_properties(
        properties: &std::collections::BTreeMap<String, String>,
        local_root: &Path,
    ) -> Result<DeepStorage> {
        use config::StorageSettings;
        Ok(match StorageSettings::from_properties(properties)? {
            StorageSettings::Local(packaging) => {
                // Druid's own property when given (a cluster's directory,
                // for a backfill), else the run's base directory.
                let root = properties
                    .get("druid.storage.storageDirectory")
                    .map(Path::new)
                    .unwrap_or(local_root);
                DeepStorage::Local(LocalDeepStorage::new(root, packaging)?)
            }
            StorageSettings::S3(s) => DeepStorage::Cloud(cloud::CloudDeepStorage::s3(&s)?),
            StorageSettings::Azure(s) => DeepStorage::Cloud(cloud::CloudDeepStorage::azure(&s)?),
            StorageSettings::Google(s) => DeepStorage::Cloud(cloud::CloudDeepStorage::google(&s)?),
        })
    }

    pub fn push(
        &self,
        files: &SegmentFileSet,
        place: &layout::SegmentPlace,
    ) -> Result<PushedSegment> {
        match self {
            DeepStorage::Local(local) => {
                let p = local.push(files, &layout::default_storage_dir(place))?;
                Ok(PushedSegment {
                    location: Location::Local(p.path),
                    load_spec: p.load_spec,
                    size: p.size,
                })
            }
            DeepStorage::Cloud(cloud) => {
                let u = cloud.push(files, place)?;
                Ok(PushedSegment {
                    location: Location::Object(u.location),
                    load_spec: u.load_spec,
                    // Druid's size: the files' bytes, not the zip's.
                    size: files.iter().map(|(_, bytes)| bytes.len() as u64).sum(),
                })
            }
        }
    }

    /// Make pushes durable before the metadata commit that names them.
    /// Objects are durable once their upload is acknowledged.
    pub fn sync(&self, pushed: &[&Location]) -> Result<()> {
        match self {
            DeepStorage::Local(local) => {
                let paths: Vec<&Path> = pushed
                    .iter()
                    .filter_map(|l| match l {
                        Location::Local(p) => Some(p.as_path()),
                        Location::Object(_) => None,
                    })
                    .collect();
                local.sync(&paths)
            }
            DeepStorage::Cloud(_) => Ok(()),
        }
    }

    /// Remove a push that will not be published.
    pub fn delete(&self, location: &Location) -> Result<()> {
        match (self, location) {
            (DeepStorage::Local(local), Location::Local(path)) => local.delete(path),
            (DeepStorage::Cloud(cloud), Location::Object(o)) => cloud.delete(o),
            (_, other) => anyhow::bail!("{other} was not pushed to this deep storage"),
        }
    }
}

impl LocalDeepStorage {
    pub fn new(root: &Path, packaging: Packaging) -> Result<LocalDeepStorage> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating deep storage {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("resolving {}", root.display()))?;
        Ok(LocalDeepStorage {
            root,
            packaging,
            zipper: Mutex::new(SegmentZipper::default()),
            made: Mutex::new(HashSet::new()),
            fresh: Mutex::new(Vec::new()),
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
                Ok(()) => self.note_fresh(&path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
            made.insert(path.clone());
        }
        Ok(())
    }

    /// Write a segment's files under a fresh unique directory, as the
    /// packaging says. `Pushed::size` is Druid's DataSegment size: the
    /// files' own bytes, zipped or not.
    pub fn push(&self, files: &SegmentFileSet, dir: &str) -> Result<Pushed> {
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
            // Any level may be new: sync them all up to the root.
            for dir in target_dir.ancestors().skip(1) {
                if !dir.starts_with(&self.root) || dir == self.root {
                    break;
                }
                self.note_fresh(dir);
            }
        }
        self.note_fresh(&target_dir);
        let size = files.iter().map(|(_, bytes)| bytes.len() as u64).sum();
        let (target, load_path) = match self.packaging {
            Packaging::Zip => {
                let (zip, _) = self
                    .zipper
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .zip(files)?;
                let target = target_dir.join("index.zip");
                std::fs::write(&target, zip)
                    .with_context(|| format!("writing {}", target.display()))?;
                crate::segment::writer::file_written();
                let load_path = target.to_string_lossy().into_owned();
                (target, load_path)
            }
            Packaging::Directory => {
                // Written in place rather than moved in from an intermediate
                // directory as Druid does: the unique directory is new and
                // nothing points at it until the segment is published.
                let target = target_dir.join("index");
                std::fs::create_dir(&target)
                    .with_context(|| format!("creating {}", target.display()))?;
                for (name, bytes) in files {
                    let file = target.join(name);
                    std::fs::write(&file, bytes)
                        .with_context(|| format!("writing {}", file.display()))?;
                    crate::segment::writer::file_written();
                }
                // Java's File.toURI().getPath() of a directory: a trailing /.
                let load_path = format!("{}/", target.to_string_lossy());
                (target, load_path)
            }
        };
        Ok(Pushed {
            load_spec: json!({"type": "local", "path": load_path}),
            path: target,
            size,
        })
    }

    fn note_fresh(&self, dir: &Path) {
        self.fresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dir.to_path_buf());
    }

    /// Make pushed segments durable before the metadata commit names them:
    /// fsync each file (an index.zip, or every file of an index/
    /// directory), the index/ directory, and the parent of every directory
    /// the pushes created, so that neither a segment's bytes nor its path
    /// can vanish in a power cut after the commit.
    pub fn sync(&self, pushed: &[&Path]) -> Result<()> {
        let mut dirs = std::collections::BTreeSet::new();
        for path in pushed {
            if path.is_dir() {
                for entry in std::fs::read_dir(path)
                    .with_context(|| format!("listing {} to fsync it", path.display()))?
                {
                    fsync(&entry?.path())?;
                }
                dirs.insert(path.to_path_buf());
            } else {
                fsync(path)?;
            }
            if let Some(parent) = path.parent() {
                dirs.insert(parent.to_path_buf());
            }
        }
        let fresh = std::mem::take(&mut *self.fresh.lock().unwrap_or_else(|e| e.into_inner()));
        for dir in &fresh {
            if let Some(parent) = dir.parent() {
                dirs.insert(parent.to_path_buf());
            }
        }
        let result = dirs.iter().try_for_each(|d| fsync(d));
        if result.is_err() {
            // Still unsynced: the next sync tries them again.
            self.fresh
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(fresh);
        }
        result
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

/// fsync every file of a directory, then the directory itself.
pub(crate) fn fsync_dir_files(dir: &Path) -> Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("listing {} to fsync it", dir.display()))?
    {
        fsync(&entry?.path())?;
    }
    fsync(dir)
}

/// fsync a file or a directory (a directory opened read-only, as Linux
/// allows, syncs its entries).
pub(crate) fn fsync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsyncing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn druid_storage_dir() {
        assert_eq!(
            layout::default_storage_dir(&layout::SegmentPlace {
                data_source: "wiki",
                interval: (1_704_067_200_000, 1_704_153_600_000),
                version: "2024-01-02T03:04:05.678Z",
                partition: 0
            }),
            "wiki/2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z/2024-01-02T03:04:05.678Z/0"
        );
    }

    fn files(text: &str) -> SegmentFileSet {
        vec![
            ("version.bin".to_string(), vec![0, 0, 0, 9]),
            ("00000.smoosh".to_string(), text.as_bytes().to_vec()),
        ]
    }

    /// The bytes of a pushed segment's 00000.smoosh, zipped or not.
    fn smoosh_of(pushed: &Pushed) -> Vec<u8> {
        let files = crate::segment::reader::SegmentFiles::open(&pushed.path).unwrap();
        files.files()["00000.smoosh"].clone()
    }

    #[test]
    fn pushes_share_parents_and_survive_a_removed_one() {
        for packaging in [Packaging::Directory, Packaging::Zip] {
            let root = tempfile::tempdir().unwrap();
            let storage = LocalDeepStorage::new(root.path(), packaging).unwrap();
            let dir = "ds/2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z/v1/0";
            let a = storage.push(&files("a"), dir).unwrap();
            let b = storage.push(&files("b"), dir).unwrap();
            assert_ne!(a.path, b.path);
            assert_eq!(
                a.path.parent().unwrap().parent(),
                b.path.parent().unwrap().parent()
            );
            assert_eq!(smoosh_of(&a), b"a");
            // Someone removes the data source's directory between pushes.
            std::fs::remove_dir_all(root.path().join("ds")).unwrap();
            let c = storage.push(&files("c"), dir).unwrap();
            assert_eq!(smoosh_of(&c), b"c");
            let d = storage.push(&files("d"), "ds/other/v1/1").unwrap();
            assert!(
                d.path
                    .starts_with(root.path().canonicalize().unwrap().join("ds/other/v1/1"))
            );
        }
    }

    #[test]
    fn packaging_decides_the_file_and_the_load_spec() {
        let root = tempfile::tempdir().unwrap();
        let dir = "ds/2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z/v1/0";

        let plain = LocalDeepStorage::new(root.path(), Packaging::Directory).unwrap();
        let p = plain.push(&files("abc"), dir).unwrap();
        assert_eq!(p.path.file_name().unwrap(), "index");
        assert_eq!(std::fs::read(p.path.join("00000.smoosh")).unwrap(), b"abc");
        assert_eq!(
            std::fs::read(p.path.join("version.bin")).unwrap(),
            [0, 0, 0, 9]
        );
        let path = p.load_spec["path"].as_str().unwrap();
        assert!(path.ends_with("/index/"), "{path}");
        assert_eq!(p.load_spec["type"], "local");
        assert_eq!(p.size, 7);

        let zipped = LocalDeepStorage::new(root.path(), Packaging::Zip).unwrap();
        let z = zipped.push(&files("abc"), dir).unwrap();
        assert_eq!(z.path.file_name().unwrap(), "index.zip");
        assert!(z.path.is_file());
        assert!(
            z.load_spec["path"]
                .as_str()
                .unwrap()
                .ends_with("/index.zip")
        );
        assert_eq!(z.size, 7, "the size is the files' bytes, not the zip's");
        assert_eq!(smoosh_of(&z), b"abc");

        // Removing a push takes its unique directory with it.
        for pushed in [&p, &z] {
            plain.delete(&pushed.path).unwrap();
            assert!(!pushed.path.parent().unwrap().exists());
        }
    }

    #[test]
    fn the_zip_property_reads_as_jackson_reads_a_boolean() {
        assert_eq!(
            Packaging::from_property(None).unwrap(),
            Packaging::Directory
        );
        assert_eq!(
            Packaging::from_property(Some("false")).unwrap(),
            Packaging::Directory
        );
        assert_eq!(
            Packaging::from_property(Some("TRUE")).unwrap(),
            Packaging::Zip
        );
        assert_eq!(
            Packaging::from_property(Some(" true ")).unwrap(),
            Packaging::Zip
        );
        let e = Packaging::from_property(Some("yes"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("druid.storage.zip") && e.contains("yes"), "{e}");
    }
}
