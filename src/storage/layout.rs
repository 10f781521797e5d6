//! Where Druid's pushers put a segment in each kind of deep storage, and
//! the loadSpec a Historical pulls it by (spec/deep-storage.md §1-4):
//!
//! - s3: `[<baseKey>/]<dataSource>/<start>_<end>/<version>/<partition>/<uuid>/index.zip`,
//!   loadSpec `{"type":"s3_zip","bucket","key","S3Schema"}`;
//! - google: the same layout under `[<prefix>/]`, loadSpec `{"type":"google","bucket","path"}`;
//! - azure: `[<prefix minus one trailing />/]<dataSource>/<start basic>_<end basic>/<version, ':' as '_'>/<partition>/<uuid>/index.zip`,
//!   loadSpec `{"type":"azure","containerName","blobPath"}`.
//!
//! Streaming tasks always push with a unique (UUID) directory.

use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::fmt::Write;

use crate::spec::time::{civil_from_days, format_iso};

/// The file every cloud pusher uploads.
pub const INDEX_ZIP: &str = "index.zip";

/// What names a segment in deep storage.
#[derive(Debug, Clone, Copy)]
pub struct SegmentPlace<'a> {
    pub data_source: &'a str,
    /// Start and end, milliseconds since the epoch (UTC).
    pub interval: (i64, i64),
    pub version: &'a str,
    pub partition: u32,
}

/// Druid's default storage directory (DataSegmentPusher.getDefaultStorageDir
/// without the unique part): ISO times and the version as they are, colons kept.
pub fn default_storage_dir(place: &SegmentPlace) -> String {
    storage_dir(place, format_iso, place.version.to_string())
}

/// The Azure pusher's storage directory: Joda basicDateTime times
/// (`20240301T100000.000Z`) and the version with `:` replaced by `_`, "to
/// avoid using colons in file path".
pub fn azure_storage_dir(place: &SegmentPlace) -> String {
    storage_dir(place, format_basic, place.version.replace(':', "_"))
}

/// `<dataSource>/<start>_<end>/<version>/<partition>` with times as `time` writes them.
fn storage_dir(place: &SegmentPlace, time: fn(i64) -> String, version: String) -> String {
    format!(
        "{}/{}_{}/{version}/{}",
        place.data_source,
        time(place.interval.0),
        time(place.interval.1),
        place.partition
    )
}

