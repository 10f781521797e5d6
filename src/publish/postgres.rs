//! A Druid cluster's PostgreSQL metadata store, configured by Druid's own
//! runtime properties (`druid.metadata.storage.connector.*`,
//! `druid.metadata.storage.tables.*`), holding the rows an Overlord writes.

use super::backend::{MetaTx, PendingRow, SegmentRow, Tables};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

const CONNECTOR: &str = "druid.metadata.storage.connector";

/// Where and as whom to connect (never printed with the password).
pub struct PgTarget {
    pub config: postgres::Config,
    /// `host:port/database as user`, for messages.
    pub describe: String,
    pub schema: Option<String>,
}

/// The connection Druid's PostgreSQL connector would open for these
/// properties.
pub fn target(props: &BTreeMap<String, String>) -> Result<PgTarget> {
    let uri_key = format!("{CONNECTOR}.connectURI");
    let uri = props.get(&uri_key).with_context(|| {
        format!("{uri_key} is required with druid.metadata.storage.type=postgresql")
    })?;
    let parsed = parse_jdbc_url(uri).with_context(|| format!("{uri_key}: {uri:?}"))?;
    let user = props
        .get(&format!("{CONNECTOR}.user"))
        .cloned()
        .or_else(|| parsed.params.get("user").cloned());
    let password = match props.get(&format!("{CONNECTOR}.password")) {
        Some(p) => Some(password_value(p, &format!("{CONNECTOR}.password"))?),
        None => parsed.params.get("password").cloned(),
    };
    let ssl_on = |v: Option<&String>| v.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if ssl_on(props.get("druid.metadata.postgres.ssl.useSSL"))
        || ssl_on(parsed.params.get("ssl"))
        || parsed
            .params
            .get("sslmode")
            .is_some_and(|m| !matches!(m.as_str(), "disable" | "allow" | "prefer"))
    {
        bail!(
            "TLS to PostgreSQL (druid.metadata.postgres.ssl.useSSL, ssl or sslmode in {uri_key}) is not supported yet"
        );
    }
    let mut config = postgres::Config::new();
    config
        .host(&parsed.host)
        .port(parsed.port)
        .dbname(&parsed.database)
        .application_name("kinesis-peon")
        .connect_timeout(std::time::Duration::from_secs(30));
    if let Some(u) = &user {
        config.user(u);
    }
    if let Some(p) = &password {
        config.password(p);
    }
    let describe = format!(
        "{}:{}/{} as {}",
        parsed.host,
        parsed.port,
        parsed.database,
        user.as_deref().unwrap_or("(default user)")
    );
    let schema = props
        .get("druid.metadata.postgres.dbTableSchema")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "public");
    if let Some(s) = schema
        .as_ref()
        .filter(|s| !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        bail!("druid.metadata.postgres.dbTableSchema: {s:?} is not a plain schema name");
    }
    Ok(PgTarget {
        config,
        describe,
        schema,
    })
}

/// A password property as Druid's PasswordProvider reads it: a plain
/// string, or JSON `{"type":"default","password":...}` /
/// `{"type":"environment","variable":...}`.
fn password_value(raw: &str, key: &str) -> Result<String> {
    let trimmed = raw.trim();
    if !trimmed.starts_with('{') {
        return Ok(raw.to_string());
    }
    let v: serde_json::Value = serde_json::from_str(trimmed)
        .map_err(|e| anyhow::anyhow!("{key}: not a password provider JSON object ({e})"))?;
    match v.get("type").and_then(|t| t.as_str()).unwrap_or("default") {
        "default" => Ok(v
            .get("password")
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_string()),
        "environment" => {
            let var = v
                .get("variable")
                .and_then(|p| p.as_str())
                .with_context(|| {
                    format!("{key}: an environment password provider needs \"variable\"")
                })?;
            std::env::var(var)
                .with_context(|| format!("{key}: environment variable {var} is not set"))
        }
        other => {
            bail!("{key}: password provider type {other:?} is not supported (default, environment)")
        }
    }
}

