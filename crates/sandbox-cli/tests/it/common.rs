//! The test context: a hermetic environment, the binary, the emulator, snapshot filters.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use tempfile::TempDir;

/// The `sandbox` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sandbox")
}

/// Variables a developer's shell may hold that would change what the CLI does.
const SCRUBBED: &[&str] = &[
    "SANDBOX_PROVIDER",
    "SANDBOX_DRIVER",
    "SANDBOX_CONFIG",
    "SANDBOX_LOCAL_DIR",
    "SANDBOX_IMAGE",
    "SANDBOX_NO_PROGRESS",
    "DIGITALOCEAN_API_URL",
    "DIGITALOCEAN_CONTEXT",
    "DIGITALOCEAN_TOKEN",
    "DIGITALOCEAN_ACCESS_TOKEN",
    "DIGITALOCEAN_CONFIG",
    "DOCTL",
    "EMULATOR_TOKEN",
    "SANDBOX_MCP_TOKEN",
    "APP_SANDBOX_REGION",
    "RUST_LOG",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "SANDBOX_SNAPSHOT_DIR",
    "SPACES_ACCESS_KEY",
    "SPACES_SECRET_KEY",
    "SPACES_BUCKET",
    "SPACES_REGION",
    "SPACES_ENDPOINT",
];

/// One test's world: a temp root holding HOME, the XDG folders and the local provider's
/// state, plus extra variables (the emulator's URL and token).
pub struct TestContext {
    pub root: TempDir,
    pub env: Vec<(String, String)>,
}

impl TestContext {
    /// A context on the local provider, or `None` (with a printed reason) when this machine
    /// cannot run local sandboxes.
    pub fn local() -> Option<TestContext> {
        let root = tempfile::Builder::new()
            .prefix("sbx-cli-")
            .tempdir()
            .expect("temp dir");
        if sandbox_testkit::skip_reason().is_some() {
            return None;
        }
        Some(Self::with_root(root))
    }

    /// A context that runs nothing (help, usage errors).
    pub fn bare() -> TestContext {
        Self::with_root(
            tempfile::Builder::new()
                .prefix("sbx-cli-")
                .tempdir()
                .expect("temp dir"),
        )
    }

    fn with_root(root: TempDir) -> TestContext {
        for dir in ["home", "config", "data", "local"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("test folders");
        }
        TestContext {
            root,
            env: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub fn local_dir(&self) -> PathBuf {
        self.path().join("local")
    }

    /// Where `sandbox emulator` keeps its sandboxes in this context (its default folder).
    pub fn emulator_dir(&self) -> PathBuf {
        self.path().join("data/do-app-sandbox/emulator")
    }

    /// The variables every command of this test runs with.
    fn apply(&self, cmd: &mut std::process::Command) {
        for key in SCRUBBED {
            cmd.env_remove(key);
        }
        let p = self.path();
        cmd.env("HOME", p.join("home"))
            .env("XDG_CONFIG_HOME", p.join("config"))
            .env("XDG_DATA_HOME", p.join("data"))
            .env("SANDBOX_LOCAL_DIR", self.local_dir())
            .env("SANDBOX_NO_PROGRESS", "1")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .current_dir(p);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
    }

    /// `sandbox ARGS...` in this context, as a plain `std::process::Command`.
    pub fn std_cmd<I, S>(&self, args: I) -> std::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut std_cmd = std::process::Command::new(bin());
        self.apply(&mut std_cmd);
        std_cmd.args(args);
        std_cmd
    }

    /// `sandbox ARGS...` in this context.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::from_std(self.std_cmd(args));
        cmd.timeout(Duration::from_secs(180));
        cmd
    }

