//! [`DoApi`]: the [`Platform`] that talks to App Platform's REST API and exec WebSocket
//! directly, without doctl.
//!
//! Four parts: `token` finds the API token (configuration, environment, doctl's config file),
//! `http` sends REST requests with retries and maps App Platform's errors, `console` carries a
//! terminal over the exec WebSocket, `logs` reads live and historic logs. See `docs/doapi.md`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use appspec::AppSpec;
use async_trait::async_trait;
use http::Method;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::error::{Error, Result};
use crate::platform::{Console, ConsoleTarget, LogStream, LogsRequest, Platform};
use crate::token::Token;
use crate::types::{App, Deployment, Instance};
use crate::wire::{
    AppResponse, AppsPage, CreateAppRequest, DeploymentsPage, ExecUrlResponse, InstancesResponse,
    Links, LogsUrlResponse,
};

use self::console::{ApiConsole, ConsoleTimings};
use self::rest::{Http, Replay, RetryPolicy, Subject, redact_url};
use self::token::TokenSource;

mod console;
mod logs;
mod rest;
mod token;

/// The public API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com";

/// How to reach the API.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DoApiConfig {
    /// The API token; `None` means `$DIGITALOCEAN_TOKEN`, `$DIGITALOCEAN_ACCESS_TOKEN`, then
    /// doctl's config file.
    pub token: Option<Token>,
    /// The doctl authentication context to take the token from (when it comes from doctl's
    /// config file); `None` means `$DIGITALOCEAN_CONTEXT`, else the file's current context.
    pub context: Option<String>,
    /// doctl's config file; `None` means `$DIGITALOCEAN_CONFIG`, else
    /// `$XDG_CONFIG_HOME/doctl/config.yaml`, else `~/.config/doctl/config.yaml`.
    pub doctl_config: Option<PathBuf>,
    /// The API's base URL (an emulator, for example `http://127.0.0.1:8080`).
    pub base_url: String,
    /// Retries after a first failed attempt (429, 5xx, connection errors).
    pub max_retries: u32,
    /// The first backoff between attempts; it doubles each retry.
    pub retry_wait_min: Duration,
    /// The longest wait between attempts; a `retry-after` longer than this is not waited for.
    pub retry_wait_max: Duration,
    /// Deadline of one HTTP request.
    pub request_timeout: Duration,
    /// Deadline of opening a TCP connection.
    pub connect_timeout: Duration,
    /// Items per page when listing (1 to 200).
    pub per_page: u32,
    /// Deadline of opening a console (exec URL and WebSocket handshake).
    pub console_connect_timeout: Duration,
    /// A quiet console sends an empty input frame this often (doctl: 30 s).
    pub keepalive: Duration,
    /// Deadline of one `send` or `resize` on a console (the server not reading, the connection
    /// backed up): past it the call is [`Error::Timeout`] and the console cannot send again.
    pub console_send_timeout: Duration,
    /// A console that has received nothing for this long sends a WebSocket Ping, and again
    /// every interval while nothing arrives; at most a third of the read-idle timeout is used.
    pub console_ping_interval: Duration,
    /// A console that receives no frame of any kind (output, pong) for this long is closed:
    /// its `recv` is [`Error::ConsoleSilent`]. A server that answers pings keeps a quiet
    /// console open indefinitely.
    pub console_read_idle_timeout: Duration,
}

impl Default for DoApiConfig {
    fn default() -> Self {
        DoApiConfig {
            token: None,
            context: None,
            doctl_config: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            max_retries: 5,
            retry_wait_min: Duration::from_secs(1),
            retry_wait_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            per_page: 200,
            console_connect_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(30),
            console_send_timeout: Duration::from_secs(30),
            console_ping_interval: Duration::from_secs(5),
            console_read_idle_timeout: Duration::from_secs(15),
        }
    }
}

