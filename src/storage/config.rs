//! Deep storage from Druid's runtime properties: `druid.storage.type`
//! local, s3, azure or google, each read from the properties Druid's own
//! extension binds (spec/deep-storage.md §2.1, §3.1, §4.1). Secrets are
//! kept in [`Secret`], whose Debug and Display never show them, and no
//! error message quotes a secret's value.

use anyhow::{Result, bail};
use std::collections::BTreeMap;

use super::{Packaging, ZIP_PROPERTY};

pub const TYPE_PROPERTY: &str = "druid.storage.type";

/// A credential: shown as `<secret>` by Debug and Display.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// 20 MiB: Druid 33's TransferManager threshold and minimum part size.
pub const DEFAULT_MULTIPART: u64 = 20 * 1024 * 1024;
/// S3 refuses parts below 5 MiB (all but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// When an upload goes in parts, and how large they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multipart {
    /// false: always one PUT (`druid.storage.transfer.useTransferManager=false`).
    pub enabled: bool,
    /// Objects larger than this go up in parts.
    pub threshold: u64,
    pub part_size: u64,
}

impl Default for Multipart {
    fn default() -> Self {
        Multipart {
            enabled: true,
            threshold: DEFAULT_MULTIPART,
            part_size: DEFAULT_MULTIPART,
        }
    }
}

/// `druid.storage.sse.type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    None,
    /// `s3`: SSE-S3 (AES256).
    S3,
    /// `kms`, with `druid.storage.sse.kms.keyId` when set.
    Kms(Option<String>),
    /// `custom`: SSE-C with `druid.storage.sse.custom.base64EncodedKey`.
    Custom(Secret),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    pub base_key: String,
    pub disable_acl: bool,
    pub use_s3a_schema: bool,
    pub sse: Sse,
    /// `druid.s3.endpoint.url` with the scheme `druid.s3.protocol` gives it
    /// when it has none.
    pub endpoint: Option<String>,
    /// `druid.s3.endpoint.signingRegion`, else `aws.region`; None: the
    /// environment's AWS_REGION / AWS_DEFAULT_REGION, else us-east-1.
    pub region: Option<String>,
    pub path_style: bool,
    /// `druid.s3.accessKey` / `druid.s3.secretKey` (each a Druid password
    /// provider), else `druid.s3.fileSessionCredentials`; None: the
    /// environment and the instance's credential chain.
    pub credentials: Option<(Secret, Secret, Option<Secret>)>,
    pub multipart: Multipart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureAuth {
    Key(Secret),
    Sas(Secret),
    /// object_store's chain (environment, workload and managed identity),
    /// with `druid.azure.managedIdentityClientId` when set.
    Chain(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSettings {
    pub account: String,
    pub container: String,
    pub prefix: String,
    /// `https://<account>.<storageAccountEndpointSuffix>` (scheme from
    /// `druid.azure.protocol`), or kinesis-peon's `druid.azure.endpoint.url`.
    pub endpoint: String,
    pub auth: AzureAuth,
    /// `druid.azure.maxTries`.
    pub max_tries: u32,
    pub multipart: Multipart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleSettings {
    pub bucket: String,
    pub prefix: String,
    pub multipart: Multipart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSettings {
    Local(Packaging),
    S3(S3Settings),
    Azure(AzureSettings),
    Google(GoogleSettings),
}

/// Property lookups that name the property in every error.
struct Props<'a>(&'a BTreeMap<String, String>);

impl Props<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn required(&self, key: &str, kind: &str) -> Result<String> {
        match self.get(key) {
            Some(v) => Ok(v.to_string()),
            None => bail!("{key} must be set for {TYPE_PROPERTY}={kind}"),
        }
    }

    /// A boolean as Jackson reads one from a property.
    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => bail!("{key}: {v:?} is not true or false"),
        }
    }

    fn number(&self, key: &str, default: u64) -> Result<u64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("{key}: {v:?} is not a whole number of bytes")),
        }
    }

    /// A Druid PasswordProvider: a plain string, or a JSON object of type
    /// `default` (`password`) or `environment` (`variable`). The value is
    /// never quoted in an error.
    fn password(&self, key: &str) -> Result<Option<Secret>> {
        let Some(v) = self.0.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if !v.starts_with('{') {
            return Ok(Some(Secret(v.to_string())));
        }
        let Ok(provider) = serde_json::from_str::<serde_json::Value>(v) else {
            bail!("{key}: not a password or a password provider's JSON");
        };
        let field = |name: &str| provider.get(name).and_then(|f| f.as_str());
        match field("type").unwrap_or("default") {
            "default" => match field("password") {
                Some(p) => Ok(Some(Secret(p.to_string()))),
                None => bail!("{key}: a default password provider needs \"password\""),
            },
            "environment" => {
                let Some(var) = field("variable") else {
                    bail!("{key}: an environment password provider needs \"variable\"");
                };
                match std::env::var(var) {
                    Ok(p) => Ok(Some(Secret(p))),
                    Err(_) => bail!("{key}: the environment variable {var} is not set"),
                }
            }
            other => bail!(
                "{key}: password provider type {other:?} is not supported (default, environment)"
            ),
        }
    }

    /// `druid.storage.transfer.*`: Druid 33's S3 TransferManager settings.
    fn multipart(&self) -> Result<Multipart> {
        let d = Multipart::default();
        let m = Multipart {
            enabled: self.bool("druid.storage.transfer.useTransferManager", d.enabled)?,
            threshold: self.number(
                "druid.storage.transfer.multipartUploadThreshold",
                d.threshold,
            )?,
            part_size: self.number("druid.storage.transfer.minimumUploadPartSize", d.part_size)?,
        };
        if m.part_size < MIN_PART_SIZE {
            bail!(
                "druid.storage.transfer.minimumUploadPartSize: {} is below S3's 5 MiB minimum part size ({MIN_PART_SIZE})",
                m.part_size
            );
        }
        if m.threshold == 0 {
            bail!("druid.storage.transfer.multipartUploadThreshold: must be above 0");
        }
        Ok(m)
    }
}

