//! The container runtime: the OCI runtime spec of a sandbox (built with `oci-spec`, run by
//! `runc`), its bundle (root skeleton, private `/etc`, `config.json`), the uid/gid range each
//! sandbox maps its users to, and the seccomp profile.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use doctl_driver::Result;
use oci_spec::runtime::{
    Arch, Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, LinuxSeccomp, LinuxSeccompAction,
    LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscallBuilder, Mount,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::limits::{CPU_PERIOD_US, Limits};
use crate::state::{Net, io_error, write_atomic};

/// Where the runtime's machine-wide state lives: runc's state (`runc/`), the sandboxes'
/// bundles (`bundles/<id>/`) and the uid range claims (`uids/<slot>`). Outside every state
/// folder, because runc's init, already running as the sandbox's root (a host uid of its
/// range), must be able to walk the bundle's path.
pub(crate) const RUN_DIR: &str = "/run/do-app-sandbox";
/// The uid (and gid) of user `sandbox` inside every sandbox.
pub(crate) const SANDBOX_UID: u32 = 1000;
/// How many uids (and gids) each sandbox maps: 0 to 65535 inside.
pub(crate) const UID_RANGE: u32 = 65_536;
/// The first host uid handed to sandboxes: far above the uids of people and system
/// services (and of the subordinate ranges `useradd` hands out from 100000).
const FIRST_HOST_UID: u32 = 0x1000_0000;
/// How many ranges there are: sandboxes that can run at once on this machine.
const UID_SLOTS: u32 = 16_384;

/// runc's `--root`: its record of the running containers.
pub(crate) fn runc_root() -> PathBuf {
    Path::new(RUN_DIR).join("runc")
}

/// The bundle of a sandbox: `config.json`, `root/` and `etc/`.
pub(crate) fn bundle_dir(id: &str) -> PathBuf {
    Path::new(RUN_DIR).join("bundles").join(id)
}

fn uid_slots_dir() -> PathBuf {
    Path::new(RUN_DIR).join("uids")
}

/// The cgroup a sandbox's processes run in, relative to the creator's own cgroup in each
/// hierarchy (runc resolves a relative `cgroupsPath` that way): nested under whatever limits
/// the creator already has.
pub(crate) fn cgroup_name(id: &str) -> String {
    format!("do-app-sandbox-{id}")
}

/// Creates the runtime's folders (mode 0711: walkable, not listable).
pub(crate) fn ensure_run_dir() -> Result<()> {
    for dir in [
        PathBuf::from(RUN_DIR),
        runc_root(),
        Path::new(RUN_DIR).join("bundles"),
        uid_slots_dir(),
    ] {
        fs::create_dir_all(&dir)
            .map_err(|e| io_error(&format!("creating {}", dir.display()), e))?;
        let mode = if dir == runc_root() || dir == uid_slots_dir() {
            0o700
        } else {
            0o711
        };
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(&format!("setting the mode of {}", dir.display()), e))?;
    }
    Ok(())
}

/// Claims a free uid range for sandbox `id` (whose bundle folder must already exist: a claim
/// whose bundle is gone is stale and taken over). Returns the first host uid of the range.
pub(crate) fn claim_uids(id: &str) -> Result<u32> {
    let dir = uid_slots_dir();
    let start = uuid::Uuid::new_v4().as_u128() as u32 % UID_SLOTS;
    for i in 0..UID_SLOTS {
        let slot = (start + i) % UID_SLOTS;
        let path = dir.join(slot.to_string());
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(id.as_bytes())
                        .map_err(|e| io_error(&format!("writing {}", path.display()), e))?;
                    return Ok(FIRST_HOST_UID + slot * UID_RANGE);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path).unwrap_or_default();
                    let owner = owner.trim();
                    if crate::state::is_valid_id(owner) && !bundle_dir(owner).exists() {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    break;
                }
                Err(e) => return Err(io_error(&format!("creating {}", path.display()), e)),
            }
        }
    }
    Err(doctl_driver::Error::other(format!(
        "all {UID_SLOTS} uid ranges for local sandboxes are in use (claims in {})",
        dir.display()
    )))
}

