//! Starting and stopping a sandbox: host checks, the state folder of one sandbox, the detached
//! supervisor (`unshare` holding PID 1, which runs `assets/init.sh`), and pasta.

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
use crate::state::{Kind, Net, ProcRef, Runtime, io_error, write_atomic};

/// The uid and gid of user `sandbox` inside every sandbox.
pub(crate) const SANDBOX_UID: u32 = 1000;
/// The app port of a service, inside its network namespace.
pub(crate) const APP_PORT: u16 = 8080;
/// The health server's port, inside its network namespace.
pub(crate) const HEALTH_PORT: u16 = 9090;

const INIT_SCRIPT: &str = include_str!("assets/init.sh");
const HEALTH_SERVER: &str = include_str!("assets/health.py");
/// How long the supervisor may take to build the sandbox.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long pasta and the health server may take to answer.
const SERVE_DEADLINE: Duration = Duration::from_secs(15);
/// How long a killed sandbox may take to disappear.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The host programs a sandbox needs, by absolute path.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub unshare: PathBuf,
    pub nsenter: PathBuf,
    pub setsid: PathBuf,
    pub bash: PathBuf,
    pub pasta: Option<PathBuf>,
    /// Whether the creator is root (no user namespace needed).
    pub root: bool,
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
    /// Checks this machine once: util-linux tools, namespaces, and for non-root users
    /// unprivileged user namespaces. The error says what is missing.
    pub fn probe() -> Result<Host> {
        let unsupported = |reason: String| Error::Unsupported {
            what: "local sandboxes".into(),
            reason,
        };
        let mut missing = Vec::new();
        let mut need = |name: &str| {
            let found = find_program(name);
            if found.is_none() {
                missing.push(name.to_owned());
            }
            found.unwrap_or_default()
        };
        let unshare = need("unshare");
        let nsenter = need("nsenter");
        let setsid = need("setsid");
        let bash = need("bash");
        for tool in [
            "setpriv",
            "mount",
            "umount",
            "pivot_root",
            "mkfifo",
            "hostname",
        ] {
            need(tool);
        }
        if !missing.is_empty() {
            return Err(unsupported(format!(
                "these programs are missing: {} (Debian/Ubuntu: `apt-get install util-linux \
                 mount bash coreutils`)",
                missing.join(", ")
            )));
        }
        for ns in ["mnt", "pid", "uts", "ipc", "net"] {
            if !Path::new("/proc/self/ns").join(ns).exists() {
                return Err(unsupported(format!(
                    "the kernel has no {ns} namespaces (/proc/self/ns/{ns} is missing)"
                )));
            }
        }
        let root = rustix::process::geteuid().is_root();
        if !root {
            check_user_namespaces().map_err(unsupported)?;
        }
        try_namespaces(&unshare, root).map_err(unsupported)?;
        Ok(Host {
            unshare,
            nsenter,
            setsid,
            bash,
            pasta: find_program("pasta").filter(|_| pasta_can_open_tun(root)),
            root,
        })
    }
}

