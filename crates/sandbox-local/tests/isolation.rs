//! The isolation suite: each test runs commands inside real sandboxes and checks, from inside
//! and from the host, one point of what a sandbox must not reach or exceed. Network checks use
//! the host's loopback only.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use appspec::{ComponentType, ImageKind, SandboxTemplate};
use common::{Env, Sandbox};
use doctl_driver::{LogsRequest, Platform};
use futures::StreamExt;

fn sized(component: ComponentType, size: &str) -> appspec::AppSpec {
    let name = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    SandboxTemplate::new(ImageKind::Python, component)
        .name(name)
        .instance_size(size)
        .build()
        .expect("template")
}

fn state_json(env: &Env, id: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(env.platform.sandbox_dir(id).join("state.json")).expect("state");
    serde_json::from_str(&text).expect("json")
}

fn supervisor_pid(env: &Env, id: &str) -> i64 {
    state_json(env, id)["supervisor"]["pid"]
        .as_i64()
        .expect("supervisor pid")
}

/// The real uid of a host process, from its /proc status.
fn host_uid(pid: i64) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("Uid line")
}

/// A Python one-liner's output inside the sandbox (through a console).
async fn python(sandbox: &Sandbox, code: &str) -> String {
    sandbox.run(&format!("python3 -c \"{code}\" 2>&1")).await
}

#[tokio::test]
async fn the_host_loopback_is_out_of_reach() {
    require_sandboxes!();
    let env = Env::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("host listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    for component in [ComponentType::Worker, ComponentType::Service] {
        let sandbox = env.create(ImageKind::Python, component).await;
        // The sandbox's own loopback: nothing listens there.
        let out = python(
            &sandbox,
            &format!(
                "import socket; s=socket.socket(); s.settimeout(3); \
                 print(s.connect_ex(('127.0.0.1', {port})))"
            ),
        )
        .await;
        assert_ne!(
            out.trim(),
            "0",
            "{component:?} reached the host's loopback: {out}"
        );
        // Nor through the default gateway (pasta would map it to the host without
        // --no-map-gw).
        let out = python(
            &sandbox,
            &format!(
                "import socket, struct\nroutes=[l.split() for l in open('/proc/net/route')][1:]\n\
                 gw=[socket.inet_ntoa(struct.pack('<L', int(r[2], 16))) for r in routes if r[1]=='00000000']\n\
                 s=socket.socket(); s.settimeout(3)\n\
                 print(gw and s.connect_ex((gw[0], {port})))"
            ),
        )
        .await;
        assert_ne!(
            out.trim(),
            "0",
            "{component:?} reached the host through its gateway: {out}"
        );
        // And it cannot bind the host's ports: binding 127.0.0.1:port inside succeeds (its own
        // loopback) while the host's listener still holds the host's.
        let out = python(
            &sandbox,
            &format!(
                "import socket; s=socket.socket(); s.bind(('127.0.0.1', {port})); print('bound')"
            ),
        )
        .await;
        assert_eq!(out.trim(), "bound", "{out}");
    }
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("a sandbox connected to the host's listener: {other:?}"),
    }
}

#[tokio::test]
async fn each_sandbox_runs_under_host_uids_of_its_own() {
    require_sandboxes!();
    let env = Env::new();
    let a = env.create(ImageKind::Python, ComponentType::Worker).await;
    let b = env.create(ImageKind::Python, ComponentType::Worker).await;
    let (ua, ub) = (
        host_uid(supervisor_pid(&env, a.id())),
        host_uid(supervisor_pid(&env, b.id())),
    );
    assert_ne!(ua, ub, "two sandboxes share host uid {ua}");
    for uid in [ua, ub] {
        assert!(uid > 65_536, "host uid {uid} is not from a sandbox range");
    }
    for sandbox in [&a, &b] {
        assert_eq!(sandbox.run("id -u; id -un").await, "1000\nsandbox\n");
        let map = sandbox.run("cat /proc/self/uid_map").await;
        let fields: Vec<&str> = map.split_whitespace().collect();
        assert_eq!(fields.first(), Some(&"0"), "{map}");
        assert_eq!(fields.get(2), Some(&"65536"), "{map}");
    }
    // A file the sandbox writes belongs, on the host, to its own range.
    a.run("echo x > notes.txt").await;
    let on_host = env.platform.home_dir(a.id()).join("app").join("notes.txt");
    let meta = std::fs::metadata(&on_host).expect("host view of the file");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), ua);
}

#[tokio::test]
async fn limits_of_the_instance_size_show_inside() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env
        .create_spec(&sized(ComponentType::Worker, "apps-s-1vcpu-0.5gb"))
        .await;
    let v2 = sandbox
        .run("test -e /sys/fs/cgroup/cgroup.controllers && echo v2")
        .await
        == "v2\n";
    let (memory, pids) = if v2 {
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max")
    } else {
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
        )
    };
    assert_eq!(
        sandbox.run(&format!("cat {memory}")).await,
        format!("{}\n", 512 * 1024 * 1024)
    );
    assert_eq!(sandbox.run(&format!("cat {pids}")).await, "1024\n");
    let host_cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if host_cpus > 1 {
        assert_eq!(sandbox.run("nproc").await, "1\n", "pinned to its one vCPU");
    }
    let df = sandbox
        .run("df -m --output=size /home/sandbox /tmp | tail -n 2 | tr -s ' '")
        .await;
    let sizes: Vec<&str> = df.split_whitespace().collect();
    assert_eq!(sizes, ["512", "256"], "{df}");
}

