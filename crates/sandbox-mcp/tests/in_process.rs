//! The server in-process, spoken to by rmcp's own client over an in-memory duplex pipe: on
//! the local provider and through the App Platform emulator with both drivers (skipped, with a
//! reason, where local sandboxes cannot run; failed under SANDBOX_REQUIRE_LOCAL=1).

use std::time::Duration;

use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use sandbox_mcp::{Config, SandboxServer};
use sandbox_testkit::Via;
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

async fn call(client: &Client, tool: &'static str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments are an object")
    };
    tokio::time::timeout(
        Duration::from_secs(180),
        client.call_tool(CallToolRequestParams::new(tool).with_arguments(arguments)),
    )
    .await
    .unwrap_or_else(|_| panic!("{tool}: no answer within 180 s"))
    .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

async fn ok(client: &Client, tool: &'static str, arguments: Value) -> Value {
    let result = call(client, tool, arguments).await;
    assert_eq!(result.is_error, Some(false), "{tool}: {result:?}");
    result.structured_content.expect("structured content")
}

/// The whole round of the "done when" through one platform, then the server's
/// shutdown deleting what is left.
async fn round_trip(via: Via) {
    let Some(target) = sandbox_testkit::target(via).await else {
        return;
    };
    let server = SandboxServer::with_platform(
        target.platform.clone(),
        format!("{via:?}"),
        Config::default(),
    )
    .expect("server");
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    let (server_read, server_write) = tokio::io::split(server_io);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(server_read, server_write, async {
        let _ = stopped.await;
    }));
    let client: Client = ().serve(client_io).await.expect("handshake");

    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.len() >= 18, "{}", tools.len());
    let exec = tools.iter().find(|t| t.name == "exec").expect("exec");
    assert_eq!(
        exec.annotations.as_ref().and_then(|a| a.read_only_hint),
        Some(false)
    );

    let created = ok(&client, "create_sandbox", json!({"image": "python"})).await;
    let name = created["sandbox"].as_str().expect("name").to_owned();
    let out = ok(
        &client,
        "exec",
        json!({"sandbox": name, "command": "python3 -c 'print(6*7)'"}),
    )
    .await;
    assert_eq!(out["stdout"], "42\n");

    let bytes = "AAEC/wD+YWJj"; // 00 01 02 ff 00 fe 'abc'
    ok(
        &client,
        "write_file",
        json!({"sandbox": name, "path": "x/y.bin", "base64": bytes}),
    )
    .await;
    let back = ok(
        &client,
        "read_file",
        json!({"sandbox": name, "path": "x/y.bin"}),
    )
    .await;
    assert_eq!(back["base64"], bytes);

    let started = ok(
        &client,
        "exec_start",
        json!({"sandbox": name, "command": "echo one; sleep 0.5; echo two"}),
    )
    .await;
    let mut stdout = String::new();
    for _ in 0..50 {
        let polled = ok(
            &client,
            "exec_poll",
            json!({"exec_id": started["exec_id"], "wait_seconds": 5}),
        )
        .await;
        stdout.push_str(polled["stdout"].as_str().expect("stdout"));
        if polled["running"] == false && polled["more_output"] == false {
            assert_eq!(polled["exit_code"], 0);
            break;
        }
    }
    assert_eq!(stdout, "one\ntwo\n");

    // A second sandbox, left for the shutdown to delete.
    let left = ok(&client, "create_sandbox", json!({"image": "node"})).await;
    let left = left["sandbox"].as_str().expect("name").to_owned();
    ok(&client, "delete_sandbox", json!({"sandbox": name})).await;

    let _ = stop.send(());
    let cleanup = tokio::time::timeout(Duration::from_secs(120), serving)
        .await
        .expect("the server stops")
        .expect("no panic")
        .expect("served");
    assert_eq!(cleanup.deleted, [left]);
    assert!(cleanup.failed.is_empty(), "{:?}", cleanup.failed);
    let apps = target.platform.list_apps().await.expect("list apps");
    assert!(apps.is_empty(), "{apps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_the_local_provider() {
    round_trip(Via::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_through_the_emulator_with_the_api_driver() {
    round_trip(Via::Api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_through_the_emulator_with_the_doctl_driver() {
    round_trip(Via::Doctl).await;
}
