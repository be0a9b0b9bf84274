//! Starting and stopping a sandbox: host checks, the state folder of one sandbox, the holder
//! (`assets/holder.sh`, which starts the container with runc) and pasta.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use appspec::{AppSpec, ComponentRef, ImageKind};
use doctl_driver::{Error, Result};

use crate::config::NetworkMode;
use crate::limits::Limits;
use crate::runtime::{self, Container};
use crate::state::{Kind, Net, ProcRef, Runtime, io_error};

pub(crate) use crate::runtime::SANDBOX_UID;
/// The app port of a service, inside its network namespace.
pub(crate) const APP_PORT: u16 = 8080;
/// The health server's port, inside its network namespace.
pub(crate) const HEALTH_PORT: u16 = 9090;

const INIT_SCRIPT: &str = include_str!("assets/init.sh");
const HOLDER_SCRIPT: &str = include_str!("assets/holder.sh");
const HEALTH_SERVER: &str = include_str!("assets/health.py");
/// How long the holder and runc may take to start the sandbox.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long pasta and the health server may take to answer.
const SERVE_DEADLINE: Duration = Duration::from_secs(15);
/// How long a killed sandbox may take to disappear.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The host programs a sandbox needs, by absolute path.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub runc: PathBuf,
    pub setsid: PathBuf,
    pub bash: PathBuf,
    pub pasta: Option<PathBuf>,
    /// The CPUs this process may use (sandboxes are pinned to some of them).
    pub cpus: Vec<usize>,
}

fn find_program(name: &str) -> Option<PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .map(|dir| Path::new(dir).join(name))
    .find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

impl Host {
    /// Checks this machine once: root, runc, user namespaces, seccomp and the cgroup
    /// controllers the limits need. The error names what is missing and how to get it.
    pub fn probe() -> Result<Host> {
        let unsupported = |reason: String| Error::Unsupported {
            what: "local sandboxes".into(),
            reason,
        };
        if !rustix::process::geteuid().is_root() {
            return Err(unsupported(
                "local sandboxes need root: each gets a uid range of its own (user namespace), \
                 a cgroup with the instance size's limits and a network namespace, which only \
                 root can set up; run as root (e.g. `sudo`)"
                    .into(),
            ));
        }
        let mut missing = Vec::new();
        let mut need = |name: &str, package: &str| {
            let found = find_program(name);
            if found.is_none() {
                missing.push(format!("`{name}` (Debian: `apt-get install {package}`)"));
            }
            found.unwrap_or_default()
        };
        let runc = need("runc", "runc");
        let setsid = need("setsid", "util-linux");
        let bash = need("bash", "bash");
        if !missing.is_empty() {
            return Err(unsupported(format!(
                "these programs are missing: {}",
                missing.join(", ")
            )));
        }
        check_user_namespaces().map_err(unsupported)?;
        check_seccomp().map_err(unsupported)?;
        check_cgroups(Path::new("/sys/fs/cgroup")).map_err(unsupported)?;
        runtime::ensure_run_dir()?;
        Ok(Host {
            runc,
            setsid,
            bash,
            pasta: find_program("pasta"),
            cpus: own_cpus(),
        })
    }
}

/// The kernel must have user namespaces, and allow creating them.
fn check_user_namespaces() -> std::result::Result<(), String> {
    let read = |path: &str| fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
    if !Path::new("/proc/self/ns/user").exists() {
        return Err(
            "the kernel has no user namespaces (/proc/self/ns/user is missing); use a kernel \
             built with CONFIG_USER_NS"
                .into(),
        );
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Err(
            "user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0); \
             `sysctl -w user.max_user_namespaces=15000`"
                .into(),
        );
    }
    Ok(())
}

/// The kernel must filter system calls (seccomp), or the sandbox's profile cannot apply.
fn check_seccomp() -> std::result::Result<(), String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    if status.lines().any(|l| l.starts_with("Seccomp:")) {
        Ok(())
    } else {
        Err(
            "the kernel has no seccomp (no `Seccomp:` in /proc/self/status); use a kernel \
             built with CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER"
                .into(),
        )
    }
}