impl DoApiConfig {
    /// The defaults: the public API, token from the environment or doctl's config, 5 retries
    /// waiting 1 s doubling up to 30 s, 60 s per request, 200 items per page; consoles: 30 s
    /// to open, 30 s per send, a ping after 5 s without input, closed after 15 s of silence.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses this token.
    #[must_use]
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// Takes the token of this doctl context.
    #[must_use]
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// Reads doctl's config from this file.
    #[must_use]
    pub fn with_doctl_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.doctl_config = Some(path.into());
        self
    }

    /// Talks to this base URL.
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets the number of retries (0 disables them).
    #[must_use]
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the backoff bounds.
    #[must_use]
    pub fn with_retry_wait(mut self, min: Duration, max: Duration) -> Self {
        self.retry_wait_min = min;
        self.retry_wait_max = max;
        self
    }

    /// Sets the deadline of one HTTP request.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the page size of lists.
    #[must_use]
    pub fn with_per_page(mut self, per_page: u32) -> Self {
        self.per_page = per_page;
        self
    }

    /// Sets the deadline of opening a console.
    #[must_use]
    pub fn with_console_connect_timeout(mut self, timeout: Duration) -> Self {
        self.console_connect_timeout = timeout;
        self
    }

    /// Sets the keepalive interval of consoles.
    #[must_use]
    pub fn with_keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = interval;
        self
    }

    /// Sets the deadline of one send (or resize) on a console.
    #[must_use]
    pub fn with_console_send_timeout(mut self, timeout: Duration) -> Self {
        self.console_send_timeout = timeout;
        self
    }

    /// Sets how long a console waits without receiving anything before it sends a ping.
    #[must_use]
    pub fn with_console_ping_interval(mut self, interval: Duration) -> Self {
        self.console_ping_interval = interval;
        self
    }

    /// Sets how long a console may receive nothing (not even a pong) before it is closed as
    /// [`Error::ConsoleSilent`].
    #[must_use]
    pub fn with_console_read_idle_timeout(mut self, timeout: Duration) -> Self {
        self.console_read_idle_timeout = timeout;
        self
    }
}

/// App Platform through its REST API and exec WebSocket.
///
/// Requests carry `Authorization: Bearer <token>`; reads and deletes are retried on 429, 5xx
/// and connection errors with a bounded backoff that honours `retry-after`; a create is
/// retried only where the API certainly did nothing. Consoles speak doctl's WebSocket
/// protocol, with input in frames of many bytes.
///
/// # Example
///
/// ```no_run
/// use appspec::{ComponentType, ImageKind, SandboxTemplate};
/// use doctl_driver::{ConsoleTarget, DoApi, DoApiConfig, Platform};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// // Token from DIGITALOCEAN_TOKEN, DIGITALOCEAN_ACCESS_TOKEN or `doctl auth init`.
/// let api = DoApi::new(DoApiConfig::new())?;
/// let spec = SandboxTemplate::new(ImageKind::Python, ComponentType::Worker)
///     .name("demo-sandbox")
///     .build()?;
/// let app = api.create_app(&spec).await?;
/// while !api.get_app(&app.id).await?.status().is_active() {
///     tokio::time::sleep(std::time::Duration::from_secs(5)).await;
/// }
///
/// let console = api.open_console(&ConsoleTarget::new(&app.id, "sandbox")).await?;
/// console.send(b"python3 -c 'print(6*7)'\r").await?;
/// while let Some(output) = console.recv().await? {
///     if String::from_utf8_lossy(&output).contains("42") {
///         break;
///     }
/// }
/// console.close().await?;
/// api.delete_app(&app.id).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DoApi {
    http: Http,
    token_source: TokenSource,
    per_page: u32,
    console_connect_timeout: Duration,
    console_timings: ConsoleTimings,
    tls: Arc<OnceLock<std::result::Result<Arc<rustls::ClientConfig>, String>>>,
}

