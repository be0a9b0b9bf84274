//! The state folder: one `state.json` per sandbox, name claims, and process identities.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use appspec::AppSpec;
use doctl_driver::{Error, Result};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A process as recorded in `state.json`: its pid and its start time (field 22 of
/// `/proc/<pid>/stat`, in clock ticks since boot), so a recycled pid is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcRef {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcRef {
    /// The identity of a running process, or `None` when it does not exist.
    pub fn of(pid: i32) -> Option<ProcRef> {
        let stat = read_stat(pid)?;
        Some(ProcRef {
            pid,
            start_time: stat.start_time,
        })
    }

    /// Whether this very process still runs (exists, same start time, not a zombie).
    pub fn is_alive(&self) -> bool {
        read_stat(self.pid).is_some_and(|s| s.start_time == self.start_time && s.state != 'Z')
    }

    /// Sends SIGKILL when this very process still runs.
    pub fn kill(&self) {
        if self.is_alive()
            && let Some(pid) = rustix::process::Pid::from_raw(self.pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

struct Stat {
    state: char,
    start_time: u64,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: the fields start after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); start time is field 22.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

/// The pids of the direct children of a process.
pub(crate) fn children_of(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// The kind of the sandbox's component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Service,
    Worker,
}

/// The sandbox's runtime: which host interpreter its image stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Runtime {
    Python,
    Node,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Python => "python",
            Runtime::Node => "node",
        }
    }

    /// The interpreter binary it needs.
    pub fn binary(self) -> &'static str {
        match self {
            Runtime::Python => "python3",
            Runtime::Node => "node",
        }
    }
}

/// Where a sandbox's deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Phase {
    Deploying,
    Active,
    Error,
}

/// How the sandbox reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Net {
    /// The host's network namespace.
    Host,
    /// A private network namespace connected by pasta.
    Pasta,
    /// A private network namespace with its loopback only (no pasta on this machine).
    Loopback,
}

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    pub name: String,
    pub spec: AppSpec,
    pub component: String,
    pub kind: Kind,
    pub runtime: Runtime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub hostname: String,
    pub deployment_id: String,
    pub phase: Phase,
    /// Why the deployment failed, when it did.
    #[serde(default)]
    pub failure: Option<String>,
    /// PID 1 of the sandbox, as seen from the host.
    #[serde(default)]
    pub supervisor: Option<ProcRef>,
    /// The holder: the host-side shell that started the container, serves its network (pasta)
    /// and removes what runc made once the sandbox ends.
    #[serde(default)]
    pub holder: Option<ProcRef>,
    /// The pasta process serving the sandbox's network, when there is one.
    #[serde(default)]
    pub pasta: Option<ProcRef>,
    pub network: Net,
    /// The host port that reaches the app's port (8080 inside with pasta), for services.
    #[serde(default)]
    pub host_port: Option<u16>,
    /// The host port that reaches the health server, for services.
    #[serde(default)]
    pub health_port: Option<u16>,
    /// Whether the sandbox has its own user namespace (always, since sandboxes run in runc).
    pub user_namespace: bool,
    /// The first host uid (and gid) of the sandbox's range: uid N inside is this plus N.
    #[serde(default)]
    pub uid_base: Option<u32>,
    /// The instance size whose limits the sandbox runs under.
    #[serde(default)]
    pub instance_size: Option<String>,
    /// The environment every process in the sandbox starts with.
    pub env: Vec<(String, String)>,
}

impl Record {
    /// Whether the sandbox's PID 1 is running.
    pub fn supervisor_alive(&self) -> bool {
        self.supervisor.is_some_and(|s| s.is_alive())
    }
}

