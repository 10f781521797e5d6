//! Pushes to S3, Azure Blob Storage and Google Cloud Storage through
//! `object_store`: the segment zipped as the local pusher zips it, one PUT
//! up to the multipart threshold and parts above it, under Druid's key,
//! with Druid's loadSpec. A failed upload is retried with Druid's back-off
//! (1 s doubling, at most 60 s) as long as the error can pass (no answer, a
//! 5xx, 408 or 429), each retry logged; object_store retries single
//! requests underneath. Nothing here logs or returns a credential.

use anyhow::{Context, Result, anyhow};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::{AzureAuth, AzureSettings, GoogleSettings, Multipart, S3Settings, Sse};
use super::layout::{self, SegmentPlace};
use crate::segment::writer::{SegmentFileSet, SegmentZipper};

/// Which store, and what Druid's pusher for it needs to name a segment.
#[derive(Debug, Clone)]
enum Target {
    S3 {
        bucket: String,
        base_key: String,
        use_s3a_schema: bool,
    },
    Azure {
        container: String,
        prefix: String,
    },
    Google {
        bucket: String,
        prefix: String,
    },
}

/// A pushed object: `scheme://bucket/key` for messages, and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLocation {
    pub url: String,
    pub path: ObjectPath,
}

/// One upload's result.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub location: ObjectLocation,
    pub load_spec: Value,
    /// 1 for a single PUT.
    pub parts: usize,
    pub tries: u32,
}

/// Blocking calls on a runtime of its own (the runner's threads are not
/// async); not to be called from inside another tokio runtime.
pub struct CloudDeepStorage {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    target: Target,
    multipart: Multipart,
    /// Tries of a whole upload (Druid: 10 for S3, 5 for Google, maxTries for Azure).
    max_tries: u32,
    attributes: Attributes,
    zipper: Mutex<SegmentZipper>,
}

/// Parts in flight at once for one multipart upload.
const PART_CONCURRENCY: usize = 4;

/// object_store's own retries of a single request, under ours.
fn request_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
        ..Default::default()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the deep-storage runtime")
}

impl CloudDeepStorage {
    pub fn s3(s: &S3Settings) -> Result<CloudDeepStorage> {
        let mut b = match &s.credentials {
            Some((access, secret, token)) => {
                let mut b = AmazonS3Builder::new()
                    .with_access_key_id(access.expose())
                    .with_secret_access_key(secret.expose());
                if let Some(token) = token {
                    b = b.with_token(token.expose());
                }
                // The SDK chain's region lookup, without its credentials.
                if let Some(region) = ["AWS_REGION", "AWS_DEFAULT_REGION"]
                    .iter()
                    .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
                {
                    b = b.with_region(region);
                }
                b
            }
            // Environment, web identity, container and instance credentials.
            None => AmazonS3Builder::from_env(),
        }
        .with_bucket_name(&s.bucket);
        let mut client = ClientOptions::new();
        if !s.disable_acl {
            // Druid grants the bucket owner full control of each object it
            // pushes; object_store signs this header into every request.
            let mut headers = object_store::HeaderMap::new();
            headers.insert(
                "x-amz-acl",
                object_store::HeaderValue::from_static("bucket-owner-full-control"),
            );
            client = client.with_default_headers(headers);
        }
        b = b.with_client_options(client);
        if let Some(region) = &s.region {
            b = b.with_region(region);
        }
        match &s.endpoint {
            Some(endpoint) => {
                let endpoint = s3_endpoint(endpoint, &s.bucket, s.path_style);
                b = b
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(!s.path_style);
            }
            None => b = b.with_virtual_hosted_style_request(!s.path_style),
        }
        let sse_type = || {
            "aws_server_side_encryption"
                .parse::<AmazonS3ConfigKey>()
                .map_err(|e| anyhow!("druid.storage.sse.type: {e}"))
        };
        b = match &s.sse {
            Sse::None => b,
            Sse::S3 => b.with_config(sse_type()?, "AES256"),
            Sse::Kms(Some(key)) => b.with_sse_kms_encryption(key),
            Sse::Kms(None) => b.with_config(sse_type()?, "aws:kms"),
            Sse::Custom(key) => b.with_ssec_encryption(key.expose()),
        };
        let store = b
            .with_retry(request_retry())
            .build()
            .map_err(|e| anyhow!("druid.storage.type=s3, bucket {}: {e}", s.bucket))?;
        Self::new(
            Arc::new(store),
            Target::S3 {
                bucket: s.bucket.clone(),
                base_key: s.base_key.clone(),
                use_s3a_schema: s.use_s3a_schema,
            },
            s.multipart,
            10,
            // What the AWS SDK sends for a .zip file.
            Attributes::from_iter([(Attribute::ContentType, "application/zip")]),
        )
    }

