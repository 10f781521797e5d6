//! A Confluent Schema Registry client for the `schema_registry` decoders
//! of `avro_stream` and `protobuf`: records in Confluent's wire format
//! (the magic byte 0, the schema id as a big-endian int, then the body)
//! find their writer schema by id with `GET {url}/schemas/ids/{id}`,
//! fetched once and kept (at most `capacity` schemas, the oldest dropped
//! first).
//!
//! Failures: a schema id the registry does not have (404) makes that
//! record unparseable, as in Druid. A registry that cannot be reached
//! (connection refused, a timeout, 5xx, 429), after a few bounded retries
//! across its URLs, or that refuses the task's credentials (401, 403),
//! fails the task naming the URL (never its credentials): Druid makes these
//! parse errors too, which drops every record while the registry is down.

use super::ParseError;
use serde_json::Value as Json;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An error at a JSON path of the task.
type SpecError = (String, String);

/// Rounds over every URL before a registry counts as unreachable.
const ATTEMPTS: u32 = 3;
/// The pause after the first failed round (doubled after each).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// One request's time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of a record in Confluent's wire format: the schema id and
/// what follows it.
pub fn split_wire<'a>(data: &'a [u8], kind: &str) -> Result<(i32, &'a [u8]), ParseError> {
    if data.len() < 5 {
        return Err(ParseError::new(format!(
            "Failed to decode {kind} message, not enough bytes to decode ({})",
            data.len()
        )));
    }
    // Druid skips the magic byte without looking at it; so do we.
    let id = i32::from_be_bytes(data[1..5].try_into().expect("four bytes"));
    Ok((id, &data[5..]))
}

/// A registry's reply for one schema id.
pub struct Fetched<'a> {
    /// The schema's text (Avro JSON, or .proto source).
    pub schema: &'a str,
    /// `schemaType` (absent for Avro, as the registry omits it).
    pub schema_type: Option<&'a str>,
}

/// A registry client with its cache of schemas made by `T`'s parser.
pub struct Registry<T> {
    /// Base URLs, tried in turn.
    urls: Vec<reqwest::Url>,
    headers: reqwest::header::HeaderMap,
    capacity: usize,
    state: Mutex<State<T>>,
}

struct State<T> {
    client: Option<reqwest::blocking::Client>,
    cache: HashMap<i32, Arc<T>>,
    /// Cached ids, oldest first.
    order: VecDeque<i32>,
    /// GET requests sent (for tests and logs).
    requests: u64,
}

impl<T> std::fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No headers: they may hold credentials.
        let urls: Vec<String> = self.urls.iter().map(redacted).collect();
        f.debug_struct("Registry")
            .field("urls", &urls)
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// A URL as it may be shown: without user name or password.
fn redacted(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

fn string_map<'a>(
    v: Option<&'a Json>,
    path: &str,
) -> Result<Vec<(&'a String, &'a str)>, SpecError> {
    match v {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Json::String(s) => Ok((k, s.as_str())),
                _ => Err((format!("{path}.{k}"), "must be a string".to_string())),
            })
            .collect(),
        Some(_) => Err((path.to_string(), "must be an object".to_string())),
    }
}