/// The claim file of the uid range starting at `base`.
pub(crate) fn uid_claim(base: u32) -> PathBuf {
    let slot = base.saturating_sub(FIRST_HOST_UID) / UID_RANGE;
    uid_slots_dir().join(slot.to_string())
}

/// Which of the machine's ranges `base` starts (0, 1, ...).
pub(crate) fn uid_slot(base: u32) -> u32 {
    base.saturating_sub(FIRST_HOST_UID) / UID_RANGE
}

/// Releases the uid range starting at `base`, when sandbox `id` holds it.
pub(crate) fn release_uids(base: u32, id: &str) {
    let path = uid_claim(base);
    if fs::read_to_string(&path).is_ok_and(|owner| owner.trim() == id) {
        let _ = fs::remove_file(&path);
    }
}

/// What a sandbox's container is made of.
#[derive(Debug, Clone)]
pub(crate) struct Container<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    pub uid_base: u32,
    pub limits: Limits,
    pub net: Net,
    /// The environment PID 1 (and every process started later) begins with.
    pub env: &'a [(String, String)],
    /// PID 1's command line.
    pub args: Vec<String>,
    /// The CPUs the sandbox may run on (`cpuset`), e.g. `"1"` or `"0-1"`.
    pub cpus: Option<String>,
}

/// Writes a sandbox's bundle: the root's skeleton, its private `/etc` (generated files plus
/// copies of what the host's programs need) and `config.json`.
pub(crate) fn write_bundle(container: &Container<'_>) -> Result<PathBuf> {
    let bundle = bundle_dir(container.id);
    build_root(&bundle.join("root"))?;
    build_etc(&bundle.join("etc"), container)?;
    let spec = spec(container, &bundle)?;
    let text = serde_json::to_vec_pretty(&spec)
        .map_err(|e| doctl_driver::Error::other_with("serialising the runtime spec", e))?;
    write_atomic(&bundle.join("config.json"), &text)?;
    // runc's init walks the bundle as the sandbox's root (the first uid of its range).
    let owner = rustix::fs::Uid::from_raw(container.uid_base);
    let group = rustix::fs::Gid::from_raw(container.uid_base);
    rustix::fs::chown(&bundle, Some(owner), Some(group)).map_err(|e| {
        io_error(
            &format!("giving {} to the sandbox's root", bundle.display()),
            e.into(),
        )
    })?;
    Ok(bundle)
}

/// Creates the (empty) bundle folder, mode 0700: claims its uid range next.
pub(crate) fn create_bundle_dir(id: &str) -> Result<PathBuf> {
    let bundle = bundle_dir(id);
    fs::create_dir(&bundle).map_err(|e| io_error(&format!("creating {}", bundle.display()), e))?;
    fs::set_permissions(&bundle, fs::Permissions::from_mode(0o700))
        .map_err(|e| io_error(&format!("setting the mode of {}", bundle.display()), e))?;
    Ok(bundle)
}

/// Removes a sandbox's bundle.
pub(crate) fn remove_bundle(id: &str) {
    let _ = fs::remove_dir_all(bundle_dir(id));
}

/// The skeleton of a sandbox's root: mount points, the host's top-level links (`bin` ->
/// `usr/bin` on merged-/usr systems) and `/app`. runc mounts into it and makes it read-only.
fn build_root(root: &Path) -> Result<()> {
    let err = |path: &Path, e: std::io::Error| io_error(&format!("creating {}", path.display()), e);
    for sub in [
        "usr",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "home/sandbox",
        "run",
        "var/tmp",
        "root",
    ] {
        let path = root.join(sub);
        fs::create_dir_all(&path).map_err(|e| err(&path, e))?;
    }
    for top in HOST_TOP_DIRS {
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
    let app = root.join("app");
    std::os::unix::fs::symlink("/home/sandbox/app", &app).map_err(|e| err(&app, e))?;
    for (sub, mode) in [
        ("", 0o755),
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
        ("root", 0o700),
    ] {
        let path = root.join(sub);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| err(&path, e))?;
    }
    Ok(())
}