/// Creates the namespaces a sandbox needs once, running `true` in them: containers without
/// the privilege to do so fail here with the kernel's reason.
fn try_namespaces(unshare: &Path, root: bool) -> std::result::Result<(), String> {
    let mut cmd = Command::new(unshare);
    if !root {
        cmd.arg("--user")
            .arg(format!("--map-user={SANDBOX_UID}"))
            .arg(format!("--map-group={SANDBOX_UID}"))
            .arg("--keep-caps");
    }
    cmd.args([
        "--mount",
        "--uts",
        "--ipc",
        "--pid",
        "--net",
        "--fork",
        "--propagation=private",
    ])
    .args(["--", "true"])
    .env_clear()
    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", unshare.display()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "this machine does not let {} create mount, PID, UTS, IPC and network namespaces \
         (`unshare` said: {}); inside a container, give it CAP_SYS_ADMIN or run it privileged",
        if root { "root" } else { "this user" },
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// pasta needs read-write access to /dev/net/tun; some machines keep it root-only.
fn pasta_can_open_tun(root: bool) -> bool {
    use rustix::fs::Access;
    root || rustix::fs::access("/dev/net/tun", Access::READ_OK | Access::WRITE_OK).is_ok()
}

/// For a non-root creator: the kernel must allow unprivileged user namespaces.
fn check_user_namespaces() -> std::result::Result<(), String> {
    let read = |path: &str| fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
    if !Path::new("/proc/self/ns/user").exists() {
        return Err(
            "the kernel has no user namespaces (/proc/self/ns/user is missing); run as \
                    root or use a kernel built with CONFIG_USER_NS"
                .into(),
        );
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Err(
            "user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0); \
                    run as root or `sysctl -w user.max_user_namespaces=15000`"
                .into(),
        );
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Err("unprivileged user namespaces are disabled \
                    (/proc/sys/kernel/unprivileged_userns_clone is 0); run as root or \
                    `sysctl -w kernel.unprivileged_userns_clone=1`"
            .into());
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Err("AppArmor restricts unprivileged user namespaces \
                    (/proc/sys/kernel/apparmor_restrict_unprivileged_userns is 1); run as root \
                    or `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
            .into());
    }
    Ok(())
}

/// What a spec asks a local sandbox to run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub component: String,
    pub kind: Kind,
    pub runtime: Runtime,
    pub run_command: String,
    pub spec_env: Vec<(String, String)>,
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
    let (kind, run_command) = match component {
        ComponentRef::Service(s) => (Kind::Service, s.run_command.clone()),
        ComponentRef::Worker(w) => (Kind::Worker, w.run_command.clone()),
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
    })
}