/// The memory, pids and cpu controllers must be there, on cgroup v1 (one hierarchy each) or
/// v2 (listed in `cgroup.controllers`).
fn check_cgroups(root: &Path) -> std::result::Result<(), String> {
    let wanted = ["memory", "pids", "cpu"];
    let v2 = fs::read_to_string(root.join("cgroup.controllers")).ok();
    let missing: Vec<&str> = match &v2 {
        Some(list) => wanted
            .iter()
            .copied()
            .filter(|c| !list.split_whitespace().any(|have| have == *c))
            .collect(),
        None => wanted
            .iter()
            .copied()
            .filter(|c| !root.join(c).is_dir())
            .collect(),
    };
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the cgroup controllers {} are missing under {} ({}); the instance size's limits \
         need them: enable them in the kernel and mount them (on systemd machines they are \
         by default)",
        missing.join(", "),
        root.display(),
        if v2.is_some() {
            "cgroup v2"
        } else {
            "cgroup v1"
        }
    ))
}

/// The CPUs this process may run on.
fn own_cpus() -> Vec<usize> {
    rustix::thread::sched_getaffinity(None)
        .map(|set| {
            (0..rustix::thread::CpuSet::MAX_CPU)
                .filter(|cpu| set.is_set(*cpu))
                .collect()
        })
        .unwrap_or_default()
}