/// Top-level folders of the host that hold programs and libraries: links into `/usr` on
/// merged-/usr systems (copied as links), else read-only binds.
const HOST_TOP_DIRS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// What a sandbox's `/etc` copies from the host's: what the dynamic loader, name lookups, TLS
/// clients, time zones, shells and Debian's alternatives need. Copied at create time, so
/// later changes to the host's `/etc` never show inside.
const ETC_COPIES: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "localtime",
    "timezone",
    "protocols",
    "services",
    "networks",
    "ethertypes",
    "rpc",
    "mime.types",
    "mailcap",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
    "bash.bashrc",
    "profile",
    "profile.d",
    "inputrc",
    "environment",
    "shells",
    "login.defs",
    "os-release",
    "debian_version",
    "issue",
    "locale.alias",
    "magic",
    "magic.mime",
    "python3",
    "python3.11",
    "python3.12",
    "python3.13",
    "nodejs",
    "terminfo",
    "skel",
];

fn build_etc(etc: &Path, container: &Container<'_>) -> Result<()> {
    fs::create_dir_all(etc).map_err(|e| io_error(&format!("creating {}", etc.display()), e))?;
    for name in ETC_COPIES {
        copy_tree(&Path::new("/etc").join(name), &etc.join(name), 0)?;
    }
    let write = |name: &str, data: String| write_atomic(&etc.join(name), data.as_bytes());
    write(
        "passwd",
        format!(
            "root:x:0:0:root:/root:/bin/bash\n\
             sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:/home/sandbox:/bin/bash\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
    )?;
    write(
        "group",
        format!("root:x:0:\ntty:x:5:\nsandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n"),
    )?;
    write("hostname", format!("{}\n", container.hostname))?;
    write(
        "hosts",
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
            container.hostname
        ),
    )?;
    write("resolv.conf", resolv_conf(container.net))?;
    Ok(())
}

/// Copies a file, a link (as a link) or a folder (recursively, at most 4 levels) from the
/// host; anything else, or a missing path, is skipped.
fn copy_tree(from: &Path, to: &Path, depth: u32) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(from) else {
        return Ok(());
    };
    let err = |e: std::io::Error| io_error(&format!("copying {}", from.display()), e);
    if meta.file_type().is_symlink() {
        let target = fs::read_link(from).map_err(err)?;
        std::os::unix::fs::symlink(target, to).map_err(err)?;
    } else if meta.is_file() {
        fs::copy(from, to).map_err(err)?;
    } else if meta.is_dir() && depth < 4 {
        fs::create_dir(to).map_err(err)?;
        fs::set_permissions(
            to,
            fs::Permissions::from_mode(meta.permissions().mode() & 0o7777),
        )
        .map_err(err)?;
        for entry in fs::read_dir(from).map_err(err)?.flatten() {
            copy_tree(&entry.path(), &to.join(entry.file_name()), depth + 1)?;
        }
    }
    Ok(())
}

/// The address a sandbox with pasta sends DNS queries to; pasta forwards them to the host's
/// resolver (which may listen on the host's loopback, out of the sandbox's reach).
pub(crate) const DNS_FORWARD: &str = "169.254.0.53";

/// The sandbox's resolv.conf: the host's search and options lines, with the name servers
/// replaced by [`DNS_FORWARD`] when pasta connects the sandbox; the host's file on the host
/// network; no name server at all on loopback only.
fn resolv_conf(net: Net) -> String {
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let others = host
        .lines()
        .filter(|line| !line.trim_start().starts_with("nameserver"))
        .fold(String::new(), |mut out, line| {
            out.push_str(line);
            out.push('\n');
            out
        });
    match net {
        Net::Host => host,
        Net::Pasta => format!("nameserver {DNS_FORWARD}\n{others}"),
        Net::Loopback => others,
    }
}

fn oci(e: oci_spec::OciSpecError) -> doctl_driver::Error {
    doctl_driver::Error::other(format!("building the runtime spec: {e}"))
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(oci)
}