impl DoApi {
    /// A client with this configuration.
    ///
    /// # Errors
    ///
    /// [`Error::NotAuthenticated`] when no token is found, [`Error::InvalidArgument`] for a
    /// base URL that does not parse, a page size out of 1..=200 or a zero console timing, [`Error::Other`] when the
    /// HTTP client cannot be built.
    pub fn new(config: DoApiConfig) -> Result<Self> {
        let env = |key: &str| std::env::var(key).ok();
        let (token, token_source) = token::resolve(
            config.token.as_ref(),
            &env,
            config.doctl_config.as_deref(),
            config.context.as_deref(),
        )?;
        let base = Url::parse(&config.base_url).map_err(|err| Error::InvalidArgument {
            name: "base_url".into(),
            reason: format!("`{}` is not a URL: {err}", config.base_url),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::InvalidArgument {
                name: "base_url".into(),
                reason: format!("`{}` must be an http or https URL", config.base_url),
            });
        }
        for (name, value) in [
            ("keepalive", config.keepalive),
            ("console_send_timeout", config.console_send_timeout),
            ("console_ping_interval", config.console_ping_interval),
            (
                "console_read_idle_timeout",
                config.console_read_idle_timeout,
            ),
        ] {
            if value.is_zero() {
                return Err(Error::InvalidArgument {
                    name: name.into(),
                    reason: "must be longer than zero".into(),
                });
            }
        }
        if !(1..=200).contains(&config.per_page) {
            return Err(Error::InvalidArgument {
                name: "per_page".into(),
                reason: format!("{} is not between 1 and 200", config.per_page),
            });
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("do-app-sandbox-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| Error::other_with("could not build the HTTP client", err))?;
        tracing::debug!(source = %token_source, base = %base, "DoApi ready");
        Ok(DoApi {
            http: Http {
                client,
                base,
                token,
                retry: RetryPolicy {
                    max_retries: config.max_retries,
                    wait_min: config.retry_wait_min,
                    wait_max: config.retry_wait_max.max(config.retry_wait_min),
                },
                timeout: config.request_timeout,
            },
            token_source,
            per_page: config.per_page,
            console_connect_timeout: config.console_connect_timeout,
            console_timings: ConsoleTimings {
                keepalive: config.keepalive,
                send_timeout: config.console_send_timeout,
                ping_interval: config
                    .console_ping_interval
                    .min(config.console_read_idle_timeout / 3),
                read_idle: config.console_read_idle_timeout,
                close_timeout: Duration::from_secs(2),
            },
            tls: Arc::new(OnceLock::new()),
        })
    }

    /// A client of the public API, token from the environment or doctl's config.
    ///
    /// # Errors
    ///
    /// As [`DoApi::new`].
    pub fn from_env() -> Result<Self> {
        Self::new(DoApiConfig::default())
    }

    /// Where the token came from, for messages (never the token itself): "the
    /// configuration", `$DIGITALOCEAN_TOKEN`, or doctl's config file and context.
    #[must_use]
    pub fn token_source(&self) -> String {
        self.token_source.to_string()
    }

    /// The base URL requests go to.
    #[must_use]
    pub fn base_url(&self) -> &str {
        self.http.base.as_str()
    }

    fn app_subject(&self, method: &Method, app_id: &str, tail: &str) -> Subject {
        Subject {
            operation: format!("{method} /v2/apps/{app_id}{tail}"),
            what: format!("app `{app_id}`"),
            name: None,
        }
    }

    /// Every page of a list, following `links.pages.next` by its page number (so the token
    /// only ever goes to the configured base URL).
    async fn all_pages<P, T>(
        &self,
        segments: &[&str],
        subject: &Subject,
        split: impl Fn(P) -> (Vec<T>, Option<Links>),
    ) -> Result<Vec<T>>
    where
        P: serde::de::DeserializeOwned,
    {
        let mut items = Vec::new();
        let mut page: u64 = 1;
        loop {
            let url = self.http.url(
                segments,
                &[
                    ("page", page.to_string()),
                    ("per_page", self.per_page.to_string()),
                ],
            )?;
            let body: P = self
                .http
                .json(Method::GET, url, None, Replay::Safe, subject)
                .await?;
            let (mut found, links) = split(body);
            let empty = found.is_empty();
            items.append(&mut found);
            let next = links
                .as_ref()
                .and_then(Links::next)
                .and_then(|next| Url::parse(next).ok())
                .and_then(|next| {
                    next.query_pairs()
                        .find(|(k, _)| k == "page")
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                });
            match next {
                Some(next) if next > page && !empty => page = next,
                _ => return Ok(items),
            }
        }
    }

    /// The rustls configuration for `wss://` URLs, built once.
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>> {
        self.tls
            .get_or_init(|| {
                use rustls_platform_verifier::BuilderVerifierExt;
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_platform_verifier()
                    .map(|b| Arc::new(b.with_no_client_auth()))
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|reason| Error::Unsupported {
                what: "TLS for WebSocket URLs".into(),
                reason,
            })
    }

    /// Opens a WebSocket (`ws://` or `wss://`) within the console deadline.
    async fn websocket(
        &self,
        url: &Url,
        what: &str,
    ) -> Result<WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>> {
        let shown = redact_url(url);
        let connector = match url.scheme() {
            "ws" => None,
            "wss" => Some(Connector::Rustls(self.tls()?)),
            other => {
                return Err(Error::other(format!(
                    "the API gave a {what} URL with scheme `{other}`; expected ws or wss: {shown}"
                )));
            }
        };
        let request = url
            .as_str()
            .into_client_request()
            .map_err(|err| Error::other(format!("bad {what} URL {shown}: {err}")))?;
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
        match tokio::time::timeout(self.console_connect_timeout, connect).await {
            Err(_) => Err(Error::Timeout {
                operation: format!("connecting the {what} WebSocket {shown}"),
                timeout: self.console_connect_timeout,
            }),
            Ok(Ok((socket, _response))) => Ok(socket),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                Err(Error::ConsoleLost {
                    reason: format!(
                        "the {what} server refused the WebSocket upgrade with HTTP {}",
                        response.status()
                    ),
                })
            }
            Ok(Err(err)) => Err(Error::Network {
                message: format!("connecting the {what} WebSocket {shown}: {err}"),
            }),
        }
    }

    async fn open_console_once(&self, target: &ConsoleTarget) -> Result<ApiConsole> {
        let mut query = Vec::new();
        if let Some(instance) = target.instance.as_ref().filter(|i| !i.is_empty()) {
            query.push(("instance_name", instance.clone()));
        }
        let url = self.http.url(
            &[
                "v2",
                "apps",
                &target.app_id,
                "components",
                &target.component,
                "exec",
            ],
            &query,
        )?;
        let subject = Subject {
            operation: format!(
                "GET /v2/apps/{}/components/{}/exec",
                target.app_id, target.component
            ),
            what: format!(
                "component `{}` of app `{}`",
                target.component, target.app_id
            ),
            name: None,
        };
        let exec: ExecUrlResponse = self
            .http
            .json(Method::GET, url, None, Replay::Safe, &subject)
            .await?;
        let ws_url = Url::parse(&exec.url).map_err(|err| {
            Error::other(format!(
                "the API gave an exec URL that does not parse: {err}"
            ))
        })?;
        let socket = self.websocket(&ws_url, "console").await?;
        let label = format!(
            "component `{}` of app `{}`",
            target.component, target.app_id
        );
        ApiConsole::start(socket, target.size, self.console_timings, label).await
    }
}

#[async_trait]
impl Platform for DoApi {
    fn kind(&self) -> &'static str {
        "api"
    }

    #[tracing::instrument(skip_all, fields(name = %spec.name))]
    async fn create_app(&self, spec: &AppSpec) -> Result<App> {
        let body = serde_json::to_vec(&CreateAppRequest::new(spec.clone()))
            .map_err(|e| Error::other_with("could not encode the app spec as JSON", e))?;
        let subject = Subject {
            operation: "POST /v2/apps".into(),
            what: format!("app `{}`", spec.name),
            name: Some(spec.name.clone()),
        };
        let url = self.http.url(&["v2", "apps"], &[])?;
        let answer: AppResponse = self
            .http
            .json(Method::POST, url, Some(body), Replay::Once, &subject)
            .await?;
        App::try_from(answer.app)
    }

    #[tracing::instrument(skip_all, fields(app_id))]
    async fn get_app(&self, app_id: &str) -> Result<App> {
        let subject = self.app_subject(&Method::GET, app_id, "");
        let url = self.http.url(&["v2", "apps", app_id], &[])?;
        let answer: AppResponse = self
            .http
            .json(Method::GET, url, None, Replay::Safe, &subject)
            .await?;
        App::try_from(answer.app)
    }

    #[tracing::instrument(skip_all)]
    async fn list_apps(&self) -> Result<Vec<App>> {
        let subject = Subject {
            operation: "GET /v2/apps".into(),
            what: "apps".into(),
            name: None,
        };
        let wire = self
            .all_pages(&["v2", "apps"], &subject, |page: AppsPage| {
                (page.apps, page.links)
            })
            .await?;
        wire.into_iter().map(App::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(app_id))]
    async fn delete_app(&self, app_id: &str) -> Result<()> {
        let subject = self.app_subject(&Method::DELETE, app_id, "");
        let url = self.http.url(&["v2", "apps", app_id], &[])?;
        self.http
            .send(Method::DELETE, url, None, Replay::Safe, &subject)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(app_id))]
    async fn list_deployments(&self, app_id: &str) -> Result<Vec<Deployment>> {
        let subject = self.app_subject(&Method::GET, app_id, "/deployments");
        let wire = self
            .all_pages(
                &["v2", "apps", app_id, "deployments"],
                &subject,
                |page: DeploymentsPage| (page.deployments, page.links),
            )
            .await?;
        Ok(wire.into_iter().map(Deployment::from).collect())
    }

