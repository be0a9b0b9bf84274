//! Consoles on local sandboxes: the prompt, the user, the file system, processes.

mod common;

use appspec::{ComponentType, ImageKind};
use common::Env;
use doctl_driver::Platform;

#[tokio::test]
async fn prompt_echo_and_exit() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    assert!(
        sandbox.app.status().is_active(),
        "{:?}",
        sandbox.app.status()
    );
    let instance = env
        .platform
        .list_instances(sandbox.id())
        .await
        .expect("instances");
    let hostname = instance[0].instance_name.clone();

    let mut term = sandbox.console().await;
    let prompt = format!("sandbox@{hostname}:~/app$ ");
    term.send("echo hi\r").await;
    let echoed = term.expect("hi\r\n").await;
    assert!(echoed.contains("echo hi"), "input is echoed: {echoed:?}");
    term.expect("hi\r\n").await;
    term.expect(&prompt).await;
    term.send("exit\r").await;
    term.expect_end().await;
}

#[tokio::test]
async fn looks_like_the_app_platform_image_from_inside() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let instance = env
        .platform
        .list_instances(sandbox.id())
        .await
        .expect("instances");
    assert_eq!(instance.len(), 1);
    let hostname = instance[0].instance_name.clone();
    assert!(hostname.starts_with("sandbox-"), "{hostname}");

    let mut term = sandbox.console().await;
    assert_eq!(term.run("whoami").await, "sandbox\n");
    assert_eq!(term.run("pwd").await, "/home/sandbox/app\n");
    assert_eq!(term.run("echo $HOME").await, "/home/sandbox\n");
    assert_eq!(term.run("readlink /app").await, "/home/sandbox/app\n");
    assert_eq!(term.run("hostname").await, format!("{hostname}\n"));
    assert_eq!(term.run("id -u").await, "1000\n");
    assert_eq!(term.run("tty").await, "/dev/pts/0\n");
    let touch = term.run("touch /usr/x 2>&1; echo rc=$?").await;
    assert!(
        touch.contains("Read-only file system") && touch.contains("rc=1"),
        "{touch}"
    );
    let version = term
        .run("python3 -c 'import sys; print(sys.version_info[0])'")
        .await;
    assert_eq!(version, "3\n");
    // Only the sandbox's own processes: PID 1 (its init), this shell, and the listing's
    // subshell and `cat`.
    let ps = term.run(common::PS).await;
    let procs: Vec<(u32, String)> = ps
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            let pid = it.next().expect("pid").parse().expect("number");
            (pid, it.next().unwrap_or_default().to_owned())
        })
        .collect();
    assert!(procs.iter().any(|(pid, _)| *pid == 1), "{ps}");
    assert!(procs.len() <= 5, "only the sandbox's processes: {ps}");
    assert!(procs.iter().all(|(_, c)| c == "bash" || c == "cat"), "{ps}");
    if term.run("command -v ps >/dev/null && echo yes").await == "yes\n" {
        let ps = term.run("ps -e -o comm=").await;
        assert!(ps.lines().all(|c| c == "bash" || c == "ps"), "{ps}");
    }
    // A private /tmp.
    let marker = format!("host-only-{}", uuid::Uuid::new_v4());
    std::fs::write(std::env::temp_dir().join(&marker), "x").expect("host tmp file");
    assert_eq!(
        term.run(&format!("ls /tmp/{marker} 2>/dev/null | wc -l"))
            .await,
        "0\n"
    );
    let _ = std::fs::remove_file(std::env::temp_dir().join(&marker));
}

#[tokio::test]
async fn files_persist_across_consoles_and_show_on_the_host() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    sandbox
        .run("echo persisted > notes.txt && echo tmp > /tmp/t.txt")
        .await;
    assert_eq!(
        sandbox.run("cat /app/notes.txt /tmp/t.txt").await,
        "persisted\ntmp\n"
    );
    let on_host = env
        .platform
        .home_dir(sandbox.id())
        .join("app")
        .join("notes.txt");
    assert_eq!(
        std::fs::read_to_string(on_host).expect("host view"),
        "persisted\n"
    );
}

#[tokio::test]
async fn background_process_outlives_its_console_and_dies_on_delete() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let mut term = sandbox.console().await;
    term.run("{ nohup sleep 1000 >/dev/null 2>&1 & }").await;
    term.console.close().await.expect("close");
    drop(term);
    let ps = sandbox.run(common::PS).await;
    assert!(
        ps.lines().any(|l| l.ends_with(" sleep")),
        "sleep still runs: {ps}"
    );

    // Find it from the host: a `sleep 1000` whose root is the sandbox's.
    let host_sleep = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let hostname =
                std::fs::read_to_string(format!("/proc/{pid}/environ")).unwrap_or_default();
            cmd == b"sleep\x001000\x00"
                && hostname.contains(&format!("HOSTNAME={}", sandbox_hostname(&env, &sandbox)))
        });
    let host_sleep = host_sleep.expect("the sleep is visible from the host");
    env.platform.delete_app(sandbox.id()).await.expect("delete");
    let stat = std::fs::read_to_string(format!("/proc/{host_sleep}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "sleep is gone after delete: {stat}"
    );
    assert!(
        !env.platform.sandbox_dir(sandbox.id()).exists(),
        "state removed"
    );
}

