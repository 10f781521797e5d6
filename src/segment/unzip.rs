//! Reading an index.zip that may be hostile, for the segment reader.

use super::reader::MAX_FILE_BYTES;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::Read;

/// Whether `name` is one of a v9 segment's files.
pub(super) fn is_segment_file(name: &str) -> bool {
    matches!(name, "version.bin" | "factory.json" | "meta.smoosh")
        || name
            .strip_suffix(".smoosh")
            .is_some_and(|n| n.len() == 5 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// DEFLATE cannot expand data more than 1032 times; a header claiming more
/// lies (a zip bomb's trick to make a reader allocate).
const MAX_DEFLATE_RATIO: u64 = 1032;

/// A segment's files from an index.zip that may be hostile: names that
/// could step out of a directory, entries sharing bytes (the overlapping
/// zip bomb), sizes no DEFLATE stream can reach, and entries whose data
/// runs past the size their header gives are refused; only the segment's
/// own files are inflated, and memory grows with the bytes really read,
/// never from a header's word.
pub(super) fn read_zip(file: std::fs::File) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut zip = zip::ZipArchive::new(file).context("not a zip archive")?;
    let mut files = BTreeMap::new();
    let mut spans = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let f = zip
            .by_index_raw(i)
            .with_context(|| format!("zip entry {i}"))?;
        let name = String::from_utf8_lossy(f.name_raw()).into_owned();
        if name.contains('\0')
            || name.starts_with('/')
            || name.contains('\\')
            || name.split('/').any(|part| part == "..")
        {
            bail!("zip entry {name:?} names a path outside the segment");
        }
        spans.push((f.header_start(), f.compressed_size(), name));
    }
    // Local headers are at least 30 bytes; entries may not share bytes.
    spans.sort();
    for w in spans.windows(2) {
        let (start, compressed, name) = &w[0];
        if start.saturating_add(30).saturating_add(*compressed) > w[1].0 {
            bail!(
                "zip entries {name:?} and {:?} overlap (a zip bomb?)",
                w[1].2
            );
        }
    }
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).with_context(|| format!("zip entry {i}"))?;
        let full_name = String::from_utf8_lossy(f.name_raw()).into_owned();
        let name = full_name.rsplit('/').next().unwrap_or("").to_string();
        if f.is_dir() || !is_segment_file(&name) {
            continue;
        }
        let (size, compressed) = (f.size(), f.compressed_size());
        if size > MAX_FILE_BYTES {
            bail!("zip entry {full_name} is larger than 2 GiB");
        }
        if size
            > compressed
                .saturating_mul(MAX_DEFLATE_RATIO)
                .saturating_add(64)
        {
            bail!(
                "zip entry {full_name} claims {size} bytes from {compressed} compressed (a zip bomb?)"
            );
        }
        // One byte past the header's size tells a longer entry apart.
        let mut bytes = Vec::new();
        f.by_ref()
            .take(size + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("inflating zip entry {full_name}"))?;
        if bytes.len() as u64 != size {
            bail!(
                "zip entry {full_name} holds {} bytes{} but its header says {size}",
                bytes.len().min(size as usize + 1),
                if bytes.len() as u64 > size {
                    " or more"
                } else {
                    ""
                }
            );
        }
        if files.insert(name.clone(), bytes).is_some() {
            bail!("zip holds {name} twice");
        }
    }
    Ok(files)
}