/// Where the runtime's interpreter lives under the host's /usr (what the sandbox sees).
pub(crate) fn runtime_present(runtime: Runtime) -> std::result::Result<(), String> {
    let dirs = ["/usr/local/bin", "/usr/bin"];
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

/// Which network a new sandbox gets.
pub(crate) fn choose_network(
    kind: Kind,
    mode: NetworkMode,
    host: &Host,
) -> std::result::Result<Net, String> {
    if kind == Kind::Worker {
        return Ok(Net::Host);
    }
    match mode {
        NetworkMode::Host => Ok(Net::Host),
        NetworkMode::Pasta if host.pasta.is_none() => Err(
            "network mode `pasta` needs the `pasta` program (Debian: `apt-get install passt`) \
             and, for non-root users, read-write access to /dev/net/tun"
                .into(),
        ),
        NetworkMode::Pasta => Ok(Net::Pasta),
        _ => Ok(if host.pasta.is_some() {
            Net::Pasta
        } else {
            Net::Host
        }),
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

/// Everything the supervisor needs to start one sandbox.
#[derive(Debug, Clone)]
pub(crate) struct Launch<'a> {
    pub dir: &'a Path,
    pub hostname: &'a str,
    pub runtime: Runtime,
    pub kind: Kind,
    pub net: Net,
    pub run_command: &'a str,
    pub env: &'a [(String, String)],
    /// Host ports for the app and the health server (services).
    pub ports: Option<(u16, u16)>,
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

/// Writes the sandbox's folder: home, tmp, the root mount point, `run/` with the init script,
/// the health server, passwd, group, hosts, hostname and the environment.
pub(crate) fn prepare_dir(launch: &Launch<'_>, host: &Host) -> Result<()> {
    let dir = launch.dir;
    let mkdir = |path: PathBuf, mode: u32| -> Result<()> {
        fs::create_dir_all(&path)
            .map_err(|e| io_error(&format!("creating {}", path.display()), e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(&format!("setting the mode of {}", path.display()), e))
    };
    mkdir(dir.join("home").join("app"), 0o755)?;
    mkdir(dir.join("home"), 0o755)?;
    mkdir(dir.join("tmp"), 0o1777)?;
    build_root(&dir.join("root"))?;
    mkdir(dir.join("run"), 0o700)?;
    if host.root {
        for path in [dir.join("home"), dir.join("home").join("app")] {
            rustix::fs::chown(
                &path,
                Some(rustix::fs::Uid::from_raw(SANDBOX_UID)),
                Some(rustix::fs::Gid::from_raw(SANDBOX_UID)),
            )
            .map_err(|e| {
                io_error(
                    &format!("giving {} to the sandbox user", path.display()),
                    e.into(),
                )
            })?;
        }
    }
    let run = dir.join("run");
    let write = |name: &str, data: &[u8]| write_atomic(&run.join(name), data);
    write("init.sh", INIT_SCRIPT.as_bytes())?;
    write("health.py", HEALTH_SERVER.as_bytes())?;
    write(
        "passwd",
        format!(
            "root:x:0:0:root:/root:/bin/bash\n\
             sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:/home/sandbox:/bin/bash\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        .as_bytes(),
    )?;
    write(
        "group",
        format!("root:x:0:\ntty:x:5:\nsandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n").as_bytes(),
    )?;
    write("hostname", format!("{}\n", launch.hostname).as_bytes())?;
    write(
        "hosts",
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
            launch.hostname
        )
        .as_bytes(),
    )?;
    write("resolv.conf", resolv_conf(launch.net).as_bytes())?;
    for fifo in ["alive", "init.fifo"] {
        let path = run.join(fifo);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(|e| io_error(&format!("creating the FIFO {}", path.display()), e.into()))?;
    }
    let mut env = Vec::new();
    for (key, value) in launch.env {
        env.extend_from_slice(key.as_bytes());
        env.push(b'=');
        env.extend_from_slice(value.as_bytes());
        env.push(0);
    }
    write("env", &env)?;
    Ok(())
}

/// The skeleton of a sandbox's root: mount points, the host's top-level links (`bin` ->
/// `usr/bin` on merged-/usr systems), `/app`, and `/dev`'s device mount points and links.
/// PID 1 binds it onto itself, mounts into it, and makes it read-only.
fn build_root(root: &Path) -> Result<()> {
    let err = |path: &Path, e: std::io::Error| io_error(&format!("creating {}", path.display()), e);
    for sub in [
        "usr",
        "etc",
        "proc",
        "sys",
        "dev/pts",
        "dev/shm",
        "tmp",
        "home/sandbox",
        "run",
        "var/tmp",
        ".old-root",
    ] {
        let path = root.join(sub);
        fs::create_dir_all(&path).map_err(|e| err(&path, e))?;
    }
    let link = |target: &str, at: &str| -> Result<()> {
        let path = root.join(at);
        std::os::unix::fs::symlink(target, &path).map_err(|e| err(&path, e))
    };
    for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(top);
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&host).map_err(|e| err(&host, e))?;
                let path = root.join(top);
                std::os::unix::fs::symlink(target, &path).map_err(|e| err(&path, e))?;
            }
            Ok(meta) if meta.is_dir() => {
                let path = root.join(top);
                fs::create_dir(&path).map_err(|e| err(&path, e))?;
            }
            _ => {}
        }
    }
    link("/home/sandbox/app", "app")?;
    for device in ["null", "zero", "full", "random", "urandom", "tty"] {
        let path = root.join("dev").join(device);
        fs::write(&path, b"").map_err(|e| err(&path, e))?;
    }
    link("pts/ptmx", "dev/ptmx")?;
    link("/proc/self/fd", "dev/fd")?;
    link("/proc/self/fd/0", "dev/stdin")?;
    link("/proc/self/fd/1", "dev/stdout")?;
    link("/proc/self/fd/2", "dev/stderr")?;
    for (sub, mode) in [("", 0o755), ("tmp", 0o1777), ("var/tmp", 0o1777)] {
        let path = root.join(sub);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| err(&path, e))?;
    }
    Ok(())
}

/// Where the sandbox's resolv.conf is mounted: where the host's `/etc/resolv.conf` leads
/// (a link into `/run` on systemd-resolved machines), when that is a place the sandbox has.
pub(crate) fn resolv_target() -> Option<PathBuf> {
    let mut path = PathBuf::from("/etc/resolv.conf");
    for _ in 0..8 {
        match fs::read_link(&path) {
            Ok(target) => {
                let joined = path.parent().unwrap_or(Path::new("/")).join(target);
                path = normalize(&joined);
            }
            Err(_) => break,
        }
    }
    let inside = ["/etc/", "/run/", "/var/tmp/"];
    inside.iter().any(|p| path.starts_with(p)).then_some(path)
}

/// Removes `.` and `..` from an absolute path without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(name) => out.push(name),
            _ => {}
        }
    }
    out
}

