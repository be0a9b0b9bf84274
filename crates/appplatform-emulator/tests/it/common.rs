//! Test support: a fake backend, fixtures, JSON shape comparison, output normalisation.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appplatform_emulator::{Emulator, EmulatorHandle};
use async_trait::async_trait;
use doctl_driver::wire::{WireApp, WireInstance};
use doctl_driver::{
    App, Console, ConsoleTarget, Deployment, Error, Instance, LogStream, LogsRequest, Platform,
    Result, TermSize,
};
use regex::Regex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const W: &str = "6b3c8f2e-4d1a-4c9e-9f7b-2a5d8e1c0b34";
pub const S: &str = "9d1e5c7a-2f4b-4a8d-b6e3-1c0f9a7d5e28";
pub const E: &str = "3c7e9a1b-5d2f-4b8c-9e6a-0f1d7b3c5a92";
pub const X: &str = "00000000-0000-4000-8000-000000000000";
pub const TOKEN: &str = "TOKEN";

/// What the fake backend says about an app.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeState {
    Active,
    Deploying,
    Failed(String),
}

#[derive(Debug, Default)]
struct Inner {
    next_ids: VecDeque<String>,
    apps: Vec<(String, appspec::AppSpec, FakeState)>,
    consoles_opened: Vec<ConsoleTarget>,
}

/// A `Platform` that keeps apps in memory and whose consoles are a tiny shell simulation:
/// prompt, echo, `echo X`, `exit`.
#[derive(Debug, Clone, Default)]
pub struct FakePlatform {
    inner: Arc<Mutex<Inner>>,
    initial: Arc<Mutex<Option<FakeState>>>,
    resizes: Arc<Mutex<Vec<TermSize>>>,
}

impl FakePlatform {
    pub fn new() -> Self {
        Self::default()
    }

    /// The ids the next created apps get, in order.
    pub fn with_ids(self, ids: &[&str]) -> Self {
        self.inner
            .lock()
            .unwrap()
            .next_ids
            .extend(ids.iter().map(|s| (*s).to_owned()));
        self
    }

    /// The state newly created apps start in (default: active).
    pub fn with_initial_state(self, state: FakeState) -> Self {
        *self.initial.lock().unwrap() = Some(state);
        self
    }

    pub fn set_state(&self, id: &str, state: FakeState) {
        let mut inner = self.inner.lock().unwrap();
        for app in &mut inner.apps {
            if app.0 == id {
                app.2 = state.clone();
            }
        }
    }

    pub fn app_count(&self) -> usize {
        self.inner.lock().unwrap().apps.len()
    }

    pub fn consoles_opened(&self) -> Vec<ConsoleTarget> {
        self.inner.lock().unwrap().consoles_opened.clone()
    }

    pub fn resizes(&self) -> Vec<TermSize> {
        self.resizes.lock().unwrap().clone()
    }

    fn to_app(id: &str, spec: &appspec::AppSpec, state: &FakeState) -> App {
        let phase = match state {
            FakeState::Active => "ACTIVE",
            FakeState::Deploying => "DEPLOYING",
            FakeState::Failed(_) => "ERROR",
        };
        let mut dep = json!({"id": format!("dep-{id}"), "phase": phase, "progress": {"total_steps": 6, "success_steps": 6}});
        if let FakeState::Failed(reason) = state {
            dep = json!({"id": format!("dep-{id}"), "phase": "ERROR", "progress": {"total_steps": 6, "error_steps": 1,
                "steps": [{"name": "deploy", "status": "ERROR", "reason": {"code": "X", "message": reason}}]}});
        }
        let key = if *state == FakeState::Active {
            "active_deployment"
        } else {
            "in_progress_deployment"
        };
        let wire: WireApp =
            serde_json::from_value(json!({"id": id, "spec": spec, key: dep})).unwrap();
        App::try_from(wire).unwrap()
    }
}