/// Read-only, recursively (`rro`: submounts too), without set-uid programs or devices.
const RO_BIND: &[&str] = &["rbind", "ro", "rro", "nosuid", "rnosuid", "nodev", "rnodev"];

/// Paths of `/proc` hidden from the sandbox (Docker's masked paths, plus the kernel's command
/// line and configuration).
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/cmdline",
    "/proc/config.gz",
    "/proc/kallsyms",
    "/proc/modules",
    "/proc/sysrq-trigger",
];

/// Paths mounted read-only inside.
const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/sys"];

/// The OCI runtime spec of a sandbox.
pub(crate) fn spec(container: &Container<'_>, bundle: &Path) -> Result<Spec> {
    let limits = container.limits;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        // A /sys of the sandbox's own: an empty tmpfs holding its cgroups only.
        mount(
            "/sys",
            "tmpfs",
            "sandbox-sys",
            &["nosuid", "noexec", "nodev", "mode=755", "size=64k"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
        mount("/usr", "bind", "/usr", RO_BIND)?,
        // The host's /usr/local (its own tools and their configuration) is not the image's.
        mount(
            "/usr/local",
            "tmpfs",
            "sandbox-usr-local",
            &["ro", "nosuid", "nodev", "noexec", "mode=755", "size=4k"],
        )?,
    ];
    for top in HOST_TOP_DIRS {
        let host = Path::new("/").join(top);
        if fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
            let path = format!("/{top}");
            mounts.push(mount(&path, "bind", &path, RO_BIND)?);
        }
    }
    let etc = bundle.join("etc");
    mounts.push(mount("/etc", "bind", &etc.to_string_lossy(), RO_BIND)?);
    mounts.push(mount(
        "/home/sandbox",
        "tmpfs",
        "sandbox-home",
        &[
            "nosuid",
            "nodev",
            "mode=0755",
            &format!("uid={SANDBOX_UID}"),
            &format!("gid={SANDBOX_UID}"),
            &format!("size={}m", limits.home_mib),
        ],
    )?);
    mounts.push(mount(
        "/tmp",
        "tmpfs",
        "sandbox-tmp",
        &[
            "nosuid",
            "nodev",
            "mode=1777",
            &format!("size={}m", limits.tmp_mib),
        ],
    )?);
    mounts.push(mount(
        "/var/tmp",
        "tmpfs",
        "sandbox-var-tmp",
        &["nosuid", "nodev", "mode=1777", "size=64m"],
    )?);
    mounts.push(mount(
        "/run",
        "tmpfs",
        "sandbox-run",
        &["nosuid", "nodev", "mode=755", "size=8m"],
    )?);

    let none = Capabilities::new;
    let no_caps = LinuxCapabilitiesBuilder::default()
        .bounding(none())
        .effective(none())
        .inheritable(none())
        .permitted(none())
        .ambient(none())
        .build()
        .map_err(oci)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(SANDBOX_UID)
                .gid(SANDBOX_UID)
                .build()
                .map_err(oci)?,
        )
        .args(container.args.clone())
        .env(
            container
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )
        .cwd("/home/sandbox")
        .capabilities(no_caps)
        .no_new_privileges(true)
        .build()
        .map_err(oci)?;

    let id_map = |base: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(base)
            .size(UID_RANGE)
            .build()
            .map_err(oci)
    };
    let mut namespaces = Vec::new();
    let mut kinds = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Cgroup,
    ];
    if container.net != Net::Host {
        kinds.push(LinuxNamespaceType::Network);
    }
    for typ in kinds {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(oci)?,
        );
    }
    let mut memory = LinuxMemoryBuilder::default().limit(limits.memory_bytes as i64);
    if swap_accounting() {
        // memory + swap = memory: the sandbox never swaps.
        memory = memory.swap(limits.memory_bytes as i64);
    }
    let mut cpu = LinuxCpuBuilder::default()
        .quota(limits.cpu_quota_us())
        .period(CPU_PERIOD_US);
    if let Some(cpus) = &container.cpus {
        cpu = cpu.cpus(cpus.clone());
    }
    let resources = LinuxResourcesBuilder::default()
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .map_err(oci)?,
        ])
        .memory(memory.build().map_err(oci)?)
        .cpu(cpu.build().map_err(oci)?)
        .pids(
            LinuxPidsBuilder::default()
                .limit(i64::from(limits.pids))
                .build()
                .map_err(oci)?,
        )
        .build()
        .map_err(oci)?;
    let linux = LinuxBuilder::default()
        .uid_mappings(vec![id_map(container.uid_base)?])
        .gid_mappings(vec![id_map(container.uid_base)?])
        .namespaces(namespaces)
        .cgroups_path(cgroup_name(container.id))
        .resources(resources)
        .seccomp(seccomp_profile()?)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(oci)?;
    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path("root")
                .readonly(true)
                .build()
                .map_err(oci)?,
        )
        .hostname(container.hostname)
        .mounts(mounts)
        .process(process)
        .linux(linux)
        .build()
        .map_err(oci)
}

