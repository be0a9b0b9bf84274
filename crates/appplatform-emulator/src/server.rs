//! Starting the emulator: the builder, the running handle, shared state and the router.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use doctl_driver::{ConsoleTarget, LogsRequest, Platform};
#[cfg(feature = "test-support")]
use doctl_driver::{DoApiConfig, DoctlConfig, Token};
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::Instrument;

use crate::error::{ApiError, StartError};
use crate::faults::{Faults, HttpFault};
use crate::handlers;
use crate::model::AppRecord;

/// The App Platform emulator. Start one with [`Emulator::builder`].
#[derive(Debug)]
pub struct Emulator(());

impl Emulator {
    /// A builder with an instant pace, a random token and `127.0.0.1:0`.
    #[must_use]
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder {
            backend: None,
            token: format!("dop_v1_emulator_{}", uuid::Uuid::new_v4().simple()),
            pace: Duration::ZERO,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            faults: Faults::default(),
        }
    }
}

/// Configures and starts an [`Emulator`].
pub struct EmulatorBuilder {
    backend: Option<Arc<dyn Platform>>,
    token: String,
    pace: Duration,
    addr: SocketAddr,
    faults: Faults,
}

impl fmt::Debug for EmulatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorBuilder")
            .field("backend", &self.backend)
            .field("token", &"[REDACTED]")
            .field("pace", &self.pace)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl EmulatorBuilder {
    /// The platform that runs the apps (for example `sandbox_local::LocalPlatform`).
    #[must_use]
    pub fn backend(mut self, backend: Arc<dyn Platform>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The one API token accepted (`Authorization: Bearer <token>`).
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// How long a deployment takes from creation to the end of its walk through
    /// `PENDING_BUILD`, `BUILDING`, `PENDING_DEPLOY` and `DEPLOYING` (each a quarter of it).
    /// `Duration::ZERO` (the default) for tests; about 30 s looks like the real thing.
    #[must_use]
    pub fn pace(mut self, pace: Duration) -> Self {
        self.pace = pace;
        self
    }

    /// Where to listen (default `127.0.0.1:0`, a free port).
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Faults to share with the emulator (default: a fresh, empty set).
    #[must_use]
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Binds the socket and starts serving on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`StartError::NoBackend`] without a backend, [`StartError::Bind`] when the address
    /// cannot be bound.
    pub async fn start(self) -> Result<EmulatorHandle, StartError> {
        let backend = self.backend.ok_or(StartError::NoBackend)?;
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.addr.to_string(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: self.addr.to_string(),
            source,
        })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = Arc::new(AppState {
            backend,
            token: self.token.clone(),
            pace: self.pace,
            apps: Mutex::new(Vec::new()),
            reserved: Mutex::new(HashSet::new()),
            tickets: Mutex::new(HashMap::new()),
            faults: self.faults.clone(),
            requests: Mutex::new(Vec::new()),
            served: Mutex::new(VecDeque::new()),
            local_addr,
            shutdown: shutdown_rx.clone(),
        });
        adopt(&state).await;
        let app = router(state.clone());
        let mut rx = shutdown_rx;
        let span = tracing::info_span!("emulator", %local_addr);
        tokio::spawn(
            async move {
                // Small console frames go out at once, as from App Platform's Go servers
                // (Go sockets have TCP_NODELAY on); with Nagle's algorithm a frame could wait
                // for the delayed ACK of the previous one (about 40 ms).
                let listener = listener.tap_io(|tcp| {
                    if let Err(err) = tcp.set_nodelay(true) {
                        tracing::debug!(%err, "cannot set TCP_NODELAY on an accepted connection");
                    }
                });
                let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                });
                if let Err(err) = serve.await {
                    tracing::warn!(%err, "emulator server ended with an error");
                }
            }
            .instrument(span),
        );
        tracing::info!(%local_addr, "emulator listening");
        Ok(EmulatorHandle {
            state,
            shutdown: shutdown_tx,
        })
    }
}