    pub fn azure(s: &AzureSettings) -> Result<CloudDeepStorage> {
        let mut b = match &s.auth {
            AzureAuth::Key(key) => MicrosoftAzureBuilder::new().with_access_key(key.expose()),
            AzureAuth::Sas(sas) => {
                MicrosoftAzureBuilder::new().with_config(AzureConfigKey::SasKey, sas.expose())
            }
            AzureAuth::Chain(client_id) => {
                let b = MicrosoftAzureBuilder::from_env();
                match client_id {
                    Some(id) => b.with_client_id(id),
                    None => b,
                }
            }
        }
        .with_account(&s.account)
        .with_container_name(&s.container)
        .with_endpoint(s.endpoint.clone());
        if s.endpoint.starts_with("http://") {
            b = b.with_allow_http(true);
        }
        let store = b.with_retry(request_retry()).build().map_err(|e| {
            anyhow!(
                "druid.storage.type=azure, account {}, container {}: {e}",
                s.account,
                s.container
            )
        })?;
        Self::new(
            Arc::new(store),
            Target::Azure {
                container: s.container.clone(),
                prefix: s.prefix.clone(),
            },
            s.multipart,
            s.max_tries,
            Attributes::new(),
        )
    }

    /// Application default credentials as object_store reads them from the
    /// environment (GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_SERVICE_ACCOUNT,
    /// ...); Druid has no GCS endpoint property either.
    pub fn google(s: &GoogleSettings) -> Result<CloudDeepStorage> {
        Self::google_with(GoogleCloudStorageBuilder::from_env(), s)
    }

    /// `google` with the client configured by the caller (credentials,
    /// endpoint); the bucket and retries come from the settings.
    pub fn google_with(
        builder: GoogleCloudStorageBuilder,
        s: &GoogleSettings,
    ) -> Result<CloudDeepStorage> {
        let store = builder
            .with_bucket_name(&s.bucket)
            .with_retry(request_retry())
            .build()
            .map_err(|e| anyhow!("druid.storage.type=google, bucket {}: {e}", s.bucket))?;
        Self::new(
            Arc::new(store),
            Target::Google {
                bucket: s.bucket.clone(),
                prefix: s.prefix.clone(),
            },
            s.multipart,
            5,
            Attributes::new(),
        )
    }

    fn new(
        store: Arc<dyn ObjectStore>,
        target: Target,
        multipart: Multipart,
        max_tries: u32,
        attributes: Attributes,
    ) -> Result<CloudDeepStorage> {
        Ok(CloudDeepStorage {
            store,
            runtime: runtime()?,
            target,
            multipart,
            max_tries: max_tries.max(1),
            attributes,
            zipper: Mutex::new(SegmentZipper::default()),
        })
    }

    /// Replace the multipart settings (tests push large segments to Azure
    /// and GCS, whose Druid extensions have no such properties).
    pub fn with_multipart(mut self, multipart: Multipart) -> CloudDeepStorage {
        self.multipart = multipart;
        self
    }

    /// Druid's key and loadSpec for a segment pushed under `uuid`.
    pub fn key_and_load_spec(
        &self,
        place: &SegmentPlace,
        uuid: &str,
    ) -> Result<(ObjectLocation, Value)> {
        let (url, key, spec, property) = match &self.target {
            Target::S3 {
                bucket,
                base_key,
                use_s3a_schema,
            } => {
                let key = layout::s3_key(base_key, place, uuid);
                let spec = layout::s3_load_spec(bucket, &key, *use_s3a_schema);
                (
                    format!("s3://{bucket}/{key}"),
                    key,
                    spec,
                    "druid.storage.baseKey",
                )
            }
            Target::Azure { container, prefix } => {
                let key = layout::azure_blob_path(prefix, place, uuid);
                let spec = layout::azure_load_spec(container, &key);
                (
                    format!("azure://{container}/{key}"),
                    key,
                    spec,
                    "druid.azure.prefix",
                )
            }
            Target::Google { bucket, prefix } => {
                let key = layout::google_path(prefix, place, uuid);
                let spec = layout::google_load_spec(bucket, &key);
                (
                    format!("gs://{bucket}/{key}"),
                    key,
                    spec,
                    "druid.google.prefix",
                )
            }
        };
        let path = layout::object_path(&key, &format!("{property} and the dataSource"))?;
        Ok((ObjectLocation { url, path }, spec))
    }

    /// Zip the segment's files and upload them under a fresh unique path.
    pub fn push(&self, files: &SegmentFileSet, place: &SegmentPlace) -> Result<Uploaded> {
        let (zip, _) = self
            .zipper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .zip(files)?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let (location, load_spec) = self.key_and_load_spec(place, &uuid)?;
        let (parts, tries) = self.upload(&location, zip)?;
        Ok(Uploaded {
            location,
            load_spec,
            parts,
            tries,
        })
    }