impl StorageSettings {
    /// Read at the start of a task; anything wrong names its property.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<StorageSettings> {
        let p = Props(properties);
        let kind = p.get(TYPE_PROPERTY).unwrap_or("local");
        match kind {
            "local" => Ok(StorageSettings::Local(Packaging::from_property(
                properties.get(ZIP_PROPERTY).map(String::as_str),
            )?)),
            "s3" => s3(&p).map(StorageSettings::S3),
            "azure" => azure(&p).map(StorageSettings::Azure),
            "google" => google(&p).map(StorageSettings::Google),
            other => bail!(
                "{TYPE_PROPERTY}: {other:?} is not supported; kinesis-peon pushes to local, s3, azure or google deep storage"
            ),
        }
    }
}

fn s3(p: &Props) -> Result<S3Settings> {
    let bucket = p.required("druid.storage.bucket", "s3")?;
    let endpoint = match p.get("druid.s3.endpoint.url") {
        None => None,
        Some(url) if url.contains("://") => Some(url.to_string()),
        Some(url) => {
            let protocol = p.get("druid.s3.protocol").unwrap_or("https");
            if !matches!(protocol, "http" | "https") {
                bail!("druid.s3.protocol: {protocol:?} is not http or https");
            }
            Some(format!("{protocol}://{url}"))
        }
    };
    let sse = match p.get("druid.storage.sse.type") {
        None | Some("noop") => Sse::None,
        Some("s3") => Sse::S3,
        Some("kms") => Sse::Kms(p.get("druid.storage.sse.kms.keyId").map(String::from)),
        Some("custom") => match p.password("druid.storage.sse.custom.base64EncodedKey")? {
            Some(key) => Sse::Custom(key),
            None => bail!(
                "druid.storage.sse.custom.base64EncodedKey must be set for druid.storage.sse.type=custom"
            ),
        },
        Some(other) => {
            bail!("druid.storage.sse.type: {other:?} is not one of noop, s3, kms, custom")
        }
    };
    let access = p.password("druid.s3.accessKey")?;
    let secret = p.password("druid.s3.secretKey")?;
    let credentials = match (access, secret) {
        (Some(a), Some(s)) => Some((a, s, None)),
        (None, None) => match p.get("druid.s3.fileSessionCredentials") {
            Some(file) => Some(session_credentials(file)?),
            None => None,
        },
        (Some(_), None) => bail!("druid.s3.accessKey is set without druid.s3.secretKey"),
        (None, Some(_)) => bail!("druid.s3.secretKey is set without druid.s3.accessKey"),
    };
    Ok(S3Settings {
        base_key: p.get("druid.storage.baseKey").unwrap_or("").to_string(),
        disable_acl: p.bool("druid.storage.disableAcl", false)?,
        use_s3a_schema: p.bool("druid.storage.useS3aSchema", false)?,
        sse,
        endpoint,
        region: p
            .get("druid.s3.endpoint.signingRegion")
            .or_else(|| p.get("aws.region"))
            .map(String::from),
        path_style: p.bool("druid.s3.enablePathStyleAccess", false)?,
        credentials,
        multipart: p.multipart()?,
        bucket,
    })
}