/// Paths of the state folder.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub fn sandboxes(&self) -> PathBuf {
        self.root.join("sandboxes")
    }

    pub fn names(&self) -> PathBuf {
        self.root.join("names")
    }

    pub fn sandbox(&self, id: &str) -> PathBuf {
        self.sandboxes().join(id)
    }

    pub fn state_file(&self, id: &str) -> PathBuf {
        self.sandbox(id).join("state.json")
    }

    /// Creates the top folders (mode 0700: the state holds the specs' secrets).
    pub fn ensure(&self) -> Result<()> {
        for dir in [self.root.clone(), self.sandboxes(), self.names()] {
            create_private_dir(&dir)?;
        }
        Ok(())
    }

    /// Reads one sandbox's record.
    pub fn read(&self, id: &str) -> Result<Record> {
        if !is_valid_id(id) {
            return Err(Error::not_found(format!("app `{id}`")));
        }
        let path = self.state_file(id);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::not_found(format!("app `{id}`")));
            }
            Err(e) => return Err(io_error(&format!("reading {}", path.display()), e)),
        };
        serde_json::from_slice(&text).map_err(|e| {
            Error::other_with(
                format!("the sandbox state {} does not parse", path.display()),
                e,
            )
        })
    }

    /// Writes a record atomically (temporary file, then rename).
    pub fn write(&self, record: &Record) -> Result<()> {
        let path = self.state_file(&record.id);
        let text = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::other_with("serialising the sandbox state", e))?;
        write_atomic(&path, &text)
    }

    /// Every sandbox id in the folder (those with a `state.json`).
    pub fn ids(&self) -> Result<Vec<String>> {
        let dir = self.sandboxes();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&format!("listing {}", dir.display()), e)),
        };
        let mut ids = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_valid_id(&name) && entry.path().join("state.json").exists() {
                ids.push(name);
            }
        }
        Ok(ids)
    }

    /// Claims a name for a sandbox id: exclusive across processes. A claim whose sandbox
    /// folder is gone (a creator that crashed, a delete cut short) is taken over.
    pub fn claim_name(&self, name: &str, id: &str) -> Result<()> {
        let path = self.names().join(name);
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    return file
                        .write_all(id.as_bytes())
                        .map_err(|e| io_error(&format!("writing {}", path.display()), e));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path).unwrap_or_default();
                    let owner = owner.trim();
                    if owner.is_empty() || self.sandbox(owner).exists() {
                        return Err(Error::NameTaken {
                            name: name.to_owned(),
                        });
                    }
                    let _ = fs::remove_file(&path);
                }
                Err(e) => return Err(io_error(&format!("creating {}", path.display()), e)),
            }
        }
        Err(Error::NameTaken {
            name: name.to_owned(),
        })
    }

    /// Releases a name claim, only when it belongs to this id.
    pub fn release_name(&self, name: &str, id: &str) {
        let path = self.names().join(name);
        if fs::read_to_string(&path).is_ok_and(|owner| owner.trim() == id) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Ids are lower-case UUIDs: anything else never names a folder (no path tricks).
pub(crate) fn is_valid_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.hyphenated().to_string() == id)
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(io_error(&format!("creating {}", dir.display()), e)),
    }
}

pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    fs::write(&tmp, data).map_err(|e| io_error(&format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error(&format!("renaming {} into place", tmp.display()), e)
    })
}

pub(crate) fn io_error(what: &str, e: io::Error) -> Error {
    Error::other_with(format!("{what}: {e}"), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_recycled_pid_is_not() {
        let me = ProcRef::of(std::process::id() as i32).expect("own stat");
        assert!(me.is_alive());
        let other = ProcRef {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
    }

    #[test]
    fn ids_must_be_canonical_uuids() {
        assert!(is_valid_id(&uuid::Uuid::new_v4().to_string()));
        assert!(!is_valid_id("../etc"));
        assert!(!is_valid_id("ABCDEF00-0000-4000-8000-000000000000"));
    }

    #[test]
    fn name_claims_are_exclusive_and_stale_ones_are_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        layout.ensure().expect("ensure");
        let a = uuid::Uuid::new_v4().to_string();
        let b = uuid::Uuid::new_v4().to_string();
        create_private_dir(&layout.sandbox(&a)).expect("dir");
        layout.claim_name("demo", &a).expect("first claim");
        assert!(matches!(
            layout.claim_name("demo", &b),
            Err(Error::NameTaken { .. })
        ));
        fs::remove_dir(layout.sandbox(&a)).expect("rmdir");
        layout
            .claim_name("demo", &b)
            .expect("stale claim taken over");
        layout.release_name("demo", &a);
        assert!(
            layout.names().join("demo").exists(),
            "only the owner releases"
        );
        layout.release_name("demo", &b);
        assert!(!layout.names().join("demo").exists());
    }
}