struct JdbcUrl {
    host: String,
    port: u16,
    database: String,
    params: BTreeMap<String, String>,
}

/// `jdbc:postgresql://host[:port]/database[?k=v&...]` (one host).
fn parse_jdbc_url(uri: &str) -> Result<JdbcUrl> {
    let rest = uri
        .trim()
        .strip_prefix("jdbc:postgresql://")
        .context("not a jdbc:postgresql://host:port/database URL")?;
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (hostport, database) = main.split_once('/').unwrap_or((main, ""));
    if hostport.contains(',') {
        bail!("several hosts are not supported");
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse::<u16>().with_context(|| format!("port {p:?}"))?,
        ),
        _ => (hostport.to_string(), 5432),
    };
    if host.is_empty() {
        bail!("no host");
    }
    let params = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    Ok(JdbcUrl {
        host,
        port,
        database: if database.is_empty() {
            "postgres".into()
        } else {
            database.to_string()
        },
        params,
    })
}

pub fn connect(target: &PgTarget, tables: &Tables) -> Result<postgres::Client> {
    let mut client = target.config.connect(postgres::NoTls).with_context(|| {
        format!(
            "connecting to the PostgreSQL metadata store at {}",
            target.describe
        )
    })?;
    if let Some(schema) = &target.schema {
        client.batch_execute(&format!("SET search_path TO {schema}"))?;
    }
    create_tables(&mut client, tables)
        .with_context(|| format!("creating Druid's metadata tables in {}", target.describe))?;
    Ok(client)
}

/// The tables as the Druid release the project runs against creates them,
/// if no Druid has created them yet (`createTables`, Druid's default).
fn create_tables(client: &mut postgres::Client, t: &Tables) -> Result<()> {
    let (seg, pend, ds) = (&t.segments, &t.pending_segments, &t.data_source);
    client.batch_execute(&format!(
        r#"
CREATE TABLE IF NOT EXISTS {seg} (
  id VARCHAR(255) NOT NULL, dataSource VARCHAR(255) NOT NULL,
  created_date VARCHAR(255) NOT NULL, start VARCHAR(255) NOT NULL,
  "end" VARCHAR(255) NOT NULL, partitioned BOOLEAN NOT NULL,
  version VARCHAR(255) NOT NULL, used BOOLEAN NOT NULL, payload BYTEA NOT NULL,
  used_status_last_updated VARCHAR(255) NOT NULL, PRIMARY KEY (id));
CREATE INDEX IF NOT EXISTS idx_{seg}_used ON {seg}(used);
CREATE INDEX IF NOT EXISTS idx_{seg}_datasource_used_end_start ON {seg}(dataSource, used, "end", start);
CREATE TABLE IF NOT EXISTS {pend} (
  id VARCHAR(255) NOT NULL, dataSource VARCHAR(255) NOT NULL,
  created_date VARCHAR(255) NOT NULL, start VARCHAR(255) NOT NULL,
  "end" VARCHAR(255) NOT NULL, sequence_name VARCHAR(255) NOT NULL,
  sequence_prev_id VARCHAR(255) NOT NULL,
  sequence_name_prev_id_sha1 VARCHAR(255) NOT NULL, payload BYTEA NOT NULL,
  PRIMARY KEY (id), UNIQUE (sequence_name_prev_id_sha1));
CREATE INDEX IF NOT EXISTS idx_{pend}_datasource_end ON {pend}(dataSource, "end");
CREATE INDEX IF NOT EXISTS idx_{pend}_datasource_sequence ON {pend}(dataSource, sequence_name);
CREATE TABLE IF NOT EXISTS {ds} (
  dataSource VARCHAR(255) NOT NULL, created_date VARCHAR(255) NOT NULL,
  commit_metadata_payload BYTEA NOT NULL, commit_metadata_sha1 VARCHAR(255) NOT NULL,
  PRIMARY KEY (dataSource));
"#
    ))?;
    Ok(())
}