/// The CPUs a sandbox is pinned to: `vcpus` of the machine's, starting at one chosen by its
/// uid slot (so sandboxes spread over the CPUs); none when it may have them all.
pub(crate) fn pinned_cpus(host_cpus: &[usize], vcpus: u32, slot: u32) -> Option<String> {
    let wanted = usize::try_from(vcpus).unwrap_or(usize::MAX);
    if host_cpus.is_empty() || wanted >= host_cpus.len() {
        return None;
    }
    let start = usize::try_from(slot).unwrap_or(0) % host_cpus.len();
    let mut picked: Vec<usize> = (0..wanted)
        .map(|i| host_cpus[(start + i) % host_cpus.len()])
        .collect();
    picked.sort_unstable();
    Some(
        picked
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// What a spec asks a local sandbox to run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub component: String,
    pub kind: Kind,
    pub runtime: Runtime,
    pub run_command: String,
    pub spec_env: Vec<(String, String)>,
    /// The component's `instance_size_slug` (empty when the spec has none).
    pub instance_size: String,
}

/// Reads a spec: exactly one service or worker, a python or node sandbox image.
pub(crate) fn plan(spec: &AppSpec) -> Result<Plan> {
    spec.validate().map_err(|e| Error::InvalidSpec {
        field: e.field().map(str::to_owned),
        message: e.reason(),
    })?;
    let components: Vec<ComponentRef<'_>> = spec.components().collect();
    let [component] = components.as_slice() else {
        return Err(Error::InvalidArgument {
            name: "spec".into(),
            reason: format!(
                "a local sandbox runs exactly one service or worker; `{}` has {}",
                spec.name,
                components.len()
            ),
        });
    };
    let supported = "local sandboxes run the images `sandbox-python` and `sandbox-node` (any \
                     owner and tag), or specs carrying the DO_APP_SANDBOX marker";
    let runtime = match appspec::detect_sandbox(spec).map(|info| info.image) {
        Some(ImageKind::Python) => Runtime::Python,
        Some(ImageKind::Node) => Runtime::Node,
        _ => {
            let image = component
                .image()
                .map(|i| format!("`{}`", i.repository))
                .unwrap_or_else(|| "no image".into());
            return Err(Error::InvalidArgument {
                name: "image".into(),
                reason: format!("{supported}; component `{}` has {image}", component.name()),
            });
        }
    };
    let (kind, run_command, instance_size) = match component {
        ComponentRef::Service(s) => (
            Kind::Service,
            s.run_command.clone(),
            s.instance_size_slug.clone(),
        ),
        ComponentRef::Worker(w) => (
            Kind::Worker,
            w.run_command.clone(),
            w.instance_size_slug.clone(),
        ),
        _ => {
            return Err(Error::InvalidArgument {
                name: "spec".into(),
                reason: "local sandboxes run services and workers only".into(),
            });
        }
    };
    let mut spec_env = Vec::new();
    for env in spec.envs.iter().chain(component.envs()) {
        if env.scope.as_deref() == Some("BUILD_TIME") {
            continue;
        }
        spec_env.push((env.key.clone(), env.value.clone()));
    }
    Ok(Plan {
        component: component.name().to_owned(),
        kind,
        runtime,
        run_command,
        spec_env,
        instance_size,
    })
}

/// The runtime's interpreter must be under the host's /usr/bin: the sandbox sees the host's
/// /usr, without /usr/local.
pub(crate) fn runtime_present(runtime: Runtime) -> std::result::Result<(), String> {
    let dirs = ["/usr/bin"];
    let found = dirs
        .iter()
        .any(|d| Path::new(d).join(runtime.binary()).exists());
    if found {
        Ok(())
    } else {
        Err(format!(
            "the {} image runs this machine's `{}`, which is not installed (looked in {}); \
             install it (Debian: `apt-get install {}`)",
            runtime.as_str(),
            runtime.binary(),
            dirs.join(", "),
            match runtime {
                Runtime::Python => "python3",
                Runtime::Node => "nodejs",
            }
        ))
    }
}

/// A hostname shaped like an App Platform instance name: `<component>-<10>-<5>`.
pub(crate) fn instance_name(component: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let pick = |range: std::ops::Range<usize>| -> String {
        bytes[range]
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect()
    };
    let mut base: String = component.chars().take(40).collect();
    if base.is_empty() {
        base.push_str("sandbox");
    }
    format!("{base}-{}-{}", pick(0..10), pick(10..15))
}

/// Which network a new sandbox gets: its own namespace, connected by pasta when this machine
/// has it; loopback only without pasta (a worker; a service would be unreachable, so that is
/// an error); the host's network only when asked for ([`NetworkMode::Host`], weaker).
pub(crate) fn choose_network(
    kind: Kind,
    mode: NetworkMode,
    host: &Host,
) -> std::result::Result<Net, String> {
    const NEED_PASTA: &str = "the `pasta` program (Debian: `apt-get install passt`)";
    match mode {
        NetworkMode::Host => Ok(Net::Host),
        NetworkMode::Pasta if host.pasta.is_none() => {
            Err(format!("network mode `pasta` needs {NEED_PASTA}"))
        }
        NetworkMode::Pasta => Ok(Net::Pasta),
        NetworkMode::Loopback if kind == Kind::Worker => Ok(Net::Loopback),
        NetworkMode::Loopback => Err(
            "network mode `loopback` leaves a service unreachable from the host; use `pasta` \
             (or `auto`) for services"
                .into(),
        ),
        _ if host.pasta.is_some() => Ok(Net::Pasta),
        _ if kind == Kind::Worker => Ok(Net::Loopback),
        _ => Err(format!(
            "a service sandbox is reached through {NEED_PASTA}, which is not installed; install \
             it, or opt in to the weaker `NetworkMode::Host` (the service shares the host's \
             network)"
        )),
    }
}

/// Ports this process has handed out: never handed out twice, so sandboxes created at the same
/// time cannot be given the same port before either has bound it.
static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A free TCP port on 127.0.0.1, for a sandbox (or its pasta) to bind a moment later.
///
/// Picked at random below the kernel's ephemeral range (`ip_local_port_range`), where no
/// outgoing connection and no `bind(:0)` of any process can land on it in the meantime, and
/// checked free by binding it; never one this process handed out before. Falls back to the
/// kernel's choice when that range is too small.
pub(crate) fn free_port() -> Result<u16> {
    let mut handed = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (low, high) = quiet_port_range();
    let span = u32::from(high.saturating_sub(low));
    if span >= 1000 {
        let start = random_u32() % span;
        for i in 0..span {
            let port = low + u16::try_from((start + i) % span).unwrap_or(0);
            if !handed.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed.insert(port);
                return Ok(port);
            }
        }
    }
    loop {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| io_error("finding a free port on 127.0.0.1", e))?;
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .map_err(|e| io_error("reading a bound port", e))?;
        if handed.insert(port) {
            return Ok(port);
        }
    }
}

/// Up to 12,000 ports just below the ephemeral range (20768 to 32767 with Linux's default
/// 32768 to 60999), never below 10000.
fn quiet_port_range() -> (u16, u16) {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    (
        ephemeral_low.saturating_sub(12_000).max(10_000),
        ephemeral_low,
    )
}

fn random_u32() -> u32 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Everything the holder needs to start one sandbox.
#[derive(Debug, Clone)]
pub(crate) struct Launch<'a> {
    pub id: &'a str,
    pub dir: &'a Path,
    pub hostname: &'a str,
    pub runtime: Runtime,
    pub kind: Kind,
    pub net: Net,
    pub run_command: &'a str,
    pub env: &'a [(String, String)],
    /// Host ports for the app and the health server (services).
    pub ports: Option<(u16, u16)>,
    pub limits: Limits,
    /// The first host uid of the sandbox's range.
    pub uid_base: u32,
}

