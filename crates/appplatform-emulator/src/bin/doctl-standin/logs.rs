//! `doctl apps logs`: resolving the app and deployment, then following the live WebSocket or
//! reading the historic URL.

use std::io::Write;

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::output::s;
use crate::websocket::{close_text, frame_data};
use crate::{CmdResult, Ctx, Failure, err};

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

pub(crate) async fn logs(ctx: &Ctx, rest: &[String]) -> CmdResult {
    let app_arg = &rest[0];
    let component = rest.get(1).cloned();
    let kind = ctx.args.flag("type").unwrap_or("run").to_ascii_uppercase();
    if !["BUILD", "DEPLOY", "RUN", "RUN_RESTARTED", "AUTOSCALE_EVENT"].contains(&kind.as_str()) {
        return err(format!(
            "Invalid log type {}",
            ctx.args.flag("type").unwrap_or_default()
        ));
    }
    let mut app_id = app_arg.clone();
    let mut dep_id = ctx.args.flag("deployment").unwrap_or("").to_owned();
    if !is_uuid(app_arg) || dep_id.is_empty() {
        let app = if is_uuid(app_arg) {
            ctx.client
                .call("GET", &format!("/v2/apps/{app_arg}"), None)
                .await?["app"]
                .clone()
        } else {
            let apps = ctx.client.list_all("/v2/apps", "apps").await?;
            match apps.into_iter().find(|a| s(a, "/spec/name") == *app_arg) {
                Some(a) => a,
                None => return err(format!("Cannot find app {app_arg}")),
            }
        };
        app_id = s(&app, "/id");
        if dep_id.is_empty() {
            dep_id = [
                s(&app, "/active_deployment/id"),
                s(&app, "/in_progress_deployment/id"),
            ]
            .into_iter()
            .find(|d| !d.is_empty())
            .unwrap_or_default();
            if dep_id.is_empty() {
                return err(format!(
                    "unable to retrieve logs; no deployment found for app {app_id}"
                ));
            }
        }
    }
    let follow = ctx.args.has("follow");
    let tail = ctx.args.flag("tail").unwrap_or("-1");
    let mut path = format!(
        "/v2/apps/{app_id}/deployments/{dep_id}/logs?type={kind}&follow={follow}&tail_lines={tail}"
    );
    if let Some(c) = &component {
        path.push_str(&format!("&component_name={c}"));
    }
    let answer = ctx.client.call("GET", &path, None).await?;
    let live = answer.get("live_url").and_then(Value::as_str).unwrap_or("");
    let no_prefix = ctx.args.has("no-prefix");
    let emit = |text: &str| {
        let mut out = std::io::stdout().lock();
        if no_prefix {
            for line in text.split_inclusive('\n') {
                let stripped = line.splitn(3, ' ').nth(2).unwrap_or(line);
                let _ = out.write_all(stripped.as_bytes());
            }
        } else {
            let _ = out.write_all(text.as_bytes());
        }
        let _ = out.flush();
    };
    if !live.is_empty() {
        let mut url =
            url::Url::parse(live).map_err(|e| Failure::Error(format!("parse \"{live}\": {e}")))?;
        let scheme = if url.scheme() == "http" { "ws" } else { "wss" };
        let _ = url.set_scheme(scheme);
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
                .await
                .map_err(|e| Failure::Error(format!("error connecting to websocket: {e}")))?;
        while let Some(msg) = socket.next().await {
            match msg {
                Ok(Message::Text(t)) => emit(&frame_data(t.as_bytes())?),
                Ok(Message::Binary(b)) => emit(&frame_data(&b)?),
                Ok(Message::Close(frame)) => {
                    let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                    let _ = socket.close(None).await;
                    if code == 1000 {
                        return Ok(());
                    }
                    return err(format!(
                        "error reading from websocket: {}",
                        close_text(code, frame.map(|f| f.reason.to_string()))
                    ));
                }
                Ok(_) => {}
                Err(_) => {
                    return err(
                        "error reading from websocket: websocket: close 1006 (abnormal closure): unexpected EOF",
                    );
                }
            }
        }
        return Ok(());
    }
    if let Some(first) = answer
        .get("historic_urls")
        .and_then(Value::as_array)
        .and_then(|u| u.first())
        .and_then(Value::as_str)
    {
        let text = reqwest::get(first)
            .await
            .map_err(|e| Failure::Error(format!("Get \"{first}\": {e}")))?
            .text()
            .await
            .unwrap_or_default();
        for line in text.lines() {
            emit(&format!("{line}\n"));
        }
        return Ok(());
    }
    eprintln!("Warning: No logs found for app component");
    Ok(())
}