/// A transaction holding the data source's advisory lock, so two
/// kinesis-peon writers of one data source take turns (an Overlord's task
/// locks play that part inside a cluster).
pub fn begin<'a>(
    client: &'a mut postgres::Client,
    tables: &'a Tables,
    data_source: &str,
) -> Result<Box<dyn MetaTx + 'a>> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("kinesis-peon/{data_source}")],
    )?;
    Ok(Box::new(PgTx { tx, t: tables }))
}

struct PgTx<'a> {
    tx: postgres::Transaction<'a>,
    t: &'a Tables,
}

impl MetaTx for PgTx<'_> {
    fn pending_by_key(&mut self, key_sha1: &str) -> Result<Option<Vec<u8>>> {
        let sql = format!(
            "SELECT payload FROM {} WHERE sequence_name_prev_id_sha1 = $1",
            self.t.pending_segments
        );
        Ok(self.tx.query_opt(&sql, &[&key_sha1])?.map(|r| r.get(0)))
    }

    fn used_in_chunk(
        &mut self,
        ds: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let sql = format!(
            r#"SELECT version, payload FROM {} WHERE dataSource = $1 AND start = $2 AND "end" = $3 AND used = true"#,
            self.t.segments
        );
        Ok(self
            .tx
            .query(&sql, &[&ds, &start, &end])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn pending_in_chunk(&mut self, ds: &str, start: &str, end: &str) -> Result<Vec<Vec<u8>>> {
        let sql = format!(
            r#"SELECT payload FROM {} WHERE dataSource = $1 AND start = $2 AND "end" = $3"#,
            self.t.pending_segments
        );
        Ok(self
            .tx
            .query(&sql, &[&ds, &start, &end])?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn is_used(&mut self, id: &str) -> Result<bool> {
        let sql = format!("SELECT used FROM {} WHERE id = $1", self.t.segments);
        let used: Option<bool> = self.tx.query_opt(&sql, &[&id])?.map(|r| r.get(0));
        Ok(used == Some(true))
    }

    fn used_payloads(&mut self, ds: &str) -> Result<Vec<Vec<u8>>> {
        let sql = format!(
            "SELECT payload FROM {} WHERE dataSource = $1 AND used = true ORDER BY id",
            self.t.segments
        );
        Ok(self
            .tx
            .query(&sql, &[&ds])?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn insert_pending(&mut self, p: &PendingRow) -> Result<()> {
        let sql = format!(
            r#"INSERT INTO {} (id, dataSource, created_date, start, "end", sequence_name, sequence_prev_id, sequence_name_prev_id_sha1, payload)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
            self.t.pending_segments
        );
        self.tx.execute(
            &sql,
            &[
                &p.id,
                &p.data_source,
                &p.created_date,
                &p.start,
                &p.end,
                &p.sequence_name,
                &p.sequence_prev_id,
                &p.sequence_name_prev_id_sha1,
                &p.payload,
            ],
        )?;
        Ok(())
    }

    fn datasource_metadata(&mut self, ds: &str) -> Result<Option<Vec<u8>>> {
        let sql = format!(
            "SELECT commit_metadata_payload FROM {} WHERE dataSource = $1",
            self.t.data_source
        );
        Ok(self.tx.query_opt(&sql, &[&ds])?.map(|r| r.get(0)))
    }

    fn insert_datasource(
        &mut self,
        ds: &str,
        created: &str,
        payload: &[u8],
        sha1: &str,
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (dataSource, created_date, commit_metadata_payload, commit_metadata_sha1) VALUES ($1, $2, $3, $4)",
            self.t.data_source
        );
        self.tx.execute(&sql, &[&ds, &created, &payload, &sha1])?;
        Ok(())
    }

    fn swap_datasource(
        &mut self,
        ds: &str,
        payload: &[u8],
        sha1: &str,
        old_sha1: &str,
    ) -> Result<u64> {
        let sql = format!(
            "UPDATE {} SET commit_metadata_payload = $1, commit_metadata_sha1 = $2 WHERE dataSource = $3 AND commit_metadata_sha1 = $4",
            self.t.data_source
        );
        Ok(self.tx.execute(&sql, &[&payload, &sha1, &ds, &old_sha1])?)
    }

    fn insert_segment(&mut self, s: &SegmentRow) -> Result<()> {
        let sql = format!(
            r#"INSERT INTO {} (id, dataSource, created_date, start, "end", partitioned, version, used, payload, used_status_last_updated)
               VALUES ($1, $2, $3, $4, $5, true, $6, true, $7, $3) ON CONFLICT (id) DO NOTHING"#,
            self.t.segments
        );
        self.tx.execute(
            &sql,
            &[
                &s.id,
                &s.data_source,
                &s.created_date,
                &s.start,
                &s.end,
                &s.version,
                &s.payload,
            ],
        )?;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<()> {
        Ok(self.tx.commit()?)
    }
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

    #[test]
    fn jdbc_urls_as_druid_writes_them() {
        let u =
            parse_jdbc_url("jdbc:postgresql://db.example:6543/druid?user=u&password=p").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.database.as_str()),
            ("db.example", 6543, "druid")
        );
        assert_eq!(u.params["user"], "u");
        let u = parse_jdbc_url("jdbc:postgresql://127.0.0.1/meta").unwrap();
        assert_eq!((u.port, u.database.as_str()), (5432, "meta"));
        assert!(parse_jdbc_url("jdbc:mysql://h/d").is_err());
        assert!(parse_jdbc_url("jdbc:postgresql://a:1,b:2/d").is_err());
    }

    #[test]
    fn password_never_reaches_the_description_and_tls_is_refused() {
        let p = props(&[
            (
                "druid.metadata.storage.connector.connectURI",
                "jdbc:postgresql://h:1/d",
            ),
            ("druid.metadata.storage.connector.user", "druid"),
            ("druid.metadata.storage.connector.password", "s3cr3t-pw"),
        ]);
        let t = target(&p).unwrap();
        assert_eq!(t.describe, "h:1/d as druid");
        assert!(!t.describe.contains("s3cr3t"));
        let mut tls = p.clone();
        tls.insert("druid.metadata.postgres.ssl.useSSL".into(), "true".into());
        let e = target(&tls).err().unwrap().to_string();
        assert!(e.contains("useSSL") && !e.contains("s3cr3t"), "{e}");
        let e = target(&props(&[])).err().unwrap().to_string();
        assert!(e.contains("connectURI"), "{e}");
    }

    #[test]
    fn password_providers() {
        let key = "druid.metadata.storage.connector.password";
        assert_eq!(password_value("plain", key).unwrap(), "plain");
        assert_eq!(
            password_value(r#"{"type":"default","password":"pw"}"#, key).unwrap(),
            "pw"
        );
        let e = password_value(
            r#"{"type":"environment","variable":"KP_NO_SUCH_VAR_X"}"#,
            key,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("KP_NO_SUCH_VAR_X"), "{e}");
        assert!(password_value(r#"{"type":"mapString"}"#, key).is_err());
    }

    #[test]
    fn table_names_follow_druids_properties() {
        let t = Tables::from_properties(&props(&[])).unwrap();
        assert_eq!(t, Tables::druid_default());
        let t = Tables::from_properties(&props(&[
            ("druid.metadata.storage.tables.base", "prod"),
            ("druid.metadata.storage.tables.segments", "segs"),
        ]))
        .unwrap();
        assert_eq!(
            (
                t.segments.as_str(),
                t.pending_segments.as_str(),
                t.data_source.as_str()
            ),
            ("segs", "prod_pendingSegments", "prod_dataSource")
        );
        let bad = props(&[("druid.metadata.storage.tables.base", "x; drop table y")]);
        let e = Tables::from_properties(&bad).unwrap_err().to_string();
        assert!(e.contains("druid.metadata.storage.tables.segments"), "{e}");
    }
}
