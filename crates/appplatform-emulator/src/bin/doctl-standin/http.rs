//! HTTP as godo does it: the client built from flags, environment and doctl's config file
//! (token, API URL, retry settings), one call with godo's retries and error messages, and
//! paginated lists.

use std::time::Duration;

use serde_json::Value;

use crate::args::Args;
use crate::{Failure, err};

const USER_AGENT: &str = "doctl/0.0.0-standin (linux amd64) godo/1.202.0";

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    retry_max: u32,
    wait_min: u64,
    wait_max: u64,
}

fn config_file(args: &Args) -> Option<Value> {
    let path = args
        .flag("config")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("DIGITALOCEAN_CONFIG").map(Into::into))
        .or_else(|| {
            std::env::var_os("XDG_CONFIG_HOME")
                .map(|x| std::path::PathBuf::from(x).join("doctl/config.yaml"))
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| std::path::PathBuf::from(h).join(".config/doctl/config.yaml"))
                })
        })?;
    let text = std::fs::read_to_string(path).ok()?;
    serde_yaml::from_str(&text).ok()
}

impl Client {
    pub(crate) fn from_args(args: &Args) -> Result<Client, Failure> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let config = config_file(args);
        let context = args
            .flag("context")
            .map(str::to_owned)
            .or_else(|| env("DIGITALOCEAN_CONTEXT"));
        let token = match context.as_deref() {
            Some(ctx) if ctx != "default" => config
                .as_ref()
                .and_then(|c| c.get("auth-contexts"))
                .and_then(|m| m.get(ctx))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => args
                .flag("access-token")
                .map(str::to_owned)
                .or_else(|| env("DIGITALOCEAN_ACCESS_TOKEN"))
                .or_else(|| {
                    config
                        .as_ref()
                        .and_then(|c| c.get("access-token"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }),
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return err(
                "Unable to initialize DigitalOcean API client: access token is required. (hint: run 'doctl auth init')",
            );
        };
        let api_url = args
            .flag("api-url")
            .map(str::to_owned)
            .or_else(|| env("DIGITALOCEAN_API_URL"))
            .unwrap_or_else(|| "https://api.digitalocean.com/".to_owned());
        let parsed = url::Url::parse(&api_url)
            .map_err(|e| Failure::Error(format!("parse \"{api_url}\": {e}")))?;
        let base = format!(
            "{}://{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default(),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let num = |flag: &str, env_key: &str, default: u64| -> u64 {
            args.flag(flag)
                .map(str::to_owned)
                .or_else(|| env(env_key))
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| Failure::Error(format!("cannot build HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            token,
            retry_max: u32::try_from(num("http-retry-max", "DIGITALOCEAN_HTTP_RETRY_MAX", 5))
                .unwrap_or(5),
            wait_min: num("http-retry-wait-min", "DIGITALOCEAN_HTTP_RETRY_WAIT_MIN", 1),
            wait_max: num(
                "http-retry-wait-max",
                "DIGITALOCEAN_HTTP_RETRY_WAIT_MAX",
                30,
            ),
        })
    }

    /// One API call with godo's retries; the parsed JSON body on 2xx.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut attempt: u32 = 0;
        loop {
            let mut request = self
                .http
                .request(m.clone(), &url)
                .header("Accept", "application/json")
                .bearer_auth(&self.token);
            if method != "GET" {
                request = request.header("Content-Type", "application/json");
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let retries_left = attempt < self.retry_max;
            match request.send().await {
                Err(e) => {
                    if retries_left {
                        tokio::time::sleep(self.backoff(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    let go_method = format!("{}{}", &method[..1], method[1..].to_ascii_lowercase());
                    let cause = if e.is_connect() {
                        let host = url::Url::parse(&url)
                            .ok()
                            .map(|u| {
                                format!(
                                    "{}:{}",
                                    u.host_str().unwrap_or_default(),
                                    u.port_or_known_default().unwrap_or(0)
                                )
                            })
                            .unwrap_or_default();
                        format!("dial tcp {host}: connect: connection refused")
                    } else {
                        e.to_string()
                    };
                    return err(format!("{go_method} \"{url}\": {cause}"));
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let header_id = response
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = response.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    let retryable = status == 429 || (status >= 500 && status != 501);
                    if retryable && retries_left {
                        let hint = if status == 429 || status == 503 {
                            retry_after
                        } else {
                            None
                        };
                        tokio::time::sleep(self.backoff(attempt, hint)).await;
                        attempt += 1;
                        continue;
                    }
                    let parsed: Option<Value> =
                        serde_json::from_str(&text).ok().filter(Value::is_object);
                    let (message, body_id) = match &parsed {
                        Some(v) => (
                            v.get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                            v.get("request_id")
                                .and_then(Value::as_str)
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned),
                        ),
                        None => (text.clone(), None),
                    };
                    let id = body_id.or(header_id.filter(|s| !s.is_empty()));
                    let mut msg = match id {
                        Some(id) => {
                            format!("{method} {url}: {status} (request \"{id}\") {message}")
                        }
                        None => format!("{method} {url}: {status} {message}"),
                    };
                    if retryable && self.retry_max > 0 {
                        msg.push_str(&format!("; giving up after {} attempt(s)", attempt + 1));
                    }
                    return err(msg);
                }
            }
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<u64>) -> Duration {
        if let Some(secs) = retry_after {
            return Duration::from_secs(secs);
        }
        let secs = self
            .wait_min
            .saturating_mul(1u64 << attempt.min(20))
            .min(self.wait_max);
        Duration::from_secs(secs)
    }

    /// Every page of a list, as doctl gets them (later pages' errors are dropped).
    pub(crate) async fn list_all(&self, path: &str, key: &str) -> Result<Vec<Value>, Failure> {
        let first = self
            .call("GET", &format!("{path}?page=1&per_page=200"), None)
            .await?;
        let mut items: Vec<Value> = first
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let last = first
            .pointer("/links/pages/last")
            .and_then(Value::as_str)
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "page")
                    .and_then(|(_, v)| v.parse::<u32>().ok())
            })
            .unwrap_or(1);
        for page in 2..=last {
            if let Ok(more) = self
                .call("GET", &format!("{path}?page={page}&per_page=200"), None)
                .await
            {
                items.extend(
                    more.get(key)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
        }
        Ok(items)
    }
}