/// Takes in the apps the backend already runs (a `LocalPlatform` keeps its sandboxes across
/// processes), each with one deployment.
async fn adopt(state: &Shared) {
    let apps = match state.backend.list_apps().await {
        Ok(apps) => apps,
        Err(err) => {
            tracing::warn!(%err, "cannot list the backend's apps; starting empty");
            return;
        }
    };
    let now = OffsetDateTime::now_utc();
    let mut records = lock(&state.apps);
    for app in apps {
        let created = app.created_at.unwrap_or(now);
        let spec = serde_json::to_value(&app.spec).unwrap_or(serde_json::Value::Null);
        let dep_id = app
            .active_deployment
            .as_ref()
            .or(app.in_progress_deployment.as_ref())
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), |d| d.id.clone());
        let outcome = app
            .status()
            .is_active()
            .then_some(crate::model::Outcome::Active { at: created });
        records.push(AppRecord {
            id: app.id.clone(),
            name: app.spec.name.clone(),
            spec: spec.clone(),
            created_at: created,
            updated_at: app.updated_at.unwrap_or(created),
            deployments: vec![crate::model::DeploymentRecord {
                id: dep_id,
                spec,
                cause: "app created".to_owned(),
                created_at: created,
                pace: time::Duration::ZERO,
                doomed: None,
                outcome,
            }],
            backend_live_url: app.live_url.clone(),
        });
    }
}

/// A running emulator. Dropping it stops the server and ends its WebSocket sessions.
pub struct EmulatorHandle {
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
}

impl fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl EmulatorHandle {
    /// The base URL, `http://127.0.0.1:PORT` (what `doctl --api-url` takes).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.state.local_addr)
    }

    /// The socket address served.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.state.local_addr
    }

    /// The API token accepted.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// A `Doctl` configuration that drives this emulator: the doctl stand-in
    /// ([`standin_path`](crate::standin_path)), this emulator's URL and token. Timeouts and
    /// retries are the caller's to add.
    ///
    /// # Errors
    ///
    /// When the stand-in binary can be neither found nor built.
    #[cfg(feature = "test-support")]
    pub fn doctl_config(&self) -> std::io::Result<DoctlConfig> {
        Ok(DoctlConfig::new()
            .with_binary(crate::standin_path()?)
            .with_token(Token::new(self.token()))
            .with_api_url(self.url()))
    }

    /// A `DoApi` configuration that talks to this emulator: its URL and token. Timeouts,
    /// retries and page size are the caller's to add.
    #[must_use]
    #[cfg(feature = "test-support")]
    pub fn doapi_config(&self) -> DoApiConfig {
        DoApiConfig::new()
            .with_token(Token::new(self.token()))
            .with_base_url(self.url())
    }

    /// The faults to inject; changes apply to the next requests.
    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Every request received so far (REST, WebSocket upgrades and log downloads), in order;
    /// the last 10,000 when there were more.
    #[must_use]
    pub fn received_requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// Stops serving: no new connections; open WebSocket sessions end.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One request as the emulator received it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query, when there is one.
    pub query: Option<String>,
    /// Headers in arrival order, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: std::time::SystemTime,
}

impl RecordedRequest {
    /// The first value of a header (name compared case-insensitively).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `path?query`, as requested.
    #[must_use]
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                if n.eq_ignore_ascii_case("authorization") {
                    (n.as_str(), "[REDACTED]")
                } else {
                    (n.as_str(), v.as_str())
                }
            })
            .collect();
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// What a one-time URL handed out by the API is for.
#[derive(Debug, Clone)]
pub(crate) enum Ticket {
    Exec(ConsoleTarget),
    LiveLogs {
        request: LogsRequest,
        label: String,
    },
    HistoricLogs {
        request: LogsRequest,
        label: String,
        expires: OffsetDateTime,
    },
}

/// Everything the handlers share.
pub(crate) struct AppState {
    pub backend: Arc<dyn Platform>,
    pub token: String,
    pub pace: Duration,
    pub apps: Mutex<Vec<AppRecord>>,
    /// Names being created right now (so two creates of one name cannot both win).
    pub reserved: Mutex<HashSet<String>>,
    pub tickets: Mutex<HashMap<String, Ticket>>,
    pub faults: Faults,
    pub requests: Mutex<Vec<RecordedRequest>>,
    /// Unix times of the API requests of the last hour.
    pub served: Mutex<VecDeque<i64>>,
    pub local_addr: SocketAddr,
    pub shutdown: watch::Receiver<bool>,
}

pub(crate) type Shared = Arc<AppState>;