/// Closing a console leaves no zombie behind: `nsenter` reaps its shell before it ends. (A
/// shell's zombie left to the host's init would hold the sandbox's PID namespace, and so a
/// delete, until that init reaps it.)
#[tokio::test]
async fn closing_a_console_reaps_its_shell() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let hostname = sandbox_hostname(&env, &sandbox);
    // Killing the shell and its carrier together loses the race only now and then: try a few.
    for _ in 0..8 {
        close_and_check_reaped(&sandbox, &hostname).await;
    }
}

async fn close_and_check_reaped(sandbox: &common::Sandbox, hostname: &str) {
    let mut term = sandbox.console().await;
    let inner: u32 = term.run("echo $$").await.trim().parse().expect("a pid");
    let (host_pid, start) = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let environ = String::from_utf8_lossy(&environ);
            (nspid.split_whitespace().last() == Some(&inner.to_string())
                && nspid.split_whitespace().count() > 1
                && environ.contains(&format!("HOSTNAME={hostname}")))
            .then(|| (pid, start_time(pid)))
        })
        .expect("the shell is visible from the host");
    term.console.close().await.expect("close");
    assert!(
        start_time(host_pid).is_none() || start_time(host_pid) != start,
        "the shell ({host_pid}) is still there after close: {:?}",
        std::fs::read_to_string(format!("/proc/{host_pid}/stat"))
    );
}

/// The start time of a process (field 22 of its stat), `None` when there is none.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn sandbox_hostname(env: &Env, sandbox: &common::Sandbox) -> String {
    let state = std::fs::read_to_string(env.platform.sandbox_dir(sandbox.id()).join("state.json"))
        .expect("state");
    let json: serde_json::Value = serde_json::from_str(&state).expect("json");
    json["hostname"].as_str().expect("hostname").to_owned()
}

#[tokio::test]
async fn many_consoles_at_once() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let mut a = sandbox.console().await;
    let mut b = sandbox.console().await;
    let mut c = sandbox.console().await;
    assert_eq!(a.run("echo a").await, "a\n");
    assert_eq!(b.run("echo b").await, "b\n");
    assert_eq!(c.run("tty").await, "/dev/pts/2\n");
    assert_eq!(a.run("echo again").await, "again\n");
}

#[tokio::test]
async fn node_image_runs_node() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Node, ComponentType::Worker).await;
    assert_eq!(
        sandbox
            .run("node -e 'process.stdout.write(String(6*7) + \"\\n\")'")
            .await,
        "42\n"
    );
}

#[tokio::test]
async fn console_targets_are_checked() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let err = env
        .platform
        .open_console(&doctl_driver::ConsoleTarget::new(sandbox.id(), "web"))
        .await
        .err()
        .expect("unknown component");
    assert!(
        err.is_not_found() && err.to_string().contains("web"),
        "{err}"
    );
    let err = env
        .platform
        .open_console(
            &doctl_driver::ConsoleTarget::new(sandbox.id(), "sandbox").with_instance("nope"),
        )
        .await
        .err()
        .expect("unknown instance");
    assert!(
        err.is_not_found() && err.to_string().contains("nope"),
        "{err}"
    );
    let instance = &env
        .platform
        .list_instances(sandbox.id())
        .await
        .expect("list")[0];
    let console = env
        .platform
        .open_console(
            &doctl_driver::ConsoleTarget::new(sandbox.id(), "sandbox")
                .with_instance(instance.instance_name.clone()),
        )
        .await
        .expect("named instance");
    drop(console);
}

#[tokio::test]
async fn resize_reaches_the_shell() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let mut term = sandbox.console().await;
    assert_eq!(term.run("stty size").await, "50 200\n");
    term.console
        .resize(doctl_driver::TermSize {
            cols: 100,
            rows: 30,
        })
        .await
        .expect("resize");
    assert_eq!(term.run("stty size").await, "30 100\n");
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let term = sandbox.console().await;
    term.console
        .send(b"for i in $(seq 1 300); do echo line-$i; done; echo done-$((40+2))\r")
        .await
        .expect("send");
    // Receive with futures dropped mid-wait over and over: nothing may be lost.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + common::DEADLINE;
    while !String::from_utf8_lossy(&seen).contains("done-42\r\n") {
        assert!(std::time::Instant::now() < deadline, "no marker");
        if let Ok(chunk) =
            tokio::time::timeout(std::time::Duration::from_micros(200), term.console.recv()).await
        {
            seen.extend(chunk.expect("recv").expect("open"));
        }
    }
    let text = String::from_utf8_lossy(&seen);
    for i in 1..=300 {
        assert!(text.contains(&format!("line-{i}\r\n")), "line-{i} missing");
    }
}
