//! The emitters Druid configures with `druid.emitter`: `noop` (the
//! default), `logging` (each event a JSON log line) and `http` (events
//! batched as JSON and POSTed to `druid.emitter.http.recipientBaseUrl` by a
//! background thread, as Druid's `HttpPostEmitter`). An emitter never fails
//! the task: a receiver that is down costs warnings and, past a bound,
//! dropped batches.

use super::{Event, ServiceDims};
use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

const KNOWN_TYPES: &str = "noop, logging, http";

/// Druid's `HttpPostEmitter.MAX_EVENT_SIZE`: larger events are dropped.
const MAX_EVENT_SIZE: usize = 1023 * 1024;
/// Druid's `MAX_SEND_RETRIES`: attempts per batch before it joins the
/// failed batches.
const SEND_ATTEMPTS: u32 = 3;
/// How long one POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing waits for the last batches when
/// `druid.emitter.http.flushTimeOut` is not set (Druid waits forever; a
/// task must end).
const DEFAULT_CLOSE_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn to_log(self) -> log::Level {
        match self {
            LogLevel::Trace => log::Level::Trace,
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn => log::Level::Warn,
            LogLevel::Error => log::Level::Error,
        }
    }
}

/// How a batch of events is framed (`druid.emitter.http.batchingStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// `[e1,e2]` (Druid's default).
    Array,
    /// `e1\ne2\n`.
    Newlines,
    /// `e1e2`.
    OnlyEvents,
}

impl Batching {
    fn frame(self, events: &[Vec<u8>]) -> Vec<u8> {
        let size: usize = events.iter().map(|e| e.len() + 1).sum::<usize>() + 2;
        let mut out = Vec::with_capacity(size);
        match self {
            Batching::Array => {
                out.push(b'[');
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(e);
                }
                out.push(b']');
            }
            Batching::Newlines => {
                for e in events {
                    out.extend_from_slice(e);
                    out.push(b'\n');
                }
            }
            Batching::OnlyEvents => {
                for e in events {
                    out.extend_from_slice(e);
                }
            }
        }
        out
    }

    /// Bytes a batch adds around and between events.
    fn overhead(self) -> usize {
        match self {
            Batching::Array => 2,
            Batching::Newlines => 1,
            Batching::OnlyEvents => 0,
        }
    }
}

/// `druid.emitter.http.*`.
#[derive(Clone)]
pub struct HttpConfig {
    pub url: reqwest::Url,
    /// `flushMillis` (default 60000): a batch is sent once its first
    /// event is this old.
    pub flush_millis: u64,
    /// `flushCount` (default 500): a batch is sent once it holds this many
    /// events (0: no count limit).
    pub flush_count: usize,
    /// `flushTimeOut`: how long closing waits for the last batches.
    pub flush_timeout: Option<Duration>,
    /// `basicAuthentication` ("user:password"); never logged.
    pub basic_auth: Option<(String, String)>,
    pub batching: Batching,
    /// `maxBatchSize` in bytes (default 5 MiB).
    pub max_batch_size: usize,
    /// `batchQueueSizeLimit` (default 50): batches waiting or failed
    /// beyond this are dropped, oldest first.
    pub batch_queue_size_limit: usize,
    /// `contentEncoding=GZIP`.
    pub gzip: bool,
}

impl std::fmt::Debug for HttpConfig {
    // By hand: the credentials stay out of any log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("url", &redacted(&self.url))
            .field("flush_millis", &self.flush_millis)
            .field("flush_count", &self.flush_count)
            .field("flush_timeout", &self.flush_timeout)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|_| "<redacted>"),
            )
            .field("batching", &self.batching)
            .field("max_batch_size", &self.max_batch_size)
            .field("batch_queue_size_limit", &self.batch_queue_size_limit)
            .field("gzip", &self.gzip)
            .finish()
    }
}

