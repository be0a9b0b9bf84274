//! `sandbox snapshot`, `create --from-snapshot`, `hibernate` and `wake`: files come back byte
//! for byte, on the local provider with no configuration and through the emulator.

use crate::common::TestContext;

/// Every path's kind, mode, size and link target, and every file's SHA-256.
const STATE: &str = r"cd /home/sandbox/app
find . ! -type d -printf '%y %m %s %p -> %l\n' | sort
find . -type d -printf '%y %m %p\n' | sort
find . -type f -print0 | sort -z | xargs -0 -r sha256sum --";

const WRITE: &str = r#"set -e
cd /home/sandbox/app
head -c 200000 /dev/urandom > random.bin
printf 'SECRET=kept\n' > .env
mkdir -p "empty dir" src
printf 'print(1)\n' > "src/it's main.py"
chmod 751 "src/it's main.py"
ln -s "src/it's main.py" link
mkdir -p __pycache__; printf x > __pycache__/c.pyc"#;

fn flow(ctx: &TestContext) {
    ctx.ok(["create", "--name", "orig"]);
    ctx.ok(["exec", "orig", "--", WRITE]);
    let before = ctx.ok(["exec", "orig", "--", STATE]);
    let meta: serde_json::Value = serde_json::from_str(
        &ctx.ok(["snapshot", "create", "orig", "--tag", "case=cli", "--json"]),
    )
    .expect("json");
    let id = meta["id"].as_str().expect("id").to_owned();
    assert_eq!(meta["kind"], "full");
    let listed: serde_json::Value =
        serde_json::from_str(&ctx.ok(["snapshot", "list", "--tag", "case=cli", "--json"]))
            .expect("json");
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(ctx.ok(["snapshot", "show", &id]).contains(&id));
    ctx.ok(["delete", "orig"]);
    ctx.ok(["create", "--name", "back", "--from-snapshot", &id]);
    let after = ctx.ok(["exec", "back", "--", STATE]);
    let without_cache: String = before
        .lines()
        .filter(|l| !l.contains("__pycache__"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(after, without_cache, "byte for byte, caches left out");

    // An incremental snapshot and a restore by name.
    ctx.ok([
        "exec",
        "back",
        "--",
        "printf more > /home/sandbox/app/more.txt",
    ]);
    let inc = ctx.ok(["snapshot", "create", "back", "--parent", &id]);
    let inc = inc.trim();
    ctx.ok(["snapshot", "restore", "back", &id]);
    assert_eq!(ctx.ok(["exec", "back", "--", STATE]), without_cache);
    ctx.ok(["snapshot", "restore", "back", inc]);
    assert!(ctx.ok(["exec", "back", "--", STATE]).contains("more.txt"));

    // Hibernate and wake.
    let hibernated = ctx.ok(["hibernate", "back"]);
    let hibernated = hibernated.trim();
    assert_eq!(ctx.ok(["list", "--json"]).trim(), "[]");
    ctx.ok(["wake", hibernated, "--name", "woken"]);
    assert!(ctx.ok(["exec", "woken", "--", STATE]).contains("more.txt"));

    // Unknown ids are errors, and a failed create leaves nothing.
    let out = ctx.run(["create", "--name", "never", "--from-snapshot", "snap-nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no snapshot `snap-nope`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = ctx.ok(["list", "--json"]);
    assert!(!list.contains("never"), "{list}");
    ctx.ok(["delete", "woken"]);
    ctx.ok(["snapshot", "delete", inc]);
    ctx.ok(["snapshot", "delete", hibernated]);
    ctx.ok(["snapshot", "delete", &id]);
    assert_eq!(ctx.ok(["snapshot", "list", "--json"]).trim(), "[]");
}

#[test]
fn snapshot_flow_on_the_local_provider_with_no_configuration() {
    let Some(ctx) = TestContext::local() else {
        return;
    };
    flow(&ctx);
    assert!(
        ctx.path().join("data/do-app-sandbox/snapshots").is_dir(),
        "snapshots live under XDG_DATA_HOME"
    );
}

#[test]
fn snapshot_flow_through_the_emulator() {
    let Some(mut ctx) = TestContext::local() else {
        return;
    };
    let _emulator = ctx.start_emulator();
    flow(&ctx);
}