/// Druid's `druid.s3.fileSessionCredentials`: a properties file with
/// accessKey, secretKey and sessionToken (read once, at start).
fn session_credentials(file: &str) -> Result<(Secret, Secret, Option<Secret>)> {
    const KEY: &str = "druid.s3.fileSessionCredentials";
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{KEY}: reading {file}: {e}"))?;
    let mut values = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        if let Some((k, v)) = line.split_once(['=', ':']) {
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let mut take = |k: &str| values.remove(k).filter(|v| !v.is_empty()).map(Secret);
    match (take("accessKey"), take("secretKey"), take("sessionToken")) {
        (Some(a), Some(s), token) => Ok((a, s, token)),
        _ => bail!("{KEY}: {file} lacks accessKey or secretKey"),
    }
}

fn azure(p: &Props) -> Result<AzureSettings> {
    let account = p.required("druid.azure.account", "azure")?;
    let container = p.required("druid.azure.container", "azure")?;
    let protocol = p.get("druid.azure.protocol").unwrap_or("https");
    if !matches!(protocol, "http" | "https") {
        bail!("druid.azure.protocol: {protocol:?} is not http or https");
    }
    let suffix = match (
        p.get("druid.azure.storageAccountEndpointSuffix"),
        p.get("druid.azure.endpointSuffix"),
    ) {
        (Some(s), _) => s.to_string(),
        (None, Some(deprecated)) => format!("blob.{deprecated}"),
        (None, None) => "blob.core.windows.net".to_string(),
    };
    let endpoint = match p.get("druid.azure.endpoint.url") {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("{protocol}://{account}.{suffix}"),
    };
    let auth = if let Some(key) = p.password("druid.azure.key")? {
        AzureAuth::Key(key)
    } else if let Some(sas) = p.password("druid.azure.sharedAccessStorageToken")? {
        AzureAuth::Sas(sas)
    } else {
        AzureAuth::Chain(
            p.get("druid.azure.managedIdentityClientId")
                .map(String::from),
        )
    };
    let max_tries = p.number("druid.azure.maxTries", 3)?;
    if !(1..=100).contains(&max_tries) {
        bail!("druid.azure.maxTries: {max_tries} is not between 1 and 100");
    }
    Ok(AzureSettings {
        prefix: p.get("druid.azure.prefix").unwrap_or("").to_string(),
        endpoint,
        auth,
        max_tries: max_tries as u32,
        multipart: p.multipart()?,
        account,
        container,
    })
}

fn google(p: &Props) -> Result<GoogleSettings> {
    Ok(GoogleSettings {
        bucket: p.required("druid.google.bucket", "google")?,
        prefix: p.get("druid.google.prefix").unwrap_or("").to_string(),
        multipart: p.multipart()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<StorageSettings> {
        StorageSettings::from_properties(&props(pairs))
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        format!("{:#}", settings(pairs).unwrap_err())
    }

    #[test]
    fn local_is_the_default_and_other_types_are_refused_naming_the_property() {
        assert_eq!(
            settings(&[]).unwrap(),
            StorageSettings::Local(Packaging::Directory)
        );
        assert_eq!(
            settings(&[
                ("druid.storage.type", "local"),
                ("druid.storage.zip", "true")
            ])
            .unwrap(),
            StorageSettings::Local(Packaging::Zip)
        );
        for other in ["hdfs", "cassandra", "S3", "noop"] {
            let e = error(&[("druid.storage.type", other)]);
            assert!(
                e.contains("druid.storage.type") && e.contains(other),
                "{other}: {e}"
            );
        }
    }

    #[test]
    fn s3_reads_druids_properties() {
        let StorageSettings::S3(s) = settings(&[
            ("druid.storage.type", "s3"),
            ("druid.storage.bucket", "deep"),
            ("druid.storage.baseKey", "druid/segments"),
            ("druid.storage.disableAcl", "TRUE"),
            ("druid.storage.useS3aSchema", "true"),
            ("druid.storage.sse.type", "kms"),
            ("druid.storage.sse.kms.keyId", "key-1"),
            ("druid.s3.endpoint.url", "127.0.0.1:9000"),
            ("druid.s3.protocol", "http"),
            ("druid.s3.endpoint.signingRegion", "eu-west-1"),
            ("druid.s3.enablePathStyleAccess", "true"),
            ("druid.s3.accessKey", "AK"),
            (
                "druid.s3.secretKey",
                r#"{"type":"default","password":"SK"}"#,
            ),
            ("druid.storage.transfer.multipartUploadThreshold", "6291456"),
            ("druid.storage.transfer.minimumUploadPartSize", "5242880"),
        ])
        .unwrap() else {
            panic!("not s3")
        };
        assert_eq!(s.bucket, "deep");
        assert_eq!(s.base_key, "druid/segments");
        assert!(s.disable_acl && s.use_s3a_schema && s.path_style);
        assert_eq!(s.sse, Sse::Kms(Some("key-1".into())));
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        let (a, k, t) = s.credentials.clone().unwrap();
        assert_eq!((a.expose(), k.expose(), t), ("AK", "SK", None));
        assert_eq!(
            s.multipart,
            Multipart {
                enabled: true,
                threshold: 6 << 20,
                part_size: 5 << 20
            }
        );
        // Debug shows no secret.
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("\"SK\"") && !shown.contains("\"AK\""),
            "{shown}"
        );

        // Druid's defaults: virtual-hosted, ACL on, s3n, no SSE, 20 MiB parts.
        let StorageSettings::S3(d) =
            settings(&[("druid.storage.type", "s3"), ("druid.storage.bucket", "b")]).unwrap()
        else {
            panic!("not s3")
        };
        assert!(!d.disable_acl && !d.use_s3a_schema && !d.path_style);
        assert_eq!((d.sse, d.endpoint, d.credentials), (Sse::None, None, None));
        assert_eq!(d.multipart, Multipart::default());
        assert_eq!(d.multipart.threshold, 20 * 1024 * 1024);
    }

    #[test]
    fn s3_mistakes_name_their_property_and_never_a_secret() {
        let s3 = |extra: &[(&'static str, &'static str)]| {
            let mut p = vec![("druid.storage.type", "s3"), ("druid.storage.bucket", "b")];
            p.extend_from_slice(extra);
            error(&p)
        };
        assert!(error(&[("druid.storage.type", "s3")]).contains("druid.storage.bucket"));
        for (extra, names) in [
            (
                vec![("druid.storage.disableAcl", "yes")],
                "druid.storage.disableAcl",
            ),
            (
                vec![("druid.storage.sse.type", "aes")],
                "druid.storage.sse.type",
            ),
            (
                vec![("druid.storage.sse.type", "custom")],
                "druid.storage.sse.custom.base64EncodedKey",
            ),
            (
                vec![("druid.s3.accessKey", "TOPSECRET")],
                "druid.s3.secretKey",
            ),
            (
                vec![
                    ("druid.s3.accessKey", "A"),
                    ("druid.s3.secretKey", "{TOPSECRET"),
                ],
                "druid.s3.secretKey",
            ),
            (
                vec![
                    ("druid.s3.accessKey", "A"),
                    (
                        "druid.s3.secretKey",
                        r#"{"type":"vault","password":"TOPSECRET"}"#,
                    ),
                ],
                "druid.s3.secretKey",
            ),
            (
                vec![(
                    "druid.s3.secretKey",
                    r#"{"type":"environment","variable":"KINESIS_PEON_UNSET_VARIABLE"}"#,
                )],
                "KINESIS_PEON_UNSET_VARIABLE",
            ),
            (
                vec![("druid.storage.transfer.minimumUploadPartSize", "1024")],
                "druid.storage.transfer.minimumUploadPartSize",
            ),
            (
                vec![("druid.storage.transfer.multipartUploadThreshold", "2x")],
                "druid.storage.transfer.multipartUploadThreshold",
            ),
            (
                vec![("druid.s3.fileSessionCredentials", "/nonexistent/creds")],
                "druid.s3.fileSessionCredentials",
            ),
            (
                vec![
                    ("druid.s3.endpoint.url", "host:1"),
                    ("druid.s3.protocol", "ftp"),
                ],
                "druid.s3.protocol",
            ),
        ] {
            let e = s3(&extra);
            assert!(e.contains(names), "{extra:?}: {e}");
            assert!(!e.contains("TOPSECRET"), "{extra:?}: {e}");
        }
    }

    #[test]
    fn s3_session_credentials_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        std::fs::write(
            &file,
            "# comment\naccessKey=A1\nsecretKey = S1\nsessionToken: T1\n",
        )
        .unwrap();
        let StorageSettings::S3(s) = settings(&[
            ("druid.storage.type", "s3"),
            ("druid.storage.bucket", "b"),
            ("druid.s3.fileSessionCredentials", file.to_str().unwrap()),
        ])
        .unwrap() else {
            panic!("not s3")
        };
        let (a, k, t) = s.credentials.unwrap();
        assert_eq!(
            (a.expose(), k.expose(), t.unwrap().expose()),
            ("A1", "S1", "T1")
        );
        std::fs::write(&file, "accessKey=A1\n").unwrap();
        let e = error(&[
            ("druid.storage.type", "s3"),
            ("druid.storage.bucket", "b"),
            ("druid.s3.fileSessionCredentials", file.to_str().unwrap()),
        ]);
        assert!(e.contains("lacks accessKey or secretKey"), "{e}");
    }

    #[test]
    fn azure_reads_druids_properties() {
        let StorageSettings::Azure(a) = settings(&[
            ("druid.storage.type", "azure"),
            ("druid.azure.account", "acct"),
            ("druid.azure.container", "deep"),
            ("druid.azure.prefix", "druid/"),
            ("druid.azure.key", "S2V5"),
            ("druid.azure.maxTries", "5"),
        ])
        .unwrap() else {
            panic!("not azure")
        };
        assert_eq!(
            (a.account.as_str(), a.container.as_str(), a.prefix.as_str()),
            ("acct", "deep", "druid/")
        );
        assert_eq!(a.endpoint, "https://acct.blob.core.windows.net");
        assert_eq!(a.auth, AzureAuth::Key(Secret("S2V5".into())));
        assert_eq!(a.max_tries, 5);

        let base = [
            ("druid.storage.type", "azure"),
            ("druid.azure.account", "acct"),
            ("druid.azure.container", "deep"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut p = base.to_vec();
            p.extend_from_slice(extra);
            match settings(&p).unwrap() {
                StorageSettings::Azure(a) => a,
                _ => panic!("not azure"),
            }
        };
        let a = with(&[(
            "druid.azure.storageAccountEndpointSuffix",
            "blob.core.usgovcloudapi.net",
        )]);
        assert_eq!(a.endpoint, "https://acct.blob.core.usgovcloudapi.net");
        let a = with(&[("druid.azure.endpointSuffix", "core.chinacloudapi.cn")]);
        assert_eq!(a.endpoint, "https://acct.blob.core.chinacloudapi.cn");
        let a = with(&[("druid.azure.endpoint.url", "http://127.0.0.1:10000/acct/")]);
        assert_eq!(a.endpoint, "http://127.0.0.1:10000/acct");
        assert_eq!(a.auth, AzureAuth::Chain(None));
        assert_eq!(a.max_tries, 3);
        let a = with(&[("druid.azure.sharedAccessStorageToken", "sv=1&sig=x")]);
        assert_eq!(a.auth, AzureAuth::Sas(Secret("sv=1&sig=x".into())));
        let a = with(&[("druid.azure.managedIdentityClientId", "id-1")]);
        assert_eq!(a.auth, AzureAuth::Chain(Some("id-1".into())));

        for (pairs, names) in [
            (&base[..2], "druid.azure.container"),
            (&[base[0], base[2]][..], "druid.azure.account"),
        ] {
            let e = error(pairs);
            assert!(e.contains(names), "{e}");
        }
        let mut p = base.to_vec();
        p.push(("druid.azure.maxTries", "0"));
        assert!(error(&p).contains("druid.azure.maxTries"));
    }

    #[test]
    fn google_reads_druids_properties() {
        let StorageSettings::Google(g) = settings(&[
            ("druid.storage.type", "google"),
            ("druid.google.bucket", "deep"),
            ("druid.google.prefix", "druid"),
        ])
        .unwrap() else {
            panic!("not google")
        };
        assert_eq!((g.bucket.as_str(), g.prefix.as_str()), ("deep", "druid"));
        assert!(error(&[("druid.storage.type", "google")]).contains("druid.google.bucket"));
    }
}