/// A URL fit for a log line: any user or password in it removed.
fn redacted(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// Which emitter `druid.emitter` names, with its settings.
#[derive(Clone, Debug)]
pub enum EmitterConfig {
    Noop,
    Logging { level: LogLevel, logger: String },
    Http(HttpConfig),
}

impl EmitterConfig {
    /// Read `druid.emitter` and its properties; every error names the
    /// property (an unknown type is refused as Druid refuses it).
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<EmitterConfig> {
        let kind = props.get("druid.emitter").map(|s| s.trim()).unwrap_or("");
        match kind {
            "" | "noop" => Ok(EmitterConfig::Noop),
            "logging" => {
                let level = match props
                    .get("druid.emitter.logging.logLevel")
                    .map(|s| s.trim().to_ascii_lowercase())
                    .as_deref()
                {
                    None | Some("info") => LogLevel::Info,
                    Some("trace") => LogLevel::Trace,
                    Some("debug") => LogLevel::Debug,
                    Some("warn") => LogLevel::Warn,
                    Some("error") => LogLevel::Error,
                    Some(other) => bail!(
                        "druid.emitter.logging.logLevel: {other:?} is not one of trace, debug, info, warn, error"
                    ),
                };
                let logger = props
                    .get("druid.emitter.logging.loggerClass")
                    .cloned()
                    .unwrap_or_else(|| {
                        "org.apache.druid.java.util.emitter.core.LoggingEmitter".into()
                    });
                Ok(EmitterConfig::Logging { level, logger })
            }
            "http" => Ok(EmitterConfig::Http(http_config(props)?)),
            other => {
                bail!("Unknown emitter type[druid.emitter]=[{other}], known types[{KNOWN_TYPES}]")
            }
        }
    }
}

fn http_config(props: &BTreeMap<String, String>) -> Result<HttpConfig> {
    const P: &str = "druid.emitter.http.";
    let get = |name: &str| props.get(&format!("{P}{name}")).map(|s| s.trim());
    let number = |name: &str, default: u64, min: u64| -> Result<u64> {
        match get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| anyhow!("{P}{name}: {text:?} is not a whole number >= {min}")),
        }
    };
    let url_text = get("recipientBaseUrl")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("{P}recipientBaseUrl: required when druid.emitter=http"))?;
    let url = reqwest::Url::parse(url_text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| anyhow!("{P}recipientBaseUrl: not an http(s) URL"))?;
    let batching = match get("batchingStrategy")
        .map(|s| s.to_ascii_uppercase())
        .as_deref()
    {
        None | Some("ARRAY") => Batching::Array,
        Some("NEWLINES") => Batching::Newlines,
        Some("ONLY_EVENTS") => Batching::OnlyEvents,
        Some(other) => {
            bail!("{P}batchingStrategy: {other:?} is not one of ARRAY, NEWLINES, ONLY_EVENTS")
        }
    };
    let gzip = match get("contentEncoding")
        .map(|s| s.to_ascii_uppercase())
        .as_deref()
    {
        None | Some("") => false,
        Some("GZIP") => true,
        Some(other) => bail!("{P}contentEncoding: {other:?} is not GZIP"),
    };
    let basic_auth = match get("basicAuthentication") {
        None | Some("") => None,
        Some(text) => Some(password(text).with_context(|| format!("{P}basicAuthentication"))?),
    }
    .map(|secret| match secret.split_once(':') {
        Some((user, pass)) => (user.to_string(), pass.to_string()),
        None => (secret, String::new()),
    });
    let max_batch_size = number("maxBatchSize", 5 * 1024 * 1024, 0)? as usize;
    if max_batch_size < MAX_EVENT_SIZE + batching.overhead() {
        bail!(
            "{P}maxBatchSize: must be at least {} (MAX_EVENT_SIZE and the batch's framing)",
            MAX_EVENT_SIZE + batching.overhead()
        );
    }
    Ok(HttpConfig {
        url,
        flush_millis: number("flushMillis", 60_000, 1)?,
        flush_count: number("flushCount", 500, 0)? as usize,
        flush_timeout: get("flushTimeOut")
            .map(|_| number("flushTimeOut", 0, 0).map(Duration::from_millis))
            .transpose()?,
        basic_auth,
        batching,
        max_batch_size,
        batch_queue_size_limit: number("batchQueueSizeLimit", 50, 1)? as usize,
        gzip,
    })
}