#[tokio::test]
async fn memory_beyond_the_limit_is_killed_and_reported() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env
        .create_spec(&sized(ComponentType::Worker, "apps-s-1vcpu-0.5gb"))
        .await;
    let out = sandbox
        .run("python3 -c 'b = bytearray(800 * 1024 * 1024); print(len(b))'; echo rc=$?")
        .await;
    assert!(out.ends_with("rc=137\n"), "{out}");
    // The sandbox survives, and its run log says what happened.
    assert_eq!(sandbox.run("echo alive").await, "alive\n");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let request = LogsRequest::new(sandbox.id(), "sandbox");
        let lines: Vec<String> = env
            .platform
            .logs(&request)
            .await
            .expect("logs")
            .filter_map(|l| async move { l.ok() })
            .collect()
            .await;
        if lines.iter().any(|l| l.contains("out of memory")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no out-of-memory line in the run log: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        env.platform
            .get_app(sandbox.id())
            .await
            .expect("get")
            .status()
            .is_active(),
        "a killed process does not end the sandbox"
    );
}

#[tokio::test]
async fn processes_beyond_the_limit_are_refused_and_delete_still_works() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env
        .create_spec(&sized(ComponentType::Worker, "apps-s-1vcpu-1gb"))
        .await;
    // Forks sleeping children until the kernel refuses (EAGAIN), at most 1500.
    let script = [
        "import os, time",
        "n = 0",
        "try:",
        "    while n < 1500:",
        "        if os.fork() == 0:",
        "            time.sleep(30)",
        "            os._exit(0)",
        "        n += 1",
        "except OSError as e:",
        "    print(\"refused after\", n, e.errno)",
    ]
    .join("\\n");
    sandbox
        .run(&format!("printf '{script}\\n' > /tmp/forks.py"))
        .await;
    let out = sandbox.run("timeout 60 python3 /tmp/forks.py").await;
    assert!(out.starts_with("refused after"), "{out}");
    let n: u32 = out
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(n < 1024, "{n} processes started under a limit of 1024");
    let id = sandbox.id().to_owned();
    env.platform.delete_app(&id).await.expect("delete");
    assert!(!env.platform.sandbox_dir(&id).exists());
    assert_nothing_left(&id);
}

/// Nothing of sandbox `id` remains on the host: container, bundle, uid claim, cgroups.
fn assert_nothing_left(id: &str) {
    let bundle = std::path::Path::new("/run/do-app-sandbox/bundles").join(id);
    assert!(!bundle.exists(), "{} is left", bundle.display());
    let runc = std::path::Path::new("/run/do-app-sandbox/runc").join(id);
    assert!(!runc.exists(), "{} is left", runc.display());
    let claims = std::fs::read_dir("/run/do-app-sandbox/uids").expect("claims");
    for claim in claims.flatten() {
        let owner = std::fs::read_to_string(claim.path()).unwrap_or_default();
        assert_ne!(
            owner.trim(),
            id,
            "uid claim {} is left",
            claim.path().display()
        );
    }
    let cgroup = format!("do-app-sandbox-{id}");
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("own cgroups");
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let mount = match controllers {
            "" => "/sys/fs/cgroup/unified".to_owned(),
            c => format!("/sys/fs/cgroup/{}", c.trim_start_matches("name=")),
        };
        let dir = std::path::Path::new(&mount)
            .join(path.trim_start_matches('/'))
            .join(&cgroup);
        assert!(!dir.exists(), "cgroup {} is left", dir.display());
    }
}

#[tokio::test]
async fn tmp_is_capped() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env
        .create_spec(&sized(ComponentType::Worker, "apps-s-1vcpu-0.5gb"))
        .await;
    let out = sandbox
        .run("dd if=/dev/zero of=/tmp/fill bs=1M count=400 2>&1 | grep -c 'No space left'; rm -f /tmp/fill")
        .await;
    assert_eq!(out, "1\n", "a 400 MiB file fit in a 256 MiB /tmp");
}

#[tokio::test]
async fn seccomp_filters_and_nested_namespaces_are_refused() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    assert_eq!(
        sandbox
            .run("grep '^Seccomp:' /proc/self/status | tr -d '\\t '")
            .await,
        "Seccomp:2\n"
    );
    assert_eq!(
        sandbox
            .run("grep '^NoNewPrivs:' /proc/self/status | tr -d '\\t '")
            .await,
        "NoNewPrivs:1\n"
    );
    for cmd in ["unshare -U true", "unshare -r true", "unshare -n true"] {
        let out = sandbox.run(&format!("{cmd} 2>&1; echo rc=$?")).await;
        assert!(!out.ends_with("rc=0\n"), "`{cmd}` worked: {out}");
    }
    // System calls Docker's default profile refuses fail with EPERM here too.
    let out = python(
        &sandbox,
        "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); \
         calls = {'keyctl': 250, 'bpf': 321, 'perf_event_open': 298, 'io_uring_setup': 425, \
         'mount': 165, 'kexec_load': 246, 'add_key': 248, 'userfaultfd': 323}; \
         print(sorted(n for n, nr in calls.items() \
         if libc.syscall(nr, 0, 0, 0, 0, 0) != -1 or ctypes.get_errno() != 1))",
    )
    .await;
    assert_eq!(
        out.trim(),
        "[]",
        "calls that were not refused with EPERM: {out}"
    );
}