    /// Upload `bytes` to `location`, retrying what can pass; (parts, tries).
    pub fn upload(&self, location: &ObjectLocation, bytes: Vec<u8>) -> Result<(usize, u32)> {
        let bytes = Arc::new(bytes);
        let started = Instant::now();
        let mut tries = 1;
        loop {
            match self
                .runtime
                .block_on(self.upload_once(&location.path, bytes.clone()))
            {
                Ok(parts) => {
                    log::debug!(
                        "pushed {} ({} bytes, {parts} part{}) in {:?}",
                        location.url,
                        bytes.len(),
                        if parts == 1 { "" } else { "s" },
                        started.elapsed()
                    );
                    return Ok((parts, tries));
                }
                Err(e) if tries < self.max_tries && retryable(&e) => {
                    let wait = retry_wait(tries);
                    log::warn!(
                        "pushing {}: try {tries} of {} failed, retrying in {wait:?}: {e}",
                        location.url,
                        self.max_tries
                    );
                    std::thread::sleep(wait);
                    tries += 1;
                }
                Err(e) => {
                    // object_store's message already holds its causes'.
                    return Err(anyhow!("{e}").context(format!(
                        "pushing segment to {} failed (try {tries} of {})",
                        location.url, self.max_tries
                    )));
                }
            }
        }
    }

    async fn upload_once(
        &self,
        path: &ObjectPath,
        bytes: Arc<Vec<u8>>,
    ) -> object_store::Result<usize> {
        let m = &self.multipart;
        let len = bytes.len() as u64;
        if !m.enabled || len <= m.threshold {
            let opts = PutOptions {
                attributes: self.attributes.clone(),
                ..Default::default()
            };
            self.store
                .put_opts(path, PutPayload::from(bytes.as_ref().clone()), opts)
                .await?;
            return Ok(1);
        }
        let opts = PutMultipartOptions {
            attributes: self.attributes.clone(),
            ..Default::default()
        };
        let upload = self.store.put_multipart_opts(path, opts).await?;
        let part = m.part_size as usize;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
        for chunk in bytes.chunks(part) {
            if let Err(e) = writer.wait_for_capacity(PART_CONCURRENCY).await {
                let _ = writer.abort().await;
                return Err(e);
            }
            writer.write(chunk);
        }
        writer.finish().await?;
        Ok(bytes.len().div_ceil(part))
    }

    /// Remove a pushed object that will not be published.
    pub fn delete(&self, location: &ObjectLocation) -> Result<()> {
        self.runtime
            .block_on(self.store.delete(&location.path))
            .with_context(|| format!("deleting {}", location.url))
    }

    /// The store itself (tests read pushed objects back through it).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Run a future on the storage's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// The endpoint object_store is given: as configured for path style; for
/// virtual-hosted style (Druid's default) with the bucket in front of the
/// host, as the AWS SDK does, since object_store takes it as given.
fn s3_endpoint(endpoint: &str, bucket: &str, path_style: bool) -> String {
    match endpoint.split_once("://") {
        Some((scheme, host)) if !path_style => format!("{scheme}://{bucket}.{host}"),
        _ => endpoint.to_string(),
    }
}

/// Druid's RetryUtils back-off after the `tries`-th failed try (without its
/// random fuzz): 1 s, doubling, at most 60 s.
fn retry_wait(tries: u32) -> Duration {
    Duration::from_secs(1 << tries.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// Whether a failed upload may pass on another try: no answer at all, or
/// a status that says "later" (5xx, 408, 429). Refusals (403, 404 such as
/// NoSuchBucket, other 4xx) fail at once.
fn retryable(e: &object_store::Error) -> bool {
    let object_store::Error::Generic { source, .. } = e else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(c) = cause {
        if c.downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            return true;
        }
        cause = c.source();
    }
    // The status, as object_store's retry error shows it.
    let text = source.to_string();
    match text
        .split_once("status code: ")
        .and_then(|(_, rest)| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
    {
        Some(code) => code >= 500 || code == 408 || code == 429,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        assert_eq!(
            s3_endpoint("https://s3.example.com:9000", "deep", false),
            "https://deep.s3.example.com:9000"
        );
        assert_eq!(
            s3_endpoint("http://127.0.0.1:9000", "deep", true),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn retries_wait_as_druids_retry_utils() {
        let waits: Vec<u64> = (1..=9).map(|t| retry_wait(t).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_wait(0).as_secs(), 1);
        assert_eq!(retry_wait(u32::MAX).as_secs(), 60);
    }

    #[test]
    fn only_what_may_pass_later_is_retried() {
        let generic = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_string().into(),
        };
        for (text, retry) in [
            (
                "Server returned non-2xx status code: 503 Service Unavailable: SlowDown",
                true,
            ),
            (
                "Server returned non-2xx status code: 500 Internal Server Error",
                true,
            ),
            (
                "Server returned non-2xx status code: 429 Too Many Requests",
                true,
            ),
            (
                "Server returned non-2xx status code: 408 Request Timeout",
                true,
            ),
            (
                "Server returned non-2xx status code: 400 Bad Request: InvalidArgument",
                false,
            ),
            ("Server returned error response: InternalError", true),
        ] {
            assert_eq!(retryable(&generic(text)), retry, "{text}");
        }
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "AccessDenied".to_string().into(),
        };
        assert!(!retryable(&denied));
        let missing = object_store::Error::NotFound {
            path: "k".into(),
            source: "NoSuchBucket".to_string().into(),
        };
        assert!(!retryable(&missing));
    }
}