/// Joda's `ISODateTimeFormat.basicDateTime()` of a UTC instant:
/// `yyyyMMdd'T'HHmmss.SSS` and `Z`.
pub fn format_basic(millis: i64) -> String {
    const MS_PER_DAY: i64 = 86_400_000;
    let (year, month, day) = civil_from_days(millis.div_euclid(MS_PER_DAY));
    let ms_of_day = millis.rem_euclid(MS_PER_DAY);
    let (h, rest) = (ms_of_day / 3_600_000, ms_of_day % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    let mut out = String::with_capacity(20);
    if (0..=9999).contains(&year) {
        let _ = write!(out, "{year:04}");
    } else {
        let _ = write!(out, "{year:+05}");
    }
    let _ = write!(out, "{month:02}{day:02}T{h:02}{m:02}{s:02}.{ms:03}Z");
    out
}

/// `<dir>/<uuid>/index.zip` under a prefix joined with `/` when non-empty,
/// the prefix kept as given (S3Utils.constructSegmentPath, GoogleDataSegmentPusher.buildPath:
/// a prefix ending in `/` gives `//`).
fn under_prefix(prefix: &str, dir: &str, uuid: &str) -> String {
    if prefix.is_empty() {
        format!("{dir}/{uuid}/{INDEX_ZIP}")
    } else {
        format!("{prefix}/{dir}/{uuid}/{INDEX_ZIP}")
    }
}

/// The S3 object key of a pushed segment (`druid.storage.baseKey`).
pub fn s3_key(base_key: &str, place: &SegmentPlace, uuid: &str) -> String {
    under_prefix(base_key, &default_storage_dir(place), uuid)
}

/// The GCS object name of a pushed segment (`druid.google.prefix`).
pub fn google_path(prefix: &str, place: &SegmentPlace, uuid: &str) -> String {
    under_prefix(prefix, &default_storage_dir(place), uuid)
}

/// The Azure blob name of a pushed segment (`druid.azure.prefix`, one
/// trailing `/` removed).
pub fn azure_blob_path(prefix: &str, place: &SegmentPlace, uuid: &str) -> String {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    under_prefix(prefix, &azure_storage_dir(place), uuid)
}

/// S3DataSegmentPusher.makeLoadSpec: `S3Schema` is `s3a` with
/// `druid.storage.useS3aSchema=true`, else `s3n`.
pub fn s3_load_spec(bucket: &str, key: &str, use_s3a_schema: bool) -> Value {
    json!({
        "type": "s3_zip",
        "bucket": bucket,
        "key": key,
        "S3Schema": if use_s3a_schema { "s3a" } else { "s3n" },
    })
}

/// AzureDataSegmentPusher.makeLoadSpec (no account: the Historical reads
/// from its own `druid.azure.account`).
pub fn azure_load_spec(container: &str, blob_path: &str) -> Value {
    json!({"type": "azure", "containerName": container, "blobPath": blob_path})
}

/// GoogleDataSegmentPusher.makeLoadSpec.
pub fn google_load_spec(bucket: &str, path: &str) -> Value {
    json!({"type": "google", "bucket": bucket, "path": path})
}

/// The object_store path of a key, refusing any key object_store would
/// store under another name than the loadSpec says (it drops a leading or
/// trailing `/` and refuses empty, `.` and `..` segments and control
/// characters). `property` names what to change (the prefix or the
/// dataSource).
pub fn object_path(key: &str, property: &str) -> Result<object_store::path::Path> {
    match object_store::path::Path::parse(key) {
        Ok(path) if path.as_ref() == key => Ok(path),
        Ok(path) => bail!(
            "the object key {key:?} would be stored as {:?}; check {property} (a leading or trailing '/', or '//')",
            path.as_ref()
        ),
        Err(e) => bail!("the object key {key:?} cannot be stored ({e}); check {property}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's worked example: wikiticker, 2024-03-01T10/11, version
    /// 2024-03-01T10:00:05.123Z, partition 3.
    const START: i64 = 1_709_287_200_000;
    const END: i64 = 1_709_290_800_000;
    const UUID: &str = "3f1c2a9e-5b7d-4e0a-9c61-2b8f0d7e4a11";

    fn place() -> SegmentPlace<'static> {
        SegmentPlace {
            data_source: "wikiticker",
            interval: (START, END),
            version: "2024-03-01T10:00:05.123Z",
            partition: 3,
        }
    }

    #[test]
    fn s3_keys_and_load_spec_are_druids() {
        let key = s3_key("druid/segments", &place(), UUID);
        assert_eq!(
            key,
            "druid/segments/wikiticker/2024-03-01T10:00:00.000Z_2024-03-01T11:00:00.000Z/2024-03-01T10:00:05.123Z/3/3f1c2a9e-5b7d-4e0a-9c61-2b8f0d7e4a11/index.zip"
        );
        // An empty baseKey is dropped; a trailing '/' is kept as Druid keeps it.
        assert_eq!(
            s3_key("", &place(), UUID),
            "wikiticker/2024-03-01T10:00:00.000Z_2024-03-01T11:00:00.000Z/2024-03-01T10:00:05.123Z/3/3f1c2a9e-5b7d-4e0a-9c61-2b8f0d7e4a11/index.zip"
        );
        assert!(s3_key("base/", &place(), UUID).starts_with("base//wikiticker/"));
        assert_eq!(
            s3_load_spec("deep", &key, false).to_string(),
            format!(r#"{{"type":"s3_zip","bucket":"deep","key":"{key}","S3Schema":"s3n"}}"#)
        );
        assert_eq!(s3_load_spec("deep", &key, true)["S3Schema"], "s3a");
    }

    #[test]
    fn google_paths_and_load_spec_are_druids() {
        let path = google_path("druid/segments", &place(), UUID);
        assert_eq!(path, s3_key("druid/segments", &place(), UUID));
        assert_eq!(
            google_path("", &place(), UUID),
            "wikiticker/2024-03-01T10:00:00.000Z_2024-03-01T11:00:00.000Z/2024-03-01T10:00:05.123Z/3/3f1c2a9e-5b7d-4e0a-9c61-2b8f0d7e4a11/index.zip"
        );
        assert!(google_path("p/", &place(), UUID).starts_with("p//wikiticker/"));
        assert_eq!(
            google_load_spec("deep", &path).to_string(),
            format!(r#"{{"type":"google","bucket":"deep","path":"{path}"}}"#)
        );
    }

    #[test]
    fn azure_blob_paths_and_load_spec_are_druids() {
        let blob = azure_blob_path("druid/segments/", &place(), UUID);
        assert_eq!(
            blob,
            "druid/segments/wikiticker/20240301T100000.000Z_20240301T110000.000Z/2024-03-01T10_00_05.123Z/3/3f1c2a9e-5b7d-4e0a-9c61-2b8f0d7e4a11/index.zip"
        );
        assert_eq!(blob, azure_blob_path("druid/segments", &place(), UUID));
        for empty in ["", "/"] {
            assert_eq!(
                azure_blob_path(empty, &place(), UUID),
                "wikiticker/20240301T100000.000Z_20240301T110000.000Z/2024-03-01T10_00_05.123Z/3/3f1c2a9e-5b7d-4e0a-9c61-2b8f0d7e4a11/index.zip"
            );
        }
        assert_eq!(
            azure_load_spec("deep", &blob).to_string(),
            format!(r#"{{"type":"azure","containerName":"deep","blobPath":"{blob}"}}"#)
        );
    }

    #[test]
    fn basic_times_are_jodas() {
        assert_eq!(format_basic(0), "19700101T000000.000Z");
        assert_eq!(format_basic(-1), "19691231T235959.999Z");
        assert_eq!(format_basic(1_704_067_200_123), "20240101T000000.123Z");
        // Far from the epoch: a sign, as the ISO form has; never a panic.
        assert_eq!(format_basic(253_402_300_800_000), "+100000101T000000.000Z");
        let _ = format_basic(i64::MIN);
        let _ = format_basic(i64::MAX);
    }

    #[test]
    fn keys_object_store_would_rename_are_refused_naming_the_property() {
        let key = s3_key("druid/segments", &place(), UUID);
        assert_eq!(
            object_path(&key, "druid.storage.baseKey").unwrap().as_ref(),
            key
        );
        for (prefix, why) in [
            ("/lead", "would be stored as"),
            ("trail/", "cannot be stored"),
            ("a/../b", "cannot be stored"),
        ] {
            let e = object_path(&s3_key(prefix, &place(), UUID), "druid.storage.baseKey")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(why) && e.contains("druid.storage.baseKey"),
                "{prefix}: {e}"
            );
        }
        // Characters Path::from would percent-encode are kept by parse.
        let odd = SegmentPlace {
            data_source: "a b{c}%",
            ..place()
        };
        let key = s3_key("", &odd, UUID);
        assert_eq!(object_path(&key, "dataSource").unwrap().as_ref(), key);
    }
}
