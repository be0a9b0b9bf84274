//! The digitalocean provider against `sandbox emulator`, through the API and through doctl
//! (the doctl stand-in).

use crate::common::{self, TestContext, id_of};

macro_rules! emulator_ctx {
    ($ctx:ident, $emu:ident) => {
        let Some(mut $ctx) = TestContext::local() else {
            return;
        };
        let $emu = $ctx.start_emulator();
    };
}

/// The emulator's apps are App Platform's: the same machine's local provider does not list
/// them, and its `delete --all` does not touch them.
#[test]
fn the_emulators_sandboxes_are_not_the_local_providers() {
    emulator_ctx!(ctx, emu);
    ctx.ok(["create", "remote-one"]);
    let local = |args: &[&str]| {
        let output = ctx
            .std_cmd(["--provider", "local"].iter().chain(args))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(local(&["list", "--json"]).trim(), "[]");
    local(&["delete", "--all", "--force"]);
    assert!(ctx.ok(["list"]).contains("remote-one"));
    assert!(
        ctx.emulator_dir().join("sandboxes").is_dir(),
        "the emulator's state is in its own folder"
    );
    drop(emu);
}

/// The emulator's `live_url` reaches the sandbox's 8080, as App Platform's does.
#[test]
fn a_web_server_answers_at_the_emulators_live_url() {
    emulator_ctx!(ctx, emu);
    ctx.ok(["create", "web", "--component-type", "service"]);
    ctx.ok(["launch", "web", "python3", "-m", "http.server", "8080"]);
    ctx.ok(["exec", "web", "echo through the emulator > index.html"]);
    let url = ctx.ok(["url", "web"]).trim().to_owned();
    assert_eq!(
        crate::usability::http_get(&url, "/index.html"),
        "through the emulator\n"
    );
    drop(emu);
}

#[test]
fn api_driver_lifecycle() {
    emulator_ctx!(ctx, emu);
    let created: serde_json::Value = serde_json::from_str(&ctx.ok([
        "create",
        "--name",
        "emu-api",
        "--component-type",
        "service",
        "--json",
    ]))
    .unwrap();
    assert_eq!(created["status"], "ACTIVE");
    assert_eq!(created["provider"], "digitalocean (api)");
    assert_eq!(created["component_type"], "service");
    let url = ctx.ok(["url", "emu-api"]);
    assert!(url.starts_with("http"), "{url}");

    let output = ctx.run(["exec", "emu-api", "--", "printf 'a\\0b'; exit 9"]);
    assert_eq!(output.status.code(), Some(9));
    assert_eq!(output.stdout, b"a\0b");
    ctx.cmd(["files", "write", "emu-api", "x.txt"])
        .write_stdin("through the emulator\n")
        .assert()
        .success();
    assert_eq!(
        ctx.ok(["files", "read", "emu-api", "x.txt"]),
        "through the emulator\n"
    );
    let deploy_logs = ctx.ok(["logs", "emu-api", "--type", "deploy"]);
    assert!(!deploy_logs.is_empty());

    let id = id_of(&ctx, "emu-api");
    // Any component of any app, by id: what troubleshooting an existing app uses.
    assert_eq!(
        ctx.ok([
            "exec",
            "--id",
            &id,
            "--component",
            "sandbox",
            "--",
            "echo",
            "attached"
        ]),
        "attached\n"
    );
    let output = ctx.run(["exec", "--id", &id, "--component", "web", "--", "true"]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        ctx.run([
            "exec",
            "--id",
            "00000000-0000-4000-8000-000000000000",
            "--",
            "true"
        ])
        .status
        .code(),
        Some(3)
    );
    ctx.ok(["delete", "--id", &id]);
    assert_eq!(ctx.run(["status", "--id", &id]).status.code(), Some(3));
    drop(emu);
}

#[test]
fn doctl_driver_runs_the_main_job() {
    emulator_ctx!(ctx, emu);
    // Found, or built with cargo: a stand-in that cannot be built fails the test.
    let standin = appplatform_emulator::standin_path().expect("the doctl stand-in");
    ctx.env
        .push(("DOCTL".into(), standin.to_string_lossy().into_owned()));
    let output = ctx.run([
        "--driver",
        "doctl",
        "run",
        "--image",
        "python",
        "--",
        "python3",
        "-c",
        "print(6*7)",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "42\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("digitalocean (doctl)"));
    assert_eq!(ctx.ok(["--driver", "doctl", "list", "--json"]).trim(), "[]");
    drop(emu);
}

#[test]
fn a_wrong_token_is_an_auth_error() {
    emulator_ctx!(ctx, emu);
    ctx.env
        .push(("DIGITALOCEAN_TOKEN".into(), "dop_v1_wrong".into()));
    let output = ctx.run(["--driver", "api", "list"]);
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains(&emu.token), "the token leaked: {stderr}");
    drop(emu);
}

#[test]
fn apps_this_tool_did_not_create_are_reachable_but_not_deleted_by_name() {
    emulator_ctx!(ctx, emu);
    // Found, or built with cargo: a stand-in that cannot be built fails the test.
    let standin = appplatform_emulator::standin_path().expect("the doctl stand-in");
    // An app made by hand (doctl), without the sandbox marker.
    let spec = ctx.path().join("plain.yaml");
    std::fs::write(
        &spec,
        "name: plain-app\nregion: atl\nworkers:\n- name: web\n  image:\n    registry_type: GHCR\n    \
         registry: someone\n    repository: sandbox-python\n    tag: latest\n  instance_count: 1\n  \
         instance_size_slug: apps-s-1vcpu-1gb\n",
    )
    .unwrap();
    let created = std::process::Command::new(&standin)
        .env("DIGITALOCEAN_ACCESS_TOKEN", &emu.token)
        .args(["--api-url", &emu.url, "apps", "create", "--spec"])
        .arg(&spec)
        .args(["--wait", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let id = created[0]["id"].as_str().unwrap().to_owned();

    assert_eq!(ctx.ok(["list", "--json"]).trim(), "[]");
    // By name (after the sandboxes) or by id, with its own component.
    assert_eq!(ctx.ok(["exec", "plain-app", "--", "echo", "hi"]), "hi\n");
    assert_eq!(
        ctx.ok([
            "exec",
            "--id",
            &id,
            "--component",
            "web",
            "--",
            "echo",
            "web"
        ]),
        "web\n"
    );
    // `delete NAME` only deletes sandboxes; the id is required for anything else.
    let output = ctx.run(["delete", "plain-app"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("--id {id}")));
    ctx.ok(["delete", "--id", &id]);
    drop(emu);
}

#[test]
fn ctrl_c_while_waiting_deletes_the_new_sandbox() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let Some(mut ctx) = TestContext::local() else {
        return;
    };
    // Deployments that take a minute: the interruption lands while waiting.
    let emu = ctx.start_emulator_with_pace("60");
    let mut child = ctx
        .std_cmd(["create", "--name", "interrupted"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    // Wait for a deployment phase to be reported (plain progress lines: not a terminal).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a deployment phase is reported");
        if line.contains("PENDING_BUILD") || line.contains("BUILDING") {
            break;
        }
    }
    let code = common::interrupt(&mut child, "create");
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(code, Some(130), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("deleted sandbox `interrupted`")),
        "{rest:?}"
    );
    assert_eq!(ctx.ok(["list", "--json"]).trim(), "[]");
    drop(emu);
}