#[async_trait]
impl Platform for FakePlatform {
    fn kind(&self) -> &'static str {
        "fake"
    }

    async fn create_app(&self, spec: &appspec::AppSpec) -> Result<App> {
        let mut inner = self.inner.lock().unwrap();
        if inner.apps.iter().any(|a| a.1.name == spec.name) {
            return Err(Error::NameTaken {
                name: spec.name.clone(),
            });
        }
        let id = inner
            .next_ids
            .pop_front()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let state = self
            .initial
            .lock()
            .unwrap()
            .clone()
            .unwrap_or(FakeState::Active);
        inner.apps.push((id.clone(), spec.clone(), state.clone()));
        Ok(Self::to_app(&id, spec, &state))
    }

    async fn get_app(&self, app_id: &str) -> Result<App> {
        let inner = self.inner.lock().unwrap();
        inner
            .apps
            .iter()
            .find(|a| a.0 == app_id)
            .map(|a| Self::to_app(&a.0, &a.1, &a.2))
            .ok_or_else(|| Error::not_found(format!("app `{app_id}`")))
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        Ok(Vec::new())
    }

    async fn delete_app(&self, app_id: &str) -> Result<()> {
        let mut inner = self.inner.lock().unwrap();
        let before = inner.apps.len();
        inner.apps.retain(|a| a.0 != app_id);
        if inner.apps.len() == before {
            return Err(Error::not_found(format!("app `{app_id}`")));
        }
        Ok(())
    }

    async fn list_deployments(&self, _app_id: &str) -> Result<Vec<Deployment>> {
        Ok(Vec::new())
    }

    async fn list_instances(&self, app_id: &str) -> Result<Vec<Instance>> {
        let inner = self.inner.lock().unwrap();
        let Some(app) = inner.apps.iter().find(|a| a.0 == app_id) else {
            return Err(Error::not_found(format!("app `{app_id}`")));
        };
        let mut out = Vec::new();
        for (name, kind) in app
            .1
            .services
            .iter()
            .map(|s| (s.name.clone(), "SERVICE"))
            .chain(app.1.workers.iter().map(|w| (w.name.clone(), "WORKER")))
        {
            let wire: WireInstance = serde_json::from_value(json!({
                "component_name": name, "instance_name": format!("{name}-5d9f-x2v9k"),
                "component_type": kind, "instance_alias": format!("{name}-0")
            }))
            .unwrap();
            out.push(Instance::from(wire));
        }
        Ok(out)
    }

    async fn open_console(&self, target: &ConsoleTarget) -> Result<Box<dyn Console>> {
        self.get_app(&target.app_id).await?;
        self.inner
            .lock()
            .unwrap()
            .consoles_opened
            .push(target.clone());
        Ok(Box::new(FakeConsole::new(self.resizes.clone())))
    }

    async fn logs(&self, request: &LogsRequest) -> Result<LogStream> {
        self.get_app(&request.app_id).await?;
        let lines: Vec<Result<String>> = (1..=3).map(|i| Ok(format!("line {i}"))).collect();
        Ok(Box::pin(futures::stream::iter(lines)))
    }
}

pub const PROMPT: &str = "sandbox@sandbox-5d9f-x2v9k:~/app$ ";

/// A pretend interactive shell on a terminal.
pub struct FakeConsole {
    tx: mpsc::UnboundedSender<Option<Vec<u8>>>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Option<Vec<u8>>>>,
    line: Mutex<Vec<u8>>,
    resizes: Arc<Mutex<Vec<TermSize>>>,
}

impl FakeConsole {
    fn new(resizes: Arc<Mutex<Vec<TermSize>>>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(Some(PROMPT.as_bytes().to_vec())).unwrap();
        FakeConsole {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            line: Mutex::new(Vec::new()),
            resizes,
        }
    }
}

#[async_trait]
impl Console for FakeConsole {
    async fn send(&self, data: &[u8]) -> Result<()> {
        for &b in data {
            if b == b'\r' {
                let line =
                    String::from_utf8_lossy(&std::mem::take(&mut *self.line.lock().unwrap()))
                        .into_owned();
                let _ = self.tx.send(Some(b"\r\n".to_vec()));
                if line == "exit" {
                    let _ = self.tx.send(Some(b"exit\r\n".to_vec()));
                    let _ = self.tx.send(None);
                } else {
                    if let Some(rest) = line.strip_prefix("echo ") {
                        let _ = self.tx.send(Some(format!("{rest}\r\n").into_bytes()));
                    }
                    if line == "echo hi" {
                        // What the recorded mock printed after `hi`: non-ASCII output, split
                        // mid-character across two chunks.
                        let extra = "café ✓ <&>\r\n".as_bytes();
                        let _ = self.tx.send(Some(extra[..4].to_vec()));
                        let _ = self.tx.send(Some(extra[4..].to_vec()));
                    }
                    let _ = self.tx.send(Some(PROMPT.as_bytes().to_vec()));
                }
            } else {
                self.line.lock().unwrap().push(b);
                let _ = self.tx.send(Some(vec![b]));
            }
        }
        Ok(())
    }