/// A Druid PasswordProvider: a plain string, or JSON
/// `{"type":"default","password":...}` / `{"type":"environment","variable":...}`.
/// Errors never include the secret.
fn password(text: &str) -> Result<String> {
    if !text.starts_with('{') {
        return Ok(text.to_string());
    }
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|_| anyhow!("not a password provider's JSON"))?;
    match v.get("type").and_then(|t| t.as_str()).unwrap_or("default") {
        "default" => v
            .get("password")
            .and_then(|p| p.as_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("a default password provider needs \"password\"")),
        "environment" => {
            let var = v
                .get("variable")
                .and_then(|p| p.as_str())
                .ok_or_else(|| anyhow!("an environment password provider needs \"variable\""))?;
            std::env::var(var).map_err(|_| anyhow!("environment variable {var} is not set"))
        }
        other => bail!("password provider type {other:?} is not supported (default, environment)"),
    }
}

/// A started emitter.
pub enum Emitter {
    Noop,
    Logging {
        level: log::Level,
        logger: String,
    },
    Http(HttpEmitter),
    /// `--print-metrics` on a live run: each emission as JSON lines on stdout.
    Print,
}

impl Emitter {
    pub fn start(config: &EmitterConfig) -> Result<Emitter> {
        Ok(match config {
            EmitterConfig::Noop => Emitter::Noop,
            EmitterConfig::Logging { level, logger } => Emitter::Logging {
                level: level.to_log(),
                logger: logger.clone(),
            },
            EmitterConfig::Http(c) => Emitter::Http(HttpEmitter::start(c.clone())?),
        })
    }

    pub fn emit(&mut self, events: &[Event], service: &ServiceDims) {
        match self {
            Emitter::Noop => {}
            Emitter::Logging { level, logger } => {
                for e in events {
                    log::log!(target: logger.as_str(), *level, "{}", e.to_json(service));
                }
            }
            Emitter::Http(h) => {
                for e in events {
                    h.emit(serde_json::to_vec(&e.to_json(service)).unwrap_or_default());
                }
            }
            Emitter::Print => {
                let mut out = std::io::stdout().lock();
                for e in events {
                    let _ = writeln!(out, "{}", e.to_json(service));
                }
            }
        }
    }

    /// Flush what is buffered and stop.
    pub fn close(&mut self) {
        if let Emitter::Http(h) = self {
            h.close();
        }
    }
}

enum Msg {
    Event(Vec<u8>),
    Close,
}

/// Druid's `HttpPostEmitter`, in short: events are batched on a background
/// thread and POSTed when a batch holds `flushCount` events, reaches
/// `maxBatchSize`, or its first event is `flushMillis` old; each batch is
/// tried three times, then kept among the failed batches (at most
/// `batchQueueSizeLimit`, the oldest dropped) and tried again later.
pub struct HttpEmitter {
    tx: Option<Sender<Msg>>,
    done: Receiver<()>,
    close_wait: Duration,
    url: String,
}

impl HttpEmitter {
    pub fn start(config: HttpConfig) -> Result<HttpEmitter> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let close_wait = config.flush_timeout.unwrap_or(DEFAULT_CLOSE_WAIT);
        let url = redacted(&config.url);
        log::info!("metrics: http emitter to {url} ({config:?})");
        std::thread::Builder::new()
            .name("HttpPostEmitter".into())
            .spawn(move || {
                match Sending::new(config) {
                    Ok(mut s) => s.run(rx),
                    Err(e) => log::warn!("metrics: the http emitter could not start: {e:#}"),
                }
                let _ = done_tx.send(());
            })
            .context("starting the http emitter's thread")?;
        Ok(HttpEmitter {
            tx: Some(tx),
            done,
            close_wait,
            url,
        })
    }

    fn emit(&mut self, event: Vec<u8>) {
        if event.len() > MAX_EVENT_SIZE {
            log::error!(
                "metrics: event too large to emit ({} > {MAX_EVENT_SIZE} bytes)",
                event.len()
            );
            return;
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Event(event));
        }
    }

    /// Send what is left and wait for it (at most `flushTimeOut`, else
    /// 30 s); a receiver that does not answer then loses those events.
    pub fn close(&mut self) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        let _ = tx.send(Msg::Close);
        if self.done.recv_timeout(self.close_wait).is_err() {
            log::warn!(
                "metrics: events for {} not sent within {:?} of closing; dropping them",
                self.url,
                self.close_wait
            );
        }
    }
}