/// Locks a mutex, recovering the data if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AppState {
    /// `host:port` to put in URLs handed out: the request's `Host`, else the bound address.
    pub(crate) fn host(&self, headers: &HeaderMap) -> String {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| self.local_addr.to_string())
    }

    /// Stores a ticket and returns its token.
    pub(crate) fn issue(&self, ticket: Ticket) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        lock(&self.tickets).insert(token.clone(), ticket);
        token
    }
}

/// The emulator's routes over `state`.
pub(crate) fn router(state: Shared) -> Router {
    let api = handlers::api_routes()
        .fallback(handlers::not_implemented)
        .layer(middleware::from_fn_with_state(state.clone(), api_layer));
    Router::new()
        .merge(api)
        .route("/exec", get(handlers::exec::websocket))
        .route("/logs/live", get(handlers::logs::live))
        .route("/logs/historic", get(handlers::logs::historic))
        .layer(middleware::from_fn_with_state(state.clone(), record_layer))
        .merge(handlers::admin::routes())
        .with_state(state)
}

/// Requests per hour App Platform allows a token (reported in `ratelimit-limit`).
const RATE_LIMIT: u64 = 5000;

/// How many requests are kept for [`EmulatorHandle::received_requests`] (the oldest go first).
const RECORDED_MAX: usize = 10_000;

/// Records every request (body included) before it is served.
async fn record_layer(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::bad_request("request body too large or unreadable").into_response();
        }
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: bytes.to_vec(),
        at: std::time::SystemTime::now(),
    };
    tracing::debug!(method = %recorded.method, path = %recorded.path, "request");
    {
        let mut requests = lock(&state.requests);
        if requests.len() >= RECORDED_MAX {
            requests.remove(0);
        }
        requests.push(recorded);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Faults, bearer-token auth and the headers every API answer carries.
async fn api_layer(State(state): State<Shared>, request: Request, next: Next) -> Response {
    // A sliding hour, as App Platform counts: each request expires an hour after it was made.
    let (remaining, reset_at) = {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut window = lock(&state.served);
        while window.front().is_some_and(|t| *t <= now - 3600) {
            window.pop_front();
        }
        window.push_back(now);
        let oldest = window.front().copied().unwrap_or(now);
        (
            RATE_LIMIT.saturating_sub(window.len() as u64),
            oldest + 3600,
        )
    };
    let mut response = if let Some(fault) = state.faults.take_http() {
        fault_response(fault)
    } else if !authorized(&state, request.headers()) {
        ApiError::unauthorized().into_response()
    } else {
        next.run(request).await
    };
    if response.extensions().get::<Bare>().is_some() {
        return response;
    }
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    if !headers.contains_key("ratelimit-limit") {
        headers.insert("ratelimit-limit", HeaderValue::from(RATE_LIMIT));
        headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(reset_at));
    }
    if !headers.contains_key("x-request-id") {
        if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            headers.insert("x-request-id", v);
        }
    }
    response
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && token.trim() == state.token
}

fn fault_response(fault: HttpFault) -> Response {
    match fault {
        HttpFault::RateLimited { retry_after } => {
            let mut response = ApiError::rate_limited(retry_after).into_response();
            let headers = response.headers_mut();
            headers.insert("ratelimit-limit", HeaderValue::from(5000u64));
            headers.insert("ratelimit-remaining", HeaderValue::from(0u64));
            headers.insert(
                "ratelimit-reset",
                HeaderValue::from(OffsetDateTime::now_utc().unix_timestamp() + 60),
            );
            response
        }
        HttpFault::ServerError { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = serde_json::json!({"id": "server_error", "message": "Server was unable to give you a response."});
            (status, body.to_string()).into_response()
        }
        HttpFault::EmptyServerError { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (status, Body::empty()).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response.extensions_mut().insert(Bare);
            response
        }
        HttpFault::BadGatewayHtml => {
            let mut response = (
                StatusCode::BAD_GATEWAY,
                "<html><body>502 Bad Gateway</body></html>\n",
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            response.extensions_mut().insert(Bare);
            response
        }
    }
}

/// Resolves once the emulator is told to stop.
pub(crate) async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await.map(|_| ());
}

/// Marks answers that come from "something in front of the API": no request id, no
/// rate-limit headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bare;