    /// Runs `sandbox ARGS...` and returns its output.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd(args).output().expect("run sandbox")
    }

    /// Runs `sandbox ARGS...` and returns its stdout, failing the test on a non-zero exit.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "exit {:?}\nstdout: {}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 stdout")
    }

    /// Starts `sandbox emulator --port 0` over this context's local state and points the
    /// context's commands at it (`--provider digitalocean`, its URL and token).
    pub fn start_emulator(&mut self) -> EmulatorProcess {
        self.start_emulator_with_pace("0.3")
    }

    /// [`TestContext::start_emulator`] whose deployments take `pace` seconds.
    pub fn start_emulator_with_pace(&mut self, pace: &str) -> EmulatorProcess {
        let mut cmd = std::process::Command::new(bin());
        self.apply(&mut cmd);
        cmd.args(["emulator", "--port", "0", "--pace", pace, "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("start the emulator");
        let stdout = child.stdout.take().expect("emulator stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                text.push_str(&line);
                text.push('\n');
                if line == "}" {
                    let _ = tx.send(text.clone());
                }
            }
        });
        let mut process = EmulatorProcess {
            child,
            url: String::new(),
            token: String::new(),
        };
        let text = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the emulator prints its URL within 60 s");
        let json: serde_json::Value = serde_json::from_str(&text).expect("emulator JSON");
        process.url = json["url"].as_str().expect("url").to_owned();
        process.token = json["token"].as_str().expect("token").to_owned();
        self.env
            .push(("SANDBOX_PROVIDER".into(), "digitalocean".into()));
        self.env
            .push(("DIGITALOCEAN_API_URL".into(), process.url.clone()));
        self.env
            .push(("DIGITALOCEAN_TOKEN".into(), process.token.clone()));
        process
    }

    /// Filters for snapshots: ids, ages, times, temp paths, ports.
    pub fn filters(&self) -> Vec<(String, String)> {
        let mut filters = vec![
            (
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".to_owned(),
                "[ID]".to_owned(),
            ),
            (
                r"sandbox-[0-9a-f]{8}\b".to_owned(),
                "sandbox-[HEX]".to_owned(),
            ),
            (
                r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z".to_owned(),
                "[TIMESTAMP]".to_owned(),
            ),
            // Durations and ages: `0.2s`, `4m05s`, `12s`, `3m`, `2h`, `1d`.
            (
                r"\b\d+(\.\d+)?(s|m\d\ds|m|h|d)\b".to_owned(),
                "[TIME]".to_owned(),
            ),
            (r"127\.0\.0\.1:\d+".to_owned(), "[HOST]".to_owned()),
        ];
        filters.push((
            regex::escape(&self.path().to_string_lossy()),
            "[TEMP]".to_owned(),
        ));
        filters
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        // Whatever a test left behind (also after a failed assertion) is deleted: the local
        // provider's sandboxes and the emulator's, which live in a folder of their own.
        for dir in [self.local_dir(), self.emulator_dir()] {
            if !dir.join("sandboxes").exists() {
                continue;
            }
            let mut cmd = std::process::Command::new(bin());
            self.apply(&mut cmd);
            cmd.env("SANDBOX_PROVIDER", "local")
                .env("SANDBOX_LOCAL_DIR", &dir)
                .args(["delete", "--all", "--force", "--quiet"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = cmd.status();
        }
    }
}

/// An emulator child process, killed on drop.
pub struct EmulatorProcess {
    child: Child,
    pub url: String,
    pub token: String,
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGINT to a running command (as Ctrl-C would) and returns its exit code once it
/// ends; fails the test when it has not ended within a minute.
pub fn interrupt(child: &mut Child, what: &str) -> Option<i32> {
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("poll the command") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "{what} did not end after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Renders an output as uv's snapshots do: exit code, stdout, stderr.
pub fn render(output: &Output) -> String {
    format!(
        "success: {}\nexit_code: {}\n----- stdout -----\n{}\n----- stderr -----\n{}",
        output.status.success(),
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Snapshot (in `tests/it/snapshots/`) of a command's output with the context's filters.
#[macro_export]
macro_rules! sandbox_snapshot {
    ($ctx:expr, $name:expr, $output:expr) => {
        $crate::sandbox_snapshot!($ctx, $name, $output, table = false)
    };
    ($ctx:expr, $name:expr, $output:expr, table = $table:expr) => {{
        let mut filters: Vec<(String, String)> = $ctx.filters();
        if $table {
            // Column padding depends on the width of filtered values (an age of `9s` or `10s`).
            filters.push((r" {2,}".to_owned(), "  ".to_owned()));
        }
        let filters: Vec<(&str, &str)> =
            filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        insta::with_settings!({ filters => filters, prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($name, $crate::common::render(&$output));
        });
    }};
}

/// The id of the sandbox named `name` in `sandbox list --json`.
pub fn id_of(ctx: &TestContext, name: &str) -> String {
    let list: serde_json::Value =
        serde_json::from_str(&ctx.ok(["list", "--json"])).expect("list JSON");
    list.as_array()
        .expect("array")
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["id"].as_str())
        .expect("sandbox listed")
        .to_owned()
}
