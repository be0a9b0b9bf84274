//! The `doctl apps` command family: the dispatch of each subcommand (with the local checks
//! doctl makes before it needs a token), the simple get, list and delete calls, and `apps
//! create` with its app spec.

use std::io::Read;

use appplatform_emulator::godo::{self, encode_compact, reencode, strict_decode};
use serde_json::{Value, json};

use crate::args::Args;
use crate::console::console;
use crate::deployments::wait_for_deployment;
use crate::http::Client;
use crate::logs::logs;
use crate::output::{display_apps, display_deployments, display_instances, s};
use crate::{CmdResult, Ctx, Failure, err};

pub(crate) async fn run(args: Args, json_out: bool) -> CmdResult {
    let pos = args.positional.clone();
    if pos.first().map(String::as_str) != Some("apps") {
        return Err(Failure::Usage(format!(
            "unknown command {:?} for \"doctl\" (this stand-in implements `doctl apps …` only)",
            pos.first().cloned().unwrap_or_default()
        )));
    }
    let sub = pos.get(1).cloned().unwrap_or_default();
    let rest: Vec<String> = pos.iter().skip(2).cloned().collect();
    let canonical = match sub.as_str() {
        "create" | "c" => "create",
        "get" | "g" => "get",
        "list" | "ls" => "list",
        "delete" | "d" | "rm" => "delete",
        "list-deployments" | "lsd" => "list-deployments",
        "get-deployment" | "gd" => "get-deployment",
        "list-instances" => "list-instances",
        "logs" | "l" => "logs",
        "console" | "cs" => "console",
        other => {
            return Err(Failure::Usage(format!(
                "unknown command \"{other}\" for \"doctl apps\""
            )));
        }
    };
    let need = |n: usize| -> CmdResult {
        if rest.len() < n {
            return err(format!(
                "(apps.{canonical}) command is missing required arguments"
            ));
        }
        Ok(())
    };
    // Local checks that come before the token is needed.
    match canonical {
        "get" | "delete" | "list-deployments" | "list-instances" | "logs" => need(1)?,
        "get-deployment" | "console" => need(2)?,
        "create" if args.flag("spec").is_none() => {
            return err("(apps.create.spec) command is missing required arguments");
        }
        _ => {}
    }
    if canonical == "delete" && !args.has("force") {
        eprintln!(
            "Warning: Requires confirmation. Use the `--force` flag to continue without confirmation."
        );
        return err("Operation aborted.");
    }
    let spec = if canonical == "create" {
        Some(read_spec(args.flag("spec").unwrap_or("-"))?)
    } else {
        None
    };
    let client = Client::from_args(&args)?;
    let ctx = Ctx {
        args,
        json: json_out,
        client,
    };
    match canonical {
        "create" => create(&ctx, spec.unwrap_or(Value::Null)).await,
        "get" => {
            let app = ctx
                .client
                .call("GET", &format!("/v2/apps/{}", rest[0]), None)
                .await?;
            display_apps(&ctx, &[app["app"].clone()])
        }
        "list" => {
            let apps = ctx.client.list_all("/v2/apps", "apps").await?;
            display_apps(&ctx, &apps)
        }
        "delete" => {
            ctx.client
                .call("DELETE", &format!("/v2/apps/{}", rest[0]), None)
                .await?;
            eprintln!("Notice: App deleted");
            Ok(())
        }
        "list-deployments" => {
            let deps = ctx
                .client
                .list_all(&format!("/v2/apps/{}/deployments", rest[0]), "deployments")
                .await?;
            display_deployments(&ctx, &deps)
        }
        "get-deployment" => {
            let dep = ctx
                .client
                .call(
                    "GET",
                    &format!("/v2/apps/{}/deployments/{}", rest[0], rest[1]),
                    None,
                )
                .await?;
            display_deployments(&ctx, &[dep["deployment"].clone()])
        }
        "list-instances" => {
            let answer = ctx
                .client
                .call("GET", &format!("/v2/apps/{}/instances", rest[0]), None)
                .await?;
            display_instances(&ctx, answer.get("instances"))
        }
        "logs" => logs(&ctx, &rest).await,
        "console" => console(&ctx, &rest).await,
        _ => err("unreachable command"),
    }
}

fn read_spec(path: &str) -> Result<Value, Failure> {
    let text = if path == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(|e| Failure::Error(format!("reading app spec from standard input: {e}")))?;
        buf
    } else {
        match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return err(format!("opening app spec: {path} does not exist"));
            }
            Err(e) => return err(format!("opening app spec: {e}")),
        }
    };
    let value: Value = serde_yaml::from_str(&text)
        .map_err(|e| Failure::Error(format!("parsing app spec: {e}")))?;
    strict_decode(&value, &godo::APP_SPEC)
        .map_err(|e| Failure::Error(format!("parsing app spec: {e}")))?;
    Ok(reencode(&value, &godo::APP_SPEC))
}

async fn create(ctx: &Ctx, spec: Value) -> CmdResult {
    let mut body = serde_json::Map::new();
    body.insert("spec".into(), spec.clone());
    if let Some(project) = ctx.args.flag("project-id") {
        body.insert("project_id".into(), json!(project));
    }
    let body = format!("{}\n", encode_compact(&Value::Object(body)));
    let app = match ctx.client.call("POST", "/v2/apps", Some(body)).await {
        Ok(answer) => answer["app"].clone(),
        Err(Failure::Error(msg)) if ctx.args.has("upsert") && msg.contains(": 409 ") => {
            eprintln!("Notice: App already exists, updating");
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let apps = ctx.client.list_all("/v2/apps", "apps").await?;
            let Some(existing) = apps.iter().find(|a| s(a, "/spec/name") == name) else {
                return err("app not found");
            };
            let update =
                json!({"spec": spec, "update_all_source_versions": ctx.args.has("update-sources")});
            let answer = ctx
                .client
                .call(
                    "PUT",
                    &format!("/v2/apps/{}", s(existing, "/id")),
                    Some(format!("{}\n", encode_compact(&update))),
                )
                .await?;
            answer["app"].clone()
        }
        Err(other) => return Err(other),
    };
    let mut app = app;
    if ctx.args.has("wait") {
        eprintln!("Notice: App creation is in progress, waiting for app to be running");
        let app_id = s(&app, "/id");
        let dep_id = s(&app, "/pending_deployment/id");
        if let Err(e) = wait_for_deployment(ctx, &app_id, &dep_id).await {
            display_apps(ctx, std::slice::from_ref(&app))?;
            let msg = match e {
                Failure::Error(m) => m,
                other => return Err(other),
            };
            return err(format!(
                "1 error occurred:\n\t* app deployment couldn't enter `running` state: {msg}\n\n"
            ));
        }
        if let Ok(fresh) = ctx
            .client
            .call("GET", &format!("/v2/apps/{app_id}"), None)
            .await
        {
            app = fresh["app"].clone();
        }
    }
    eprintln!("Notice: App created");
    display_apps(ctx, &[app])
}