#[tokio::test]
async fn every_process_the_user_runs_has_no_capabilities() {
    require_sandboxes!();
    let env = Env::new();
    let spec = {
        let mut spec = sized(ComponentType::Service, "apps-s-1vcpu-1gb");
        spec.services[0].run_command = "sleep 600".into();
        spec
    };
    let sandbox = env.create_spec(&spec).await;
    // Every process of the sandbox: PID 1, the health server, the run command, this console's
    // shell and what it starts.
    let out = sandbox
        .run(
            "for s in /proc/[0-9]*/status; do \
             echo \"$(grep -m1 '^Name:' $s | cut -f2) $(grep '^CapBnd:' $s | cut -f2) \
             $(grep '^CapEff:' $s | cut -f2) $(grep '^CapAmb:' $s | cut -f2)\"; done",
        )
        .await;
    let mut names = Vec::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert!(
            fields[1..].iter().all(|caps| *caps == "0000000000000000"),
            "{line}"
        );
        names.push(fields[0].to_owned());
    }
    for name in ["bash", "python3", "sleep"] {
        assert!(names.iter().any(|n| n == name), "no {name} among {names:?}");
    }
}

#[tokio::test]
async fn the_file_system_hides_the_host() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    // A private /etc: a file the host adds later does not show.
    let marker = format!("do-app-sandbox-isolation-{}", uuid::Uuid::new_v4().simple());
    let host_file = std::path::Path::new("/etc").join(&marker);
    std::fs::write(&host_file, "host\n").expect("host /etc file");
    let seen = sandbox
        .run(&format!("ls /etc/{marker} 2>/dev/null | wc -l"))
        .await;
    let _ = std::fs::remove_file(&host_file);
    assert_eq!(seen, "0\n", "a change to the host's /etc shows inside");
    assert!(
        sandbox
            .run("cat /etc/passwd")
            .await
            .contains("sandbox:x:1000:1000:sandbox:/home/sandbox:/bin/bash")
    );
    assert!(
        !sandbox.run("cat /etc/group").await.contains("docker"),
        "host groups show inside"
    );
    // No /usr/local of the host.
    assert_eq!(sandbox.run("ls -A /usr/local | wc -l").await, "0\n");
    // Masked /proc paths, a /sys of its own.
    assert_eq!(sandbox.run("wc -c < /proc/cmdline").await, "0\n");
    assert_eq!(
        sandbox
            .run("cat /proc/kcore /proc/keys /proc/sched_debug 2>/dev/null | wc -c")
            .await,
        "0\n"
    );
    assert_eq!(sandbox.run("ls /sys").await, "fs\n");
    assert_eq!(
        sandbox.run("ls /sys/class 2>/dev/null | wc -l").await,
        "0\n"
    );
    // Read-only mounts are nosuid and nodev, submounts included.
    let usr = sandbox
        .run("grep -E ' /usr ' /proc/self/mountinfo | cut -d' ' -f6")
        .await;
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(usr.split(',').any(|f| f.trim() == flag), "/usr is {usr}");
    }
    assert!(
        sandbox
            .run("touch /etc/x 2>&1; echo rc=$?")
            .await
            .ends_with("rc=1\n")
    );
    // The host path of its state folder appears nowhere in its mount table.
    let state = env.platform.sandbox_dir(sandbox.id());
    let out = sandbox
        .run(&format!(
            "grep -c '{}' /proc/self/mountinfo",
            state.display()
        ))
        .await;
    assert_eq!(out, "0\n");
}

#[tokio::test]
async fn the_python_image_has_a_virtual_environment_first_on_path() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    assert_eq!(
        sandbox.run("echo $PYTHONUNBUFFERED $VIRTUAL_ENV").await,
        "1 /home/sandbox/.venv\n"
    );
    assert_eq!(
        sandbox.run("command -v python3 pip").await,
        "/home/sandbox/.venv/bin/python3\n/home/sandbox/.venv/bin/pip\n"
    );
    assert_eq!(
        sandbox
            .run("python3 -c 'import sys; print(sys.prefix, sys.prefix != sys.base_prefix)'")
            .await,
        "/home/sandbox/.venv True\n"
    );
    // pip installs into the environment: no "externally managed" refusal (the index is out
    // of reach here, so the install itself fails to find the package).
    let out = sandbox
        .run("pip install --no-index no-such-package-here 2>&1; echo rc=$?")
        .await;
    assert!(!out.contains("externally-managed"), "{out}");
    assert!(out.contains("No matching distribution"), "{out}");
}