/// Whether the kernel accounts swap per cgroup (then the memory limit also caps swap).
fn swap_accounting() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
}

/// System calls every process in a sandbox may make; any other fails with EPERM.
///
/// Left out, as Docker's default profile leaves them out for a container without
/// capabilities: namespaces (`unshare`, `setns`; `clone` with namespace flags), mounts (`mount`,
/// `umount2`, `pivot_root`, the new mount API, `chroot`), kernel keyrings (`keyctl`,
/// `add_key`, `request_key`), `bpf`, `perf_event_open`, io_uring, `userfaultfd`, modules and
/// kexec, `reboot`, clocks, swap, quotas, `syslog`, `acct`, `open_by_handle_at`, `iopl`,
/// `ioperm`, NUMA policy calls, `kcmp`, `pidfd_getfd`, `lookup_dcookie`, `vhangup`.
#[rustfmt::skip]
const ALLOWED_SYSCALLS: &[&str] = &[
    "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "cachestat",
    "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat",
    "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
    "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync",
    "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
    "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64",
    "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
    "futimesat", "get_robust_list", "get_thread_area", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "getrusage", "getsid", "getsockname", "getsockopt",
    "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy",
    "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit",
    "ioctl", "ioprio_get", "ioprio_set", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr",
    "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr",
    "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
    "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "nanosleep", "newfstatat",
    "_newselect", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal",
    "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
    "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "process_vm_readv", "process_vm_writev", "pselect6",
    "pselect6_time64", "ptrace", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
    "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
    "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32",
    "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "setsid",
    "setsockopt", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget",
    "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn",
    "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statx",
    "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill",
    "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
    "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
    "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat",
    "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4",
    "waitid", "waitpid", "write", "writev",
];