impl Drop for HttpEmitter {
    fn drop(&mut self) {
        self.close();
    }
}

/// The emitter thread's state.
struct Sending {
    config: HttpConfig,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    /// The batch being filled, its size in bytes and its first event's time.
    batch: Vec<Vec<u8>>,
    batch_bytes: usize,
    batch_started: Option<Instant>,
    /// Sealed batches waiting to be sent, and those whose sends failed.
    ready: VecDeque<(Vec<u8>, usize)>,
    failed: VecDeque<(Vec<u8>, usize)>,
    url: String,
}

impl Sending {
    fn new(config: HttpConfig) -> Result<Sending> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let entered = runtime.enter();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()?;
        drop(entered);
        let url = redacted(&config.url);
        Ok(Sending {
            config,
            runtime,
            client,
            batch: Vec::new(),
            batch_bytes: 0,
            batch_started: None,
            ready: VecDeque::new(),
            failed: VecDeque::new(),
            url,
        })
    }

    fn run(&mut self, rx: Receiver<Msg>) {
        let flush = Duration::from_millis(self.config.flush_millis);
        loop {
            let wait = match self.batch_started {
                Some(t0) => flush.saturating_sub(t0.elapsed()),
                None if self.failed.is_empty() => flush,
                // Failed batches are tried again at least this often.
                None => flush.min(Duration::from_secs(1)),
            };
            let closing = match rx.recv_timeout(wait) {
                Ok(Msg::Event(e)) => {
                    self.add(e);
                    // Take what else is queued without waiting.
                    let mut closing = false;
                    for msg in rx.try_iter() {
                        match msg {
                            Msg::Event(e) => self.add(e),
                            Msg::Close => closing = true,
                        }
                    }
                    closing
                }
                Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => true,
                Err(RecvTimeoutError::Timeout) => false,
            };
            if closing || self.batch_started.is_some_and(|t0| t0.elapsed() >= flush) {
                self.seal();
            }
            self.send_ready();
            if closing {
                // Each failed batch gets one more try, then the thread ends.
                while let Some((body, count)) = self.failed.pop_front() {
                    if !self.send(&body, count) {
                        log::warn!("metrics: dropping {count} events for {}", self.url);
                    }
                }
                return;
            }
            if let Some((body, count)) = self.failed.pop_front()
                && !self.send(&body, count)
            {
                self.failed.push_front((body, count));
            }
        }
    }

    fn add(&mut self, event: Vec<u8>) {
        let (overhead, max_size) = (self.config.batching.overhead(), self.config.max_batch_size);
        if self.batch_bytes + event.len() + 1 + overhead > max_size {
            self.seal();
        }
        self.batch_bytes += event.len() + 1;
        self.batch.push(event);
        self.batch_started.get_or_insert_with(Instant::now);
        let flush_count = self.config.flush_count;
        if flush_count > 0 && self.batch.len() >= flush_count {
            self.seal();
        }
    }

    fn seal(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let body = self.config.batching.frame(&self.batch);
        let count = self.batch.len();
        self.batch.clear();
        self.batch_bytes = 0;
        self.batch_started = None;
        if self.ready.len() >= self.config.batch_queue_size_limit
            && let Some((_, dropped)) = self.ready.pop_front()
        {
            log::error!(
                "metrics: {} batches wait for {} (batchQueueSizeLimit); dropping the oldest ({dropped} events)",
                self.config.batch_queue_size_limit,
                self.url
            );
        }
        self.ready.push_back((body, count));
    }

    fn send_ready(&mut self) {
        while let Some((body, count)) = self.ready.pop_front() {
            if !self.send(&body, count) {
                if self.failed.len() >= self.config.batch_queue_size_limit
                    && let Some((_, dropped)) = self.failed.pop_front()
                {
                    log::error!(
                        "metrics: {} failed batches for {} (batchQueueSizeLimit); dropping the oldest ({dropped} events)",
                        self.config.batch_queue_size_limit,
                        self.url
                    );
                }
                self.failed.push_back((body, count));
            }
        }
    }

    /// POST one batch, up to three attempts; false if all failed.
    fn send(&mut self, body: &[u8], count: usize) -> bool {
        let mut last_error = String::new();
        for attempt in 0..SEND_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 << (attempt - 1)));
            }
            match self.post(body) {
                Ok(()) => {
                    log::debug!("metrics: sent {count} events to {}", self.url);
                    return true;
                }
                Err(e) => last_error = e,
            }
        }
        log::warn!(
            "metrics: failed to send {count} events to {} after {SEND_ATTEMPTS} attempts: {last_error}",
            self.url
        );
        false
    }

    fn post(&self, body: &[u8]) -> Result<(), String> {
        let c = &self.config;
        let mut request = self
            .client
            .post(c.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let body = if c.gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(body).map_err(|e| e.to_string())?;
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
            gz.finish().map_err(|e| e.to_string())?
        } else {
            body.to_vec()
        };
        if let Some((user, pass)) = &c.basic_auth {
            request = request.basic_auth(user, Some(pass));
        }
        self.runtime.block_on(async {
            let response = request
                .body(body)
                .send()
                .await
                // Without the URL: it may hold credentials.
                .map_err(|e| e.without_url().to_string())?;
            let status = response.status();
            if status.as_u16() == 413 {
                return Err(format!(
                    "HTTP 413: a batch of up to {} bytes is too large (druid.emitter.http.maxBatchSize)",
                    c.max_batch_size
                ));
            }
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                let text: String = text.trim().chars().take(200).collect();
                return Err(format!("HTTP {status}: {text}"));
            }
            Ok(())
        })
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
    fn unknown_types_are_refused_by_property() {
        let err = EmitterConfig::from_properties(&props(&[("druid.emitter", "kafka")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Unknown emitter type[druid.emitter]=[kafka], known types[noop, logging, http]"
        );
    }

    #[test]
    fn http_needs_a_url_and_keeps_the_secret() {
        let err = EmitterConfig::from_properties(&props(&[("druid.emitter", "http")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("druid.emitter.http.recipientBaseUrl"), "{err}");
        let c = EmitterConfig::from_properties(&props(&[
            ("druid.emitter", "http"),
            ("druid.emitter.http.recipientBaseUrl", "http://u:pw@h:1/x"),
            ("druid.emitter.http.basicAuthentication", "admin:s3cret"),
            ("druid.emitter.http.flushCount", "7"),
        ]))
        .unwrap();
        let EmitterConfig::Http(h) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(h.flush_count, 7);
        assert_eq!(h.flush_millis, 60_000);
        assert_eq!(h.basic_auth, Some(("admin".into(), "s3cret".into())));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("pw"),
            "{shown}"
        );
    }

    #[test]
    fn batches_are_framed_by_strategy() {
        let events = vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()];
        assert_eq!(Batching::Array.frame(&events), b"[{\"a\":1},{\"b\":2}]");
        assert_eq!(Batching::Newlines.frame(&events), b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(Batching::OnlyEvents.frame(&events), b"{\"a\":1}{\"b\":2}");
    }

    #[test]
    fn password_providers() {
        assert_eq!(password("a:b").unwrap(), "a:b");
        assert_eq!(
            password(r#"{"type":"default","password":"a:b"}"#).unwrap(),
            "a:b"
        );
        assert!(password(r#"{"type":"aws"}"#).is_err());
    }
}