/// The address a sandbox with its own network sends DNS queries to; pasta forwards them to
/// the host's resolver (which may listen on the host's loopback, out of the sandbox's reach).
pub(crate) const DNS_FORWARD: &str = "169.254.0.53";

/// The sandbox's resolv.conf: the host's, with the name servers replaced by
/// [`DNS_FORWARD`] when the sandbox has its own network.
fn resolv_conf(net: Net) -> String {
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    match net {
        Net::Host => host,
        Net::Pasta => {
            let mut out = format!("nameserver {DNS_FORWARD}\n");
            for line in host.lines() {
                if !line.trim_start().starts_with("nameserver") {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            out
        }
    }
}

/// Starts the supervisor detached from the caller (new session, reparented to init), waits for
/// the sandbox to be built, then connects its network and waits for its health server.
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

    let mut cmd = Command::new(&host.setsid);
    cmd.arg("--fork").arg(&host.unshare);
    cmd.args([
        "--mount",
        "--uts",
        "--ipc",
        "--pid",
        "--fork",
        "--kill-child=SIGKILL",
    ]);
    cmd.arg("--propagation=private");
    if launch.net == Net::Pasta {
        cmd.arg("--net");
    }
    if !host.root {
        cmd.arg("--user")
            .arg(format!("--map-user={SANDBOX_UID}"))
            .arg(format!("--map-group={SANDBOX_UID}"))
            .arg("--keep-caps");
    }
    cmd.arg("--").arg(&host.bash).arg(run.join("init.sh"));
    let (health_host, health_port) = match (launch.kind, launch.net, launch.ports) {
        (Kind::Service, Net::Pasta, _) => ("0.0.0.0".to_owned(), HEALTH_PORT.to_string()),
        (Kind::Service, Net::Host, Some((_, health))) => {
            ("127.0.0.1".to_owned(), health.to_string())
        }
        _ => (String::new(), String::new()),
    };
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .env("SBX_STATE", dir)
        .env("SBX_HOSTNAME", launch.hostname)
        .env("SBX_USERNS", if host.root { "0" } else { "1" })
        .env("SBX_UID", SANDBOX_UID.to_string())
        .env("SBX_GID", SANDBOX_UID.to_string())
        .env("SBX_RUNTIME", launch.runtime.as_str())
        .env("SBX_HEALTH_HOST", health_host)
        .env("SBX_HEALTH_PORT", health_port)
        .env("SBX_RUN_COMMAND", launch.run_command)
        .env("SBX_RESOLV", resolv_target().unwrap_or_default())
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
            format!("`setsid --fork unshare` failed: {status}"),
            started,
        ));
    }

    // PID 1 reports its host pid, then `ready` or `failed <why>`.
    let deadline = Instant::now() + START_DEADLINE;
    let status_path = run.join("status");
    loop {
        let text = fs::read_to_string(&status_path).unwrap_or_default();
        for line in text.lines() {
            if let Some(pid) = line
                .strip_prefix("pid ")
                .and_then(|p| p.trim().parse().ok())
                && started.supervisor.pid == 0
                && let Some(proc_ref) = ProcRef::of(pid)
            {
                started.supervisor = proc_ref;
                started.holder = parent_of(pid).and_then(ProcRef::of);
            }
        }
        if let Some(reason) = text.lines().find_map(|l| l.strip_prefix("failed ")) {
            return Err(fail(reason.to_owned(), started));
        }
        if text.lines().any(|l| l == "ready") {
            break;
        }
        if started.supervisor.pid != 0 && !started.supervisor.is_alive() {
            return Err(fail(
                format!("the sandbox's init exited during setup: {}", log_tail(dir)),
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
        std::thread::sleep(Duration::from_millis(5));
    }

    if launch.kind == Kind::Service {
        let Some((app_port, health_port)) = launch.ports else {
            return Err(fail("a service needs host ports".into(), started));
        };
        if launch.net == Net::Pasta {
            started.pasta = Some(
                start_pasta(launch, host, started.supervisor.pid, app_port, health_port)
                    .map_err(|reason| fail(reason, started))?,
            );
        }
        wait_health(health_port).map_err(|reason| fail(reason, started))?;
    }
    Ok(started)
}

fn parent_of(pid: i32) -> Option<i32> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn start_pasta(
    launch: &Launch<'_>,
    host: &Host,
    pid: i32,
    app_port: u16,
    health_port: u16,
) -> std::result::Result<ProcRef, String> {
    let Some(pasta) = &host.pasta else {
        return Err("pasta is not installed".into());
    };
    let run = launch.dir.join("run");
    let pid_file = run.join("pasta.pid");
    // pasta outlives the namespace it serves; a keeper shell holds the sandbox's `alive` FIFO
    // and ends pasta when the sandbox is gone (end-of-file: PID 1 held the writing side).
    let mut cmd = Command::new(&host.setsid);
    cmd.arg("--fork")
        .arg(&host.bash)
        .arg("-c")
        .arg(r#"exec 3<"$1"; shift; "$@" & read -r -u 3 _; kill "$!" 2>/dev/null"#)
        .arg("pasta-keeper")
        .arg(run.join("alive"));
    cmd.arg(pasta)
        .args(["--quiet", "--foreground", "--config-net"]);
    if host.root {
        // As root, pasta drops to `nobody` unless told otherwise; it needs to open
        // /proc/<pid>/ns/net of a root process.
        cmd.args(["--runas", "0:0"]);
    }
    cmd.arg("--tcp-ports")
        .arg(format!("127.0.0.1/{app_port}:{APP_PORT}"))
        .arg("--tcp-ports")
        .arg(format!("127.0.0.1/{health_port}:{HEALTH_PORT}"))
        .args([
            "--tcp-ns",
            "none",
            "--udp-ports",
            "none",
            "--udp-ns",
            "none",
            "--dns-forward",
            DNS_FORWARD,
        ])
        .arg("--log-file")
        .arg(run.join("pasta.log"))
        .arg("--pid")
        .arg(&pid_file);
    if host.root {
        cmd.arg("--netns").arg(format!("/proc/{pid}/ns/net"));
    } else {
        cmd.arg(pid.to_string());
    }
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start pasta: {e}"))?;
    if !status.success() {
        return Err(format!("`setsid --fork pasta` failed: {status}"));
    }
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
        std::thread::sleep(Duration::from_millis(5));
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
            .build()
            .expect("template")
    }

    #[test]
    fn plan_reads_sandbox_specs() {
        let plan = plan(&template(appspec::ComponentType::Service)).expect("plan");
        assert_eq!(plan.kind, Kind::Service);
        assert_eq!(plan.runtime, Runtime::Node);
        assert_eq!(plan.component, "sandbox");
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
    fn workers_share_the_host_network_and_services_follow_the_mode() {
        let host = Host {
            unshare: PathBuf::new(),
            nsenter: PathBuf::new(),
            setsid: PathBuf::new(),
            bash: PathBuf::new(),
            pasta: None,
            root: true,
        };
        assert_eq!(
            choose_network(Kind::Worker, NetworkMode::Pasta, &host),
            Ok(Net::Host)
        );
        assert_eq!(
            choose_network(Kind::Service, NetworkMode::Auto, &host),
            Ok(Net::Host)
        );
        assert!(choose_network(Kind::Service, NetworkMode::Pasta, &host).is_err());
        let with_pasta = Host {
            pasta: Some(PathBuf::from("/usr/bin/pasta")),
            ..host
        };
        assert_eq!(
            choose_network(Kind::Service, NetworkMode::Auto, &with_pasta),
            Ok(Net::Pasta)
        );
        assert_eq!(
            choose_network(Kind::Service, NetworkMode::Host, &with_pasta),
            Ok(Net::Host)
        );
    }

    #[test]
    fn a_failing_namespace_probe_says_what_is_missing() {
        let err = try_namespaces(Path::new("/bin/false"), true).expect_err("false fails");
        assert!(
            err.contains("namespaces") && err.contains("CAP_SYS_ADMIN"),
            "{err}"
        );
        let err = try_namespaces(Path::new("/nonexistent/unshare"), false).expect_err("missing");
        assert!(err.contains("/nonexistent/unshare"), "{err}");
    }

    #[test]
    fn last_lines_skips_blank_lines() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
    }
}