/// The namespace flags of `clone`: a `clone` with any of them fails with EPERM.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `personality` values programs use (Linux, with ADDR_NO_RANDOMIZE, UNAME26 and queries).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];
/// `AF_VSOCK`: sockets to the hypervisor are refused.
const AF_VSOCK: u64 = 40;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// The seccomp profile of every sandbox: an allow list, EPERM for everything else.
pub(crate) fn seccomp_profile() -> Result<LinuxSeccomp> {
    let allow = |names: &[&str]| {
        LinuxSyscallBuilder::default()
            .names(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .action(LinuxSeccompAction::ScmpActAllow)
    };
    let arg = |index: usize, value: u64, op: LinuxSeccompOperator| {
        LinuxSeccompArgBuilder::default()
            .index(index)
            .value(value)
            .op(op)
            .build()
            .map_err(oci)
    };
    let mut syscalls = vec![allow(ALLOWED_SYSCALLS).build().map_err(oci)?];
    // clone without namespace flags: (flags & CLONE_NAMESPACE_FLAGS) == 0.
    syscalls.push(
        allow(&["clone"])
            .args(vec![
                LinuxSeccompArgBuilder::default()
                    .index(0usize)
                    .value(CLONE_NAMESPACE_FLAGS)
                    .value_two(0u64)
                    .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                    .build()
                    .map_err(oci)?,
            ])
            .build()
            .map_err(oci)?,
    );
    // clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc fall back to
    // clone.
    syscalls.push(
        LinuxSyscallBuilder::default()
            .names(vec!["clone3".to_owned()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(ENOSYS)
            .build()
            .map_err(oci)?,
    );
    for value in PERSONALITIES {
        syscalls.push(
            allow(&["personality"])
                .args(vec![arg(0, value, LinuxSeccompOperator::ScmpCmpEq)?])
                .build()
                .map_err(oci)?,
        );
    }
    syscalls.push(
        allow(&["socket"])
            .args(vec![arg(0, AF_VSOCK, LinuxSeccompOperator::ScmpCmpNe)?])
            .build()
            .map_err(oci)?,
    );
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
        .syscalls(syscalls)
        .build()
        .map_err(oci)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_refuses_what_docker_refuses() {
        for denied in [
            "unshare",
            "setns",
            "mount",
            "umount2",
            "pivot_root",
            "keyctl",
            "add_key",
            "bpf",
            "perf_event_open",
            "io_uring_setup",
            "kexec_load",
            "init_module",
            "reboot",
            "userfaultfd",
            "open_by_handle_at",
            "chroot",
            "clone3",
        ] {
            assert!(!ALLOWED_SYSCALLS.contains(&denied), "{denied}");
        }
        let profile = seccomp_profile().expect("profile");
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        let json = serde_json::to_value(&profile).expect("json");
        let clone = json["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .find(|s| s["names"][0] == "clone")
            .expect("clone rule");
        assert_eq!(clone["args"][0]["value"], CLONE_NAMESPACE_FLAGS);
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    }

    #[test]
    fn the_spec_maps_a_range_limits_and_drops_every_capability() {
        let env = vec![("HOME".to_owned(), "/home/sandbox".to_owned())];
        let container = Container {
            id: "00000000-0000-4000-8000-000000000000",
            hostname: "sandbox-x",
            uid_base: FIRST_HOST_UID + 3 * UID_RANGE,
            limits: Limits::of_slug("apps-s-1vcpu-0.5gb"),
            net: Net::Loopback,
            env: &env,
            args: vec!["/bin/true".into()],
            cpus: Some("1".into()),
        };
        let spec = spec(&container, Path::new("/b")).expect("spec");
        let json = serde_json::to_value(&spec).expect("json");
        let linux = &json["linux"];
        assert_eq!(
            linux["uidMappings"][0]["hostID"],
            FIRST_HOST_UID + 3 * UID_RANGE
        );
        assert_eq!(linux["uidMappings"][0]["size"], UID_RANGE);
        assert_eq!(linux["resources"]["memory"]["limit"], 512 * 1024 * 1024);
        assert_eq!(linux["resources"]["pids"]["limit"], 1024);
        assert_eq!(linux["resources"]["cpu"]["cpus"], "1");
        let namespaces: Vec<&str> = linux["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        for ns in ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"] {
            assert!(namespaces.contains(&ns), "{ns} in {namespaces:?}");
        }
        let caps = &json["process"]["capabilities"];
        for set in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            assert_eq!(caps[set].as_array().map(Vec::len), Some(0), "{set}");
        }
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(json["process"]["user"]["uid"], SANDBOX_UID);
        let mounts = json["mounts"].as_array().expect("mounts");
        let usr = mounts
            .iter()
            .find(|m| m["destination"] == "/usr")
            .expect("/usr");
        assert!(
            usr["options"]
                .as_array()
                .expect("options")
                .contains(&"rro".into())
        );
        assert!(mounts.iter().any(|m| m["destination"] == "/usr/local"));
        assert_eq!(
            mounts
                .iter()
                .find(|m| m["destination"] == "/etc")
                .map(|m| m["source"].clone()),
            Some("/b/etc".into())
        );
    }

    #[test]
    fn resolv_conf_never_names_a_host_server_without_the_host_network() {
        assert!(resolv_conf(Net::Pasta).starts_with(&format!("nameserver {DNS_FORWARD}\n")));
        assert!(!resolv_conf(Net::Loopback).contains("nameserver"));
    }
}