    #[tracing::instrument(skip_all, fields(app_id))]
    async fn list_instances(&self, app_id: &str) -> Result<Vec<Instance>> {
        let subject = self.app_subject(&Method::GET, app_id, "/instances");
        let url = self.http.url(&["v2", "apps", app_id, "instances"], &[])?;
        let answer: InstancesResponse = self
            .http
            .json(Method::GET, url, None, Replay::Safe, &subject)
            .await?;
        Ok(answer.instances.into_iter().map(Instance::from).collect())
    }

    #[tracing::instrument(skip_all, fields(app_id = %target.app_id, component = %target.component))]
    async fn open_console(&self, target: &ConsoleTarget) -> Result<Box<dyn Console>> {
        // A refused upgrade or a dial failure spends a one-time URL: ask for a new one.
        let mut attempt = 0u32;
        loop {
            match self.open_console_once(target).await {
                Ok(console) => return Ok(Box::new(console)),
                Err(err @ (Error::ConsoleLost { .. } | Error::Network { .. }))
                    if attempt < self.http.retry.max_retries.min(2) =>
                {
                    let wait = self.http.retry.wait(attempt, None).unwrap_or_default();
                    tracing::debug!(%err, ?wait, "console did not open; trying again");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    #[tracing::instrument(skip_all, fields(app_id = %request.app_id))]
    async fn logs(&self, request: &LogsRequest) -> Result<LogStream> {
        let mut segments = vec!["v2", "apps", request.app_id.as_str()];
        if let Some(component) = &request.component {
            segments.extend(["components", component.as_str()]);
        }
        segments.push("logs");
        let mut query = vec![
            ("type", request.kind.as_api_str().to_owned()),
            ("follow", request.follow.to_string()),
        ];
        if let Some(tail) = request.tail {
            query.push(("tail_lines", tail.to_string()));
        }
        let url = self.http.url(&segments, &query)?;
        let subject = Subject {
            operation: format!("GET {}", url.path()),
            what: match &request.component {
                Some(c) => format!("component `{c}` of app `{}`", request.app_id),
                None => format!("app `{}`", request.app_id),
            },
            name: None,
        };
        let answer: LogsUrlResponse = self
            .http
            .json(Method::GET, url, None, Replay::Safe, &subject)
            .await?;
        let live = (!answer.live_url.is_empty()).then_some(answer.live_url.as_str());
        let use_live = match (request.follow, live, answer.historic_urls.is_empty()) {
            (_, None, _) => false,
            (true, Some(_), _) => true,
            (false, Some(_), historic_empty) => historic_empty,
        };
        if use_live {
            let url = logs::websocket_url(live.unwrap_or_default())?;
            let connect = async { self.websocket(&url, "live logs").await };
            return logs::live(url.clone(), connect).await;
        }
        logs::historic(&self.http.client, &answer.historic_urls, self.http.timeout).await
    }
}
