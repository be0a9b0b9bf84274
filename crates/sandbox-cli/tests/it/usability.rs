//! The CLI as a newcomer types it: commands without `--`, durations with units, `cp` with
//! cp's rules, following a launched process, `ps` after many commands, completions.

use crate::common::TestContext;

macro_rules! local_ctx {
    () => {
        match TestContext::local() {
            Some(ctx) => ctx,
            None => return,
        }
    };
}

#[test]
fn commands_need_no_dashes_and_durations_take_units() {
    let ctx = local_ctx!();
    // The name as a positional.
    ctx.ok(["create", "demo"]);
    assert_eq!(
        ctx.ok(["exec", "demo", "python3", "-c", "print(6*7)"]),
        "42\n"
    );
    // Flags after the command's first word are the command's.
    assert_eq!(
        ctx.ok(["exec", "demo", "echo", "--json", "-n"]),
        "--json -n\n"
    );
    assert_eq!(ctx.ok(["exec", "demo", "--", "echo", "dashes"]), "dashes\n");
    assert_eq!(
        ctx.ok(["exec", "demo", "--timeout", "1h", "echo", "hour"]),
        "hour\n"
    );
    assert_eq!(
        ctx.ok(["exec", "demo", "--timeout", "0", "echo", "none"]),
        "none\n"
    );
    let output = ctx.run(["exec", "demo", "--timeout", "1s", "sleep", "30"]);
    assert_eq!(output.status.code(), Some(5), "a timeout exits 5");
    for bad in ["soon", "99999999999", "1.5h"] {
        let output = ctx.run(["exec", "demo", "--timeout", bad, "true"]);
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(bad) && stderr.contains("duration"),
            "{stderr}"
        );
    }
    let output = ctx.run(["exec", "demo"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no command given"));
    // `--id` takes the name's place; the first word is the command's.
    let id = crate::common::id_of(&ctx, "demo");
    assert_eq!(ctx.ok(["exec", "--id", &id, "echo", "by-id"]), "by-id\n");
}

#[test]
fn cp_follows_cps_rules_both_ways() {
    let ctx = local_ctx!();
    ctx.ok(["create", "files"]);
    let local = ctx.path().join("work");
    std::fs::create_dir_all(local.join("src/sub")).unwrap();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    std::fs::write(local.join("a.bin"), &bytes).unwrap();
    std::fs::write(local.join("src/sub/deep.txt"), "deep\n").unwrap();
    std::fs::write(local.join("src/top.txt"), "top\n").unwrap();
    let path = |p: &str| local.join(p).to_str().unwrap().to_owned();

    // A file into a folder (a trailing `/`) keeps its name.
    ctx.ok(["cp", &path("a.bin"), "files:/tmp/"]);
    assert_eq!(
        ctx.ok(["exec", "files", "wc -c </tmp/a.bin"]).trim(),
        "70000"
    );
    // A file to a new path takes that name.
    ctx.ok(["cp", &path("a.bin"), "files:in/renamed.bin"]);
    // A folder needs -r; into an existing folder it goes under its own name.
    let output = ctx.run(["cp", &path("src"), "files:/tmp"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("-r"));
    ctx.ok(["cp", "-r", &path("src"), "files:/tmp"]);
    assert_eq!(
        ctx.ok(["exec", "files", "cat", "/tmp/src/sub/deep.txt"]),
        "deep\n"
    );
    // Standard input in, standard output out, byte for byte.
    ctx.cmd(["cp", "-", "files:/tmp/stdin.txt"])
        .write_stdin("from stdin\n")
        .assert()
        .success();
    assert_eq!(
        ctx.ok(["exec", "files", "cat", "/tmp/stdin.txt"]),
        "from stdin\n"
    );
    let out = ctx
        .cmd(["cp", "files:in/renamed.bin", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, bytes);

    // Down: into an existing folder, under its own name.
    let back = ctx.path().join("back");
    std::fs::create_dir_all(&back).unwrap();
    ctx.ok(["cp", "-r", "files:/tmp/src", back.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(back.join("src/sub/deep.txt")).unwrap(),
        "deep\n"
    );
    // The same again meets that folder: refused unless --merge or --replace.
    std::fs::write(back.join("src/mine.txt"), "mine\n").unwrap();
    let output = ctx.run(["cp", "-r", "files:/tmp/src", back.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--merge"));
    ctx.ok([
        "cp",
        "-r",
        "--merge",
        "files:/tmp/src",
        back.to_str().unwrap(),
    ]);
    assert!(
        back.join("src/mine.txt").exists(),
        "a merge keeps local files"
    );
    // A file into a folder keeps its name; `NAME:` is the working folder.
    ctx.ok(["cp", "files:in/renamed.bin", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(back.join("renamed.bin")).unwrap(), bytes);
    let fresh = ctx.path().join("fresh");
    ctx.ok(["cp", "-r", "files:", fresh.to_str().unwrap()]);
    assert_eq!(std::fs::read(fresh.join("in/renamed.bin")).unwrap(), bytes);
    // `SRC/.` is a folder's content.
    let flat = ctx.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    ctx.ok([
        "cp",
        "-r",
        "--merge",
        "files:/tmp/src/.",
        flat.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(flat.join("top.txt")).unwrap(),
        "top\n"
    );
    // `files download` follows the same rules.
    let via_files = ctx.path().join("via-files");
    std::fs::create_dir_all(&via_files).unwrap();
    ctx.ok([
        "files",
        "download",
        "files",
        "/tmp/src",
        via_files.to_str().unwrap(),
    ]);
    assert!(via_files.join("src/top.txt").exists());
    // Neither side, or both, in a sandbox.
    assert_eq!(ctx.run(["cp", "a", "b"]).status.code(), Some(2));
    assert_eq!(ctx.run(["cp", "files:a", "files:b"]).status.code(), Some(2));
}

#[test]
fn launched_output_is_followed_until_the_process_ends() {
    let ctx = local_ctx!();
    ctx.ok(["create", "procs"]);
    // The process waits for a file the test writes, so the follow must be live to see both
    // lines: the first before the file exists, the second after.
    let pid = ctx
        .ok([
            "launch",
            "procs",
            "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second",
        ])
        .trim()
        .to_owned();
    let mut follow = ctx
        .std_cmd(["logs", "procs", "--pid", &pid, "--follow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "first\n");
    ctx.ok(["exec", "procs", "touch /tmp/go"]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "second\n");
    assert!(
        follow.wait().unwrap().success(),
        "the follow ends with the process"
    );
    // The process has ended: a kill says so, with the not-found code.
    let output = ctx.run(["kill", "procs", &pid]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("process {pid}")), "{stderr}");
    // An unknown pid's output is not found either.
    assert_eq!(
        ctx.run(["logs", "procs", "--pid", "999999", "--follow"])
            .status
            .code(),
        Some(3)
    );
}

#[test]
fn ps_after_many_quick_commands_lists_only_the_users_processes() {
    let ctx = local_ctx!();
    ctx.ok(["create", "busy"]);
    for i in 0..30 {
        assert_eq!(
            ctx.ok(["exec", "busy", "echo", &i.to_string()]),
            format!("{i}\n")
        );
    }
    let listing: serde_json::Value =
        serde_json::from_str(&ctx.ok(["ps", "busy", "--json"])).unwrap();
    let commands: Vec<(String, String)> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["state"].as_str().unwrap().to_owned(),
                p["command"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (state, command) in &commands {
        assert!(!state.starts_with('Z'), "a zombie is listed: {commands:?}");
        assert!(
            !command.contains("sandbox-agent") && !command.contains("<defunct>"),
            "the protocol is listed: {commands:?}"
        );
    }
    assert_eq!(commands.len(), 1, "only the sandbox's PID 1: {commands:?}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let ctx = TestContext::bare();
    let bash = ctx.ok(["completions", "bash"]);
    assert!(bash.contains("complete -F _sandbox"), "{bash}");
    assert!(bash.contains("snapshot"), "subcommands are completed");
    assert!(
        ctx.ok(["completions", "zsh"])
            .starts_with("#compdef sandbox")
    );
    assert!(
        ctx.ok(["completions", "fish"])
            .contains("complete -c sandbox")
    );
    assert_eq!(ctx.run(["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn help_works_after_any_argument() {
    let ctx = TestContext::bare();
    for argv in [
        &["files", "upload", "demo", "--help"][..],
        &["files", "download", "demo", "x", "--help"][..],
        &["exec", "demo", "--help"][..],
        &["kill", "demo", "--help"][..],
        &["cp", "a", "--help"][..],
    ] {
        let output = ctx.run(argv.iter().copied());
        assert_eq!(output.status.code(), Some(0), "{argv:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage: sandbox"),
            "{argv:?}"
        );
    }
}

/// `GET path` on a loopback URL, retried until the server answers (it starts in the
/// background) or 30 s pass; returns the body.
pub fn http_get(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"))
        .trim_end_matches('/');
    assert!(
        addr.starts_with("127.") || addr.starts_with("localhost:"),
        "tests talk to loopback only: {addr}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            write!(
                stream,
                "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        })();
        match attempt {
            Ok(response) if response.starts_with("HTTP/1.0 200") => {
                return response
                    .split_once("\r\n\r\n")
                    .map(|(_, body)| body.to_owned())
                    .unwrap_or_default();
            }
            other => assert!(
                std::time::Instant::now() < deadline,
                "{url}{path} did not answer 200 within 30 s: {other:?}"
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_web_server_in_a_service_answers_at_its_url() {
    let ctx = local_ctx!();
    ctx.ok(["create", "web", "--component-type", "service"]);
    ctx.ok(["launch", "web", "python3", "-m", "http.server", "8080"]);
    ctx.ok(["exec", "web", "echo hello > index.html"]);
    let url = ctx.ok(["url", "web"]).trim().to_owned();
    assert_eq!(http_get(&url, "/index.html"), "hello\n");
}