    async fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut rx = self.rx.lock().await;
        Ok(rx.recv().await.flatten())
    }

    async fn resize(&self, size: TermSize) -> Result<()> {
        self.resizes.lock().unwrap().push(size);
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// Starts an emulator over `backend` with token `TOKEN` and an instant pace.
pub async fn start(backend: &FakePlatform) -> EmulatorHandle {
    Emulator::builder()
        .backend(Arc::new(backend.clone()))
        .token(TOKEN)
        .pace(Duration::ZERO)
        .start()
        .await
        .expect("emulator starts")
}

pub fn fixture_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/doctl")
        .join(case)
}

pub fn fixture_text(case: &str, file: &str) -> String {
    std::fs::read_to_string(fixture_dir(case).join(file)).unwrap_or_default()
}

/// The recorded API answers of a case.
pub fn api_responses(case: &str) -> Vec<Value> {
    serde_json::from_str(&fixture_text(case, "api_response.json"))
        .expect("api_response.json parses")
}

/// The recorded requests of a case.
pub fn requests(case: &str) -> Vec<Value> {
    fixture_text(case, "requests.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Asserts `actual` has the shape of `expected`: the same keys in the same order, the same
/// kinds of values, equal numbers and booleans, array lengths equal. Strings (ids, times,
/// URLs) are not compared, except under keys named in `exact`. `spec` subtrees are skipped
/// (they echo what the client sent).
pub fn assert_shape(expected: &Value, actual: &Value, path: &str, exact: &[&str]) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<&String> = e.keys().filter(|k| !k.starts_with("x_mock")).collect();
            let ak: Vec<&String> = a.keys().collect();
            assert_eq!(ek, ak, "keys differ at {path}");
            for k in ek {
                if k == "spec" {
                    continue;
                }
                let child = format!("{path}.{k}");
                if exact.contains(&k.as_str()) {
                    assert_eq!(e[k], a[k], "value differs at {child}");
                } else {
                    assert_shape(&e[k], &a[k], &child, exact);
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "array length differs at {path}");
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                assert_shape(x, y, &format!("{path}[{i}]"), exact);
            }
        }
        (Value::String(_), Value::String(_)) => {}
        (Value::Number(x), Value::Number(y)) => assert_eq!(x, y, "number differs at {path}"),
        (x, y) => assert_eq!(x, y, "value differs at {path}"),
    }
}

/// Replaces what legitimately differs between runs: ids, request ids, times, ports, tokens,
/// durations.
pub fn normalize(text: &str, port: u16, token: &str) -> String {
    let uuid = Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap();
    let time =
        Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z| \+0000 UTC)").unwrap();
    let duration = Regex::new(r#""\d+(\.\d+)?s""#).unwrap();
    let hex_token = Regex::new(r"token=[0-9a-zA-Z_-]+").unwrap();
    let host = Regex::new(r"-[a-z0-9]{5}\.ondigitalocean\.app").unwrap();
    let mut out = text.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:PORT");
    if !token.is_empty() {
        out = out.replace(token, "TOKEN");
    }
    let out = uuid.replace_all(&out, "UUID");
    let out = time.replace_all(&out, "TIME");
    let out = duration.replace_all(&out, "\"DUR\"");
    let out = host.replace_all(&out, "-HOST.ondigitalocean.app");
    hex_token.replace_all(&out, "token=T").into_owned()
}

/// Keys whose values must match the fixtures exactly.
pub const EXACT: &[&str] = &[
    "phase",
    "status",
    "id_kind",
    "cause",
    "tier_slug",
    "total_steps",
    "name",
    "message",
    "code",
];

/// A request's body from a fixture (what doctl sent).
pub fn request_body(case: &str, index: usize) -> String {
    requests(case)[index]["body"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Creates an app with the request of a recorded create case (`apps-create-...-success`);
/// fails the test unless the answer is 200. Returns the answer's body.
pub async fn create_from_fixture(emulator: &EmulatorHandle, case: &str) -> Value {
    let (status, _, body) = send(emulator, "POST", "/v2/apps", Some(request_body(case, 0))).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Creates the worker app `W` the fixtures use.
pub async fn create_worker(emulator: &EmulatorHandle) -> Value {
    create_from_fixture(emulator, "apps-create-worker-success").await
}

/// An emulator over `backend` with the worker app `W` created.
pub async fn start_with_worker(backend: &FakePlatform) -> EmulatorHandle {
    let emulator = start(backend).await;
    create_worker(&emulator).await;
    emulator
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

pub async fn send(
    emulator: &EmulatorHandle,
    method: &str,
    path: &str,
    body: Option<String>,
) -> (u16, HashMap<String, String>, Value) {
    let mut req = http()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", emulator.url()),
        )
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = tokio::time::timeout(Duration::from_secs(30), req.send())
        .await
        .expect("answer in time")
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}