/// What a started sandbox is made of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started {
    pub supervisor: ProcRef,
    pub holder: Option<ProcRef>,
    pub pasta: Option<ProcRef>,
}

/// A failed start: why, and what was started before it failed (to clean up).
#[derive(Debug)]
pub(crate) struct StartFailure {
    pub reason: String,
    pub partial: Started,
}

/// Writes the sandbox's folder (`run/` with its FIFO) and its bundle (root skeleton, private
/// `/etc`, `config.json`).
pub(crate) fn prepare(launch: &Launch<'_>, host: &Host) -> Result<()> {
    let run = launch.dir.join("run");
    fs::create_dir_all(&run).map_err(|e| io_error(&format!("creating {}", run.display()), e))?;
    fs::set_permissions(&run, fs::Permissions::from_mode(0o700))
        .map_err(|e| io_error(&format!("setting the mode of {}", run.display()), e))?;
    let fifo = run.join("init.fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .map_err(|e| io_error(&format!("creating the FIFO {}", fifo.display()), e.into()))?;
    let (health_host, health_port) = match (launch.kind, launch.net, launch.ports) {
        (Kind::Service, Net::Host, Some((_, health))) => {
            ("127.0.0.1".to_owned(), health.to_string())
        }
        (Kind::Service, _, _) => ("0.0.0.0".to_owned(), HEALTH_PORT.to_string()),
        _ => (String::new(), String::new()),
    };
    let args = vec![
        "/bin/bash".to_owned(),
        "-c".to_owned(),
        INIT_SCRIPT.to_owned(),
        "sandbox-init".to_owned(),
        health_host,
        health_port,
        launch.runtime.as_str().to_owned(),
        launch.run_command.to_owned(),
        HEALTH_SERVER.to_owned(),
    ];
    let container = Container {
        id: launch.id,
        hostname: launch.hostname,
        uid_base: launch.uid_base,
        limits: launch.limits,
        net: launch.net,
        env: launch.env,
        args,
        cpus: pinned_cpus(
            &host.cpus,
            launch.limits.vcpus,
            runtime::uid_slot(launch.uid_base),
        ),
    };
    runtime::write_bundle(&container)?;
    Ok(())
}

/// pasta's command line for a sandbox (the holder adds `--netns`): outbound traffic, the
/// host's loopback out of reach (`--no-map-gw`), a service's 8080 and 9090 forwarded from
/// loopback ports of the host, nothing forwarded back to the host.
fn pasta_command(launch: &Launch<'_>, pasta: &Path) -> Vec<String> {
    let run = launch.dir.join("run");
    let mut cmd: Vec<String> = vec![
        pasta.to_string_lossy().into_owned(),
        "--quiet".into(),
        "--foreground".into(),
        "--config-net".into(),
        "--no-map-gw".into(),
        // As root, pasta drops to `nobody` unless told otherwise; it must keep the right to
        // open the sandbox's /proc/<pid>/ns/net.
        "--runas".into(),
        "0:0".into(),
    ];
    match launch.ports {
        Some((app, health)) if launch.kind == Kind::Service => {
            cmd.push("--tcp-ports".into());
            cmd.push(format!("127.0.0.1/{app}:{APP_PORT}"));
            cmd.push("--tcp-ports".into());
            cmd.push(format!("127.0.0.1/{health}:{HEALTH_PORT}"));
        }
        _ => {
            cmd.push("--tcp-ports".into());
            cmd.push("none".into());
        }
    }
    for arg in [
        "--tcp-ns",
        "none",
        "--udp-ports",
        "none",
        "--udp-ns",
        "none",
        "--dns-forward",
        runtime::DNS_FORWARD,
    ] {
        cmd.push(arg.into());
    }
    cmd.push("--log-file".into());
    cmd.push(run.join("pasta.log").to_string_lossy().into_owned());
    cmd.push("--pid".into());
    cmd.push(run.join("pasta.pid").to_string_lossy().into_owned());
    cmd
}

/// Starts the holder detached from the caller (new session, reparented to init), which starts
/// the container; waits for the sandbox's `ready`, then for pasta and the health server.
pub(crate) fn start(
    launch: &Launch<'_>,
    host: &Host,
) -> std::result::Result<Started, StartFailure> {
    let mut started = Started {
        supervisor: ProcRef {
            pid: 0,
            start_time: 0,
        },
        holder: None,
        pasta: None,
    };
    let fail = |reason: String, partial: Started| StartFailure { reason, partial };
    let dir = launch.dir;
    let run = dir.join("run");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("run.log"))
        .map_err(|e| fail(format!("cannot open run.log: {e}"), started))?;
    let log2 = log
        .try_clone()
        .map_err(|e| fail(format!("cannot open run.log: {e}"), started))?;

    let bundle = runtime::bundle_dir(launch.id);
    let mut cmd = Command::new(&host.setsid);
    cmd.arg("--fork")
        .arg(&host.bash)
        .arg("-c")
        .arg(HOLDER_SCRIPT)
        .arg("sandbox-holder")
        .arg(dir)
        .arg(&bundle)
        .arg(launch.id)
        .arg(&host.runc)
        .arg(runtime::runc_root())
        .arg(runtime::uid_claim(launch.uid_base))
        .arg(launch.limits.memory_mib().to_string());
    if launch.net == Net::Pasta
        && let Some(pasta) = &host.pasta
    {
        cmd.args(pasta_command(launch, pasta));
    }
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let status = cmd.status().map_err(|e| {
        fail(
            format!("cannot start `{}`: {e}", host.setsid.display()),
            started,
        )
    })?;
    if !status.success() {
        return Err(fail(
            format!("`setsid --fork bash` failed: {status}"),
            started,
        ));
    }

    // The holder reports its pid and PID 1's; PID 1 reports `ready` (or the holder `failed`).
    let deadline = Instant::now() + START_DEADLINE;
    let status_path = run.join("status");
    loop {
        let text = fs::read_to_string(&status_path).unwrap_or_default();
        for line in text.lines() {
            let pid_after = |prefix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|p| p.trim().parse::<i32>().ok())
            };
            if let Some(pid) = pid_after("holder ")
                && started.holder.is_none()
            {
                started.holder = ProcRef::of(pid);
            }
            if let Some(pid) = pid_after("pid ")
                && started.supervisor.pid == 0
                && let Some(proc_ref) = ProcRef::of(pid)
            {
                started.supervisor = proc_ref;
            }
        }
        if let Some(reason) = text.lines().find_map(|l| l.strip_prefix("failed ")) {
            return Err(fail(format!("{reason}: {}", log_tail(dir)), started));
        }
        if started.supervisor.pid != 0 && text.lines().any(|l| l == "ready") {
            break;
        }
        let holder_gone = started.holder.is_some_and(|h| !h.is_alive());
        let init_gone = started.supervisor.pid != 0 && !started.supervisor.is_alive();
        if holder_gone || init_gone {
            return Err(fail(
                format!("the sandbox ended during setup: {}", log_tail(dir)),
                started,
            ));
        }
        if Instant::now() > deadline {
            return Err(fail(
                format!(
                    "the sandbox was not ready within {START_DEADLINE:?}: {}",
                    log_tail(dir)
                ),
                started,
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    if launch.net == Net::Pasta {
        started.pasta = Some(wait_pasta(dir).map_err(|reason| fail(reason, started))?);
    }
    if launch.kind == Kind::Service {
        let Some((_, health_port)) = launch.ports else {
            return Err(fail("a service needs host ports".into(), started));
        };
        wait_health(health_port).map_err(|reason| fail(reason, started))?;
    }
    Ok(started)
}

/// Waits for the pasta the holder started to write its pid.
fn wait_pasta(dir: &Path) -> std::result::Result<ProcRef, String> {
    let run = dir.join("run");
    let pid_file = run.join("pasta.pid");
    let deadline = Instant::now() + SERVE_DEADLINE;
    loop {
        if let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            && let Some(proc_ref) = ProcRef::of(pid)
        {
            return Ok(proc_ref);
        }
        if Instant::now() > deadline {
            let log = fs::read_to_string(run.join("pasta.log")).unwrap_or_default();
            return Err(format!(
                "pasta did not start within {SERVE_DEADLINE:?}: {}",
                last_lines(&log, 5)
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Removes the container runc made for sandbox `id` (its processes, cgroups and runc's record
/// of it); quiet when there is none.
pub(crate) fn delete_container(host_runc: Option<&Path>, id: &str) {
    let runc = host_runc
        .map(Path::to_path_buf)
        .or_else(|| find_program("runc"));
    let Some(runc) = runc else {
        return;
    };
    let _ = Command::new(runc)
        .arg("--root")
        .arg(runtime::runc_root())
        .args(["delete", "--force", id])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops a sandbox and removes what it holds outside its state folder: the holder first (so it
/// does not race), then the container (runc), pasta and PID 1, waiting until they are gone;
/// then the bundle and the uid range claim.
pub(crate) fn teardown(
    id: &str,
    holder: Option<ProcRef>,
    others: &[ProcRef],
    uid_base: Option<u32>,
) {
    if let Some(holder) = holder {
        holder.kill();
    }
    delete_container(None, id);
    let mut procs: Vec<ProcRef> = others.to_vec();
    procs.extend(holder);
    stop(&procs);
    runtime::remove_bundle(id);
    if let Some(base) = uid_base {
        runtime::release_uids(base, id);
    }
}

/// Waits until `GET /sandbox_health` on 127.0.0.1:`port` answers 200.
fn wait_health(port: u16) -> std::result::Result<(), String> {
    let deadline = Instant::now() + SERVE_DEADLINE;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if health_ok(addr) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the health server did not answer on 127.0.0.1:{port} within {SERVE_DEADLINE:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn health_ok(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /sandbox_health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.take(4096).read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200")
}

/// Stops every process of a sandbox and waits until they are gone.
pub(crate) fn stop(procs: &[ProcRef]) {
    for proc_ref in procs {
        proc_ref.kill();
    }
    let deadline = Instant::now() + STOP_DEADLINE;
    while procs.iter().any(ProcRef::is_alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes a sandbox's folder, making read-only folders writable first when needed.
pub(crate) fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(dir);
            match fs::remove_dir_all(dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error(&format!("removing {}", dir.display()), e)),
            }
        }
    }
}

fn make_writable(dir: &Path) {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            make_writable(&entry.path());
        }
    }
}

/// The last lines of a sandbox's run log, for error messages.
pub(crate) fn log_tail(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("run.log")).unwrap_or_default();
    let tail = last_lines(&text, 5);
    if tail.is_empty() {
        "run.log is empty".into()
    } else {
        format!("run.log ends with: {tail}")
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_handed_out_are_distinct_and_outside_the_ephemeral_range() {
        let (low, high) = quiet_port_range();
        let ports: Vec<u16> = (0..50).map(|_| free_port().expect("port")).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert!(ports.iter().all(|p| (low..high).contains(p)), "{ports:?}");
        for port in ports {
            TcpListener::bind(("127.0.0.1", port)).expect("still free");
        }
    }

    #[test]
    fn instance_names_look_like_app_platform_ones() {
        let name = instance_name("sandbox");
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert_eq!(parts[0], "sandbox");
        assert_eq!(parts[1].len(), 10);
        assert_eq!(parts[2].len(), 5);
        assert_ne!(instance_name("sandbox"), name);
    }

    fn template(component: appspec::ComponentType) -> AppSpec {
        appspec::SandboxTemplate::new(ImageKind::Node, component)
            .name("plan-test")
            .env("GREETING", "hi")
            .instance_size("apps-s-1vcpu-0.5gb")
            .build()
            .expect("template")
    }

    #[test]
    fn plan_reads_sandbox_specs() {
        let plan = plan(&template(appspec::ComponentType::Service)).expect("plan");
        assert_eq!(plan.kind, Kind::Service);
        assert_eq!(plan.runtime, Runtime::Node);
        assert_eq!(plan.component, "sandbox");
        assert_eq!(plan.instance_size, "apps-s-1vcpu-0.5gb");
        assert!(
            plan.spec_env
                .iter()
                .any(|(k, v)| k == "GREETING" && v == "hi")
        );
    }

    #[test]
    fn plan_refuses_two_components_and_other_images() {
        let mut spec = template(appspec::ComponentType::Worker);
        let mut second = spec.workers[0].clone();
        second.name = "other".into();
        spec.workers.push(second);
        let err = plan(&spec).expect_err("two components");
        assert!(err.to_string().contains("exactly one"), "{err}");

        let mut spec = template(appspec::ComponentType::Worker);
        spec.envs.retain(|e| e.key != appspec::MARKER_ENV);
        if let Some(image) = spec.workers[0].image.as_mut() {
            image.repository = "postgres".into();
        }
        let err = plan(&spec).expect_err("other image");
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    }

    #[test]
    fn every_sandbox_gets_its_own_network_unless_the_host_one_is_asked_for() {
        let host = Host {
            runc: PathBuf::new(),
            setsid: PathBuf::new(),
            bash: PathBuf::new(),
            pasta: None,
            cpus: vec![0, 1],
        };
        assert_eq!(
            choose_network(Kind::Worker, NetworkMode::Auto, &host),
            Ok(Net::Loopback)
        );
        let err = choose_network(Kind::Service, NetworkMode::Auto, &host).expect_err("service");
        assert!(
            err.contains("passt") && err.contains("NetworkMode::Host"),
            "{err}"
        );
        assert!(choose_network(Kind::Worker, NetworkMode::Pasta, &host).is_err());
        assert_eq!(
            choose_network(Kind::Service, NetworkMode::Host, &host),
            Ok(Net::Host)
        );
        let with_pasta = Host {
            pasta: Some(PathBuf::from("/usr/bin/pasta")),
            ..host
        };
        for kind in [Kind::Worker, Kind::Service] {
            assert_eq!(
                choose_network(kind, NetworkMode::Auto, &with_pasta),
                Ok(Net::Pasta)
            );
        }
        assert_eq!(
            choose_network(Kind::Worker, NetworkMode::Loopback, &with_pasta),
            Ok(Net::Loopback)
        );
        assert!(choose_network(Kind::Service, NetworkMode::Loopback, &with_pasta).is_err());
    }

    #[test]
    fn sandboxes_are_pinned_to_as_many_cpus_as_their_size_has() {
        assert_eq!(pinned_cpus(&[0, 1], 1, 0).as_deref(), Some("0"));
        assert_eq!(pinned_cpus(&[0, 1], 1, 3).as_deref(), Some("1"));
        assert_eq!(pinned_cpus(&[0, 1, 2, 3], 2, 3).as_deref(), Some("0,3"));
        assert_eq!(pinned_cpus(&[0, 1], 2, 0), None);
        assert_eq!(pinned_cpus(&[], 1, 0), None);
    }

    #[test]
    fn missing_cgroup_controllers_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("cgroup.controllers"), "cpuset cpu io\n").expect("write");
        let err = check_cgroups(dir.path()).expect_err("v2 without memory");
        assert!(
            err.contains("memory, pids") && err.contains("cgroup v2"),
            "{err}"
        );
        fs::write(dir.path().join("cgroup.controllers"), "cpu memory pids\n").expect("write");
        check_cgroups(dir.path()).expect("v2 complete");
        let v1 = tempfile::tempdir().expect("tempdir");
        fs::create_dir(v1.path().join("memory")).expect("mkdir");
        let err = check_cgroups(v1.path()).expect_err("v1 without pids");
        assert!(
            err.contains("pids, cpu") && err.contains("cgroup v1"),
            "{err}"
        );
    }

    #[test]
    fn pasta_keeps_the_host_loopback_out_of_reach() {
        let dir = Path::new("/state/x");
        let launch = Launch {
            id: "x",
            dir,
            hostname: "h",
            runtime: Runtime::Python,
            kind: Kind::Service,
            net: Net::Pasta,
            run_command: "",
            env: &[],
            ports: Some((20001, 20002)),
            limits: Limits::of_slug(""),
            uid_base: 0,
        };
        let cmd = pasta_command(&launch, Path::new("/usr/bin/pasta"));
        assert!(cmd.contains(&"--no-map-gw".to_owned()), "{cmd:?}");
        assert!(cmd.contains(&"127.0.0.1/20001:8080".to_owned()), "{cmd:?}");
        assert!(cmd.contains(&"127.0.0.1/20002:9090".to_owned()), "{cmd:?}");
        let worker = Launch {
            kind: Kind::Worker,
            ports: None,
            ..launch
        };
        let cmd = pasta_command(&worker, Path::new("/usr/bin/pasta"));
        assert!(!cmd.iter().any(|a| a.contains(":8080")), "{cmd:?}");
    }

    #[test]
    fn last_lines_skips_blank_lines() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
    }
}