impl<T> Registry<T> {
    /// The registry a `schema_registry` decoder (at `path`) names: `url`
    /// (deprecated) or `urls`, `capacity`, `config` (basic auth) and
    /// `headers`, as Druid reads them.
    pub fn from_spec(decoder: &Json, path: &str) -> Result<Registry<T>, SpecError> {
        let at = |k: &str| format!("{path}.{k}");
        let mut texts: Vec<(String, &str)> = Vec::new();
        match decoder.get("url") {
            Some(Json::String(u)) if !u.is_empty() => texts.push((at("url"), u)),
            None | Some(Json::Null) | Some(Json::String(_)) => {}
            Some(_) => return Err((at("url"), "must be a string".into())),
        }
        if texts.is_empty() {
            match decoder.get("urls") {
                Some(Json::Array(list)) => {
                    for (i, u) in list.iter().enumerate() {
                        let here = format!("{}[{i}]", at("urls"));
                        let u = u
                            .as_str()
                            .ok_or_else(|| (here.clone(), "must be a string".to_string()))?;
                        texts.push((here, u));
                    }
                }
                None | Some(Json::Null) => {}
                Some(_) => return Err((at("urls"), "must be a list of URLs".into())),
            }
        }
        if texts.is_empty() {
            return Err((
                at("urls"),
                "is required: the schema registry's URL (or `url`)".into(),
            ));
        }
        let mut urls = Vec::new();
        for (here, text) in texts {
            let mut url = reqwest::Url::parse(text)
                .map_err(|e| (here.clone(), format!("is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err((here, "must be an http or https URL".into()));
            }
            if !url.path().ends_with('/') {
                let with_slash = format!("{}/", url.path());
                url.set_path(&with_slash);
            }
            urls.push(url);
        }
        let capacity = match decoder.get("capacity") {
            None | Some(Json::Null) => usize::MAX,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=i32::MAX as u64).contains(n))
                .map(|n| n as usize)
                .ok_or_else(|| (at("capacity"), "must be a positive int".to_string()))?,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in string_map(decoder.get("headers"), &at("headers"))? {
            let here = format!("{}.{name}", at("headers"));
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| (here.clone(), "is not a header name".to_string()))?;
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| (here, "is not a header value".to_string()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let config = string_map(decoder.get("config"), &at("config"))?;
        let get = |k: &str| config.iter().find(|(n, _)| n.as_str() == k).map(|c| c.1);
        for (key, _) in &config {
            let known = matches!(
                key.as_str(),
                "basic.auth.credentials.source" | "basic.auth.user.info"
            );
            if !known && (key.contains("ssl") || key.contains("auth") || key.starts_with("druid")) {
                return Err((
                    format!("{}.{key}", at("config")),
                    "is not supported (basic.auth.credentials.source USER_INFO or URL with \
                     basic.auth.user.info are)"
                        .into(),
                ));
            }
            if !known {
                log::warn!("schema registry config {key:?} is ignored");
            }
        }
        // Confluent's client defaults to URL: user info in the URL.
        let user_info = match get("basic.auth.credentials.source") {
            Some("USER_INFO") => Some(
                get("basic.auth.user.info")
                    .filter(|u| u.contains(':'))
                    .ok_or_else(|| {
                        (
                            format!("{}.basic.auth.user.info", at("config")),
                            "is required with USER_INFO: user:password".to_string(),
                        )
                    })?
                    .to_string(),
            ),
            None | Some("URL") => {
                let url = &urls[0];
                let user = url.username();
                (!user.is_empty())
                    .then(|| format!("{user}:{}", url.password().unwrap_or("")))
                    .map(|u| {
                        // Percent-decoded as the registry's client does.
                        percent_decode(&u)
                    })
            }
            Some(other) => {
                return Err((
                    format!("{}.basic.auth.credentials.source", at("config")),
                    format!("{other:?} is not supported (USER_INFO and URL are)"),
                ));
            }
        };
        if let Some(info) = user_info {
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(info.as_bytes());
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Basic {token}"))
                .expect("base64 is a header value");
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        // Credentials travel in the Authorization header only.
        for url in &mut urls {
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        Ok(Registry {
            urls,
            headers,
            capacity,
            state: Mutex::new(State {
                client: None,
                cache: HashMap::new(),
                order: VecDeque::new(),
                requests: 0,
            }),
        })
    }

    /// The first URL, as it may be shown.
    pub fn shown_url(&self) -> String {
        redacted(&self.urls[0])
    }

    /// The schema with id `id`, from the cache or else from the registry
    /// and made by `make` (whose error makes the record unparseable).
    /// `kind` names the format in errors ("Avro", "Protobuf").
    pub fn get(
        &self,
        id: i32,
        kind: &str,
        make: impl FnOnce(Fetched<'_>) -> Result<T, String>,
    ) -> Result<Arc<T>, ParseError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = state.cache.get(&id) {
            return Ok(hit.clone());
        }
        let body = self.fetch(&mut state, id, kind)?;
        let fail = |why: String| {
            ParseError::new(format!(
                "Failed to fetch {kind} schema id[{id}] from registry: {why}"
            ))
        };
        let reply: Json =
            serde_json::from_str(&body).map_err(|e| fail(format!("the reply is not JSON: {e}")))?;
        let schema = reply
            .get("schema")
            .and_then(Json::as_str)
            .ok_or_else(|| fail("the reply has no \"schema\" string".into()))?;
        let made = make(Fetched {
            schema,
            schema_type: reply.get("schemaType").and_then(Json::as_str),
        })
        .map_err(fail)?;
        let made = Arc::new(made);
        while state.cache.len() >= self.capacity {
            let Some(oldest) = state.order.pop_front() else {
                break;
            };
            state.cache.remove(&oldest);
        }
        state.cache.insert(id, made.clone());
        state.order.push_back(id);
        Ok(made)
    }

    /// GET requests sent so far.
    pub fn requests(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests
    }

    /// The reply body for `id`; a 404 is this record's error, a registry
    /// out of reach (after `ATTEMPTS` rounds) or refusing the credentials
    /// is fatal.
    fn fetch(&self, state: &mut State<T>, id: i32, kind: &str) -> Result<String, ParseError> {
        if state.client.is_none() {
            let client = reqwest::blocking::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .default_headers(self.headers.clone())
                .build()
                .map_err(|e| ParseError::fatal(format!("schema registry client: {e}")))?;
            state.client = Some(client);
        }
        let client = state.client.clone().expect("just made");
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(FIRST_BACKOFF * (1 << (attempt - 1)));
            }
            for base in &self.urls {
                let url = base
                    .join(&format!("schemas/ids/{id}"))
                    .expect("a path joins a base URL");
                state.requests += 1;
                let reply = client
                    .get(url)
                    .header(
                        reqwest::header::ACCEPT,
                        "application/vnd.schemaregistry.v1+json, application/json",
                    )
                    .send();
                let shown = redacted(base);
                let reply = match reply {
                    Ok(r) => r,
                    Err(e) => {
                        last = format!("{shown}: {}", error_chain(&e.without_url()));
                        continue;
                    }
                };
                let status = reply.status();
                let body = reply.text().unwrap_or_default();
                if status.is_success() {
                    return Ok(body);
                }
                let said = registry_message(&body);
                if status == reqwest::StatusCode::NOT_FOUND {
                    return Err(ParseError::new(format!(
                        "Failed to fetch {kind} schema id[{id}] from registry: {said} \
                         (HTTP 404). Check if the schema exists in the registry; otherwise \
                         the record is malformed or not in the Confluent wire format"
                    )));
                }
                last = format!("{shown}: HTTP {}: {said}", status.as_u16());
                if matches!(status.as_u16(), 401 | 403) {
                    return Err(ParseError::fatal(format!(
                        "schema registry {shown} refused the request for schema id[{id}]: \
                         HTTP {}: {said}",
                        status.as_u16()
                    )));
                }
                if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
                    return Err(ParseError::new(format!(
                        "Failed to fetch {kind} schema id[{id}] from registry: HTTP {}: {said}",
                        status.as_u16()
                    )));
                }
            }
        }
        Err(ParseError::fatal(format!(
            "schema registry unreachable after {ATTEMPTS} attempts (fetching schema \
             id[{id}]): {last}"
        )))
    }
}

/// The registry's `message` (and `error_code`) from an error reply, or
/// the body itself (cut short).
fn registry_message(body: &str) -> String {
    match serde_json::from_str::<Json>(body) {
        Ok(v) if v.get("message").is_some() => {
            let message = v["message"].as_str().unwrap_or_default();
            match v.get("error_code").and_then(Json::as_i64) {
                Some(code) => format!("{message}; error code: {code}"),
                None => message.to_string(),
            }
        }
        _ => body.chars().take(200).collect(),
    }
}

/// An error and its causes, joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(n) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(n);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Json) -> Result<Registry<()>, SpecError> {
        Registry::from_spec(&v, "f.avroBytesDecoder")
    }

    #[test]
    fn config_errors_name_their_path() {
        for (v, path) in [
            (json!({}), "f.avroBytesDecoder.urls"),
            (json!({"urls": []}), "f.avroBytesDecoder.urls"),
            (json!({"urls": ["ftp://x"]}), "f.avroBytesDecoder.urls[0]"),
            (json!({"urls": [3]}), "f.avroBytesDecoder.urls[0]"),
            (json!({"url": "not a url"}), "f.avroBytesDecoder.url"),
            (
                json!({"url": "http://r", "capacity": 0}),
                "f.avroBytesDecoder.capacity",
            ),
            (
                json!({"url": "http://r", "headers": {"a b": "x"}}),
                "f.avroBytesDecoder.headers.a b",
            ),
            (
                json!({"url": "http://r", "config": {"basic.auth.credentials.source": "USER_INFO"}}),
                "f.avroBytesDecoder.config.basic.auth.user.info",
            ),
            (
                json!({"url": "http://r", "config": {"basic.auth.credentials.source": "SASL_INHERIT"}}),
                "f.avroBytesDecoder.config.basic.auth.credentials.source",
            ),
            (
                json!({"url": "http://r", "config": {"schema.registry.ssl.truststore.location": "/x"}}),
                "f.avroBytesDecoder.config.schema.registry.ssl.truststore.location",
            ),
        ] {
            let (at, why) = spec(v.clone()).err().unwrap_or_else(|| panic!("{v}"));
            assert_eq!(at, path, "{v}: {why}");
        }
    }

    #[test]
    fn url_wins_over_urls_and_credentials_stay_out_of_sight() {
        let r = spec(
            json!({"url": "http://u:p%40ss@r:81/base", "urls": ["http://other"],
            "config": {"basic.auth.credentials.source": "URL"}}),
        )
        .unwrap();
        assert_eq!(r.urls.len(), 1);
        assert_eq!(r.shown_url(), "http://r:81/base/");
        let auth = r.headers.get(reqwest::header::AUTHORIZATION).unwrap();
        use base64::Engine;
        let expected = base64::engine::general_purpose::STANDARD.encode("u:p@ss");
        assert_eq!(auth.to_str().unwrap(), format!("Basic {expected}"));
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("u:p") && !shown.contains(&expected),
            "{shown}"
        );
    }

    #[test]
    fn wire_format_is_split() {
        assert_eq!(
            split_wire(&[0, 0, 0, 1, 2, 9], "Avro").unwrap(),
            (258, &[9u8][..])
        );
        let err = split_wire(&[0, 0, 1], "Avro").unwrap_err();
        assert!(
            err.0.contains("not enough bytes to decode (3)"),
            "{}",
            err.0
        );
        assert!(!err.is_fatal());
    }
}
