//! Logs: the URL endpoints, the live WebSocket and the historic download.
//!
//! With `follow=true` the API answers `{"live_url":"http://HOST/logs/live?token=T"}` (doctl
//! turns `http` into `ws`); otherwise `{"historic_urls":["http://HOST/logs/historic?token=T"]}`,
//! fetched without auth like a presigned URL. Lines read `<component> <RFC 3339 time> <text>`,
//! the layout doctl's `--no-prefix` strips.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use doctl_driver::{LogKind, LogsRequest};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use time::OffsetDateTime;

use super::ws::{self, Message, WebSocket, WebSocketError, WebSocketUpgrade};
use super::{find_app, ok_json, resolve};
use crate::error::ApiError;
use crate::model::{components_of, rfc3339};
use crate::server::{Shared, Ticket, lock};

type Q = Query<HashMap<String, String>>;

/// `GET /v2/apps/{id}/deployments/{dep}/logs` (doctl's path).
pub(crate) async fn deployment_logs(
    State(state): State<Shared>,
    Path((app_id, dep_id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Q,
) -> Result<Response, ApiError> {
    urls(&state, &headers, &app_id, Some(&dep_id), None, &query).await
}

/// `GET /v2/apps/{id}/deployments/{dep}/components/{c}/logs`.
pub(crate) async fn deployment_component_logs(
    State(state): State<Shared>,
    Path((app_id, dep_id, component)): Path<(String, String, String)>,
    headers: HeaderMap,
    Query(query): Q,
) -> Result<Response, ApiError> {
    urls(
        &state,
        &headers,
        &app_id,
        Some(&dep_id),
        Some(component),
        &query,
    )
    .await
}

/// `GET /v2/apps/{id}/logs` (the active deployment).
pub(crate) async fn app_logs(
    State(state): State<Shared>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    Query(query): Q,
) -> Result<Response, ApiError> {
    urls(&state, &headers, &app_id, None, None, &query).await
}

/// `GET /v2/apps/{id}/components/{c}/logs`.
pub(crate) async fn app_component_logs(
    State(state): State<Shared>,
    Path((app_id, component)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Q,
) -> Result<Response, ApiError> {
    urls(&state, &headers, &app_id, None, Some(component), &query).await
}

async fn urls(
    state: &Shared,
    headers: &HeaderMap,
    app_id: &str,
    dep_id: Option<&str>,
    component: Option<String>,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let app = find_app(state, app_id)?;
    if let Some(dep_id) = dep_id {
        if !app.deployments.iter().any(|d| d.id == dep_id) {
            return Err(ApiError::not_found());
        }
    }
    let component = component.or_else(|| {
        query
            .get("component_name")
            .filter(|c| !c.is_empty())
            .cloned()
    });
    let components = components_of(&app.spec);
    if let Some(c) = &component {
        if !components.iter().any(|(name, _)| name == c) {
            return Err(ApiError::not_found());
        }
    }
    let kind = match query.get("type").map(|t| t.to_ascii_uppercase()).as_deref() {
        None | Some("RUN") | Some("RUN_RESTARTED") => LogKind::Run,
        Some("BUILD") => LogKind::Build,
        Some("DEPLOY") => LogKind::Deploy,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid log type \"{other}\": expected BUILD, DEPLOY, RUN or RUN_RESTARTED"
            )));
        }
    };
    let follow = query.get("follow").is_some_and(|f| f == "true");
    let tail = query
        .get("tail_lines")
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|t| *t > 0);
    // Logs exist once something was deployed.
    let views = resolve(state, &app).await;
    if views.is_empty() {
        return Ok(ok_json(&json!({"live_url": "", "historic_urls": []})));
    }
    let label = component
        .clone()
        .or_else(|| components.first().map(|(n, _)| n.clone()))
        .unwrap_or_else(|| app.name.clone());
    let mut request = LogsRequest::new(app_id, label.clone())
        .with_kind(kind)
        .with_follow(follow);
    request.component = component;
    if let Some(t) = tail {
        request = request.with_tail(u32::try_from(t).unwrap_or(u32::MAX));
    }
    let host = state.host(headers);
    if follow {
        let token = state.issue(Ticket::LiveLogs { request, label });
        Ok(ok_json(
            &json!({"live_url": format!("http://{host}/logs/live?token={token}")}),
        ))
    } else {
        let expires = OffsetDateTime::now_utc() + time::Duration::minutes(15);
        let token = state.issue(Ticket::HistoricLogs {
            request,
            label,
            expires,
        });
        Ok(ok_json(
            &json!({"historic_urls": [format!("http://{host}/logs/historic?token={token}")]}),
        ))
    }
}

fn prefixed(label: &str, line: &str) -> String {
    format!("{label} {} {line}", rfc3339(OffsetDateTime::now_utc()))
}

/// `GET /logs/live?token=T`: a WebSocket of `{"data":"<line>\n"}` frames, close 1000 at the end.
pub(crate) async fn live(
    State(state): State<Shared>,
    Query(query): Q,
    upgrade: Result<WebSocketUpgrade, WebSocketError>,
) -> Response {
    let ticket = query
        .get("token")
        .and_then(|t| lock(&state.tickets).remove(t));
    let Some(Ticket::LiveLogs { request, label }) = ticket else {
        return (StatusCode::FORBIDDEN, "forbidden\n").into_response();
    };
    let Ok(upgrade) = upgrade else {
        return (StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n").into_response();
    };
    upgrade.on_upgrade(move |socket| stream_logs(state, request, label, socket))
}

async fn stream_logs(state: Shared, request: LogsRequest, label: String, socket: WebSocket) {
    let (mut sink, mut incoming) = socket.split();
    let stopped = crate::server::stopped(state.shutdown.clone());
    tokio::pin!(stopped);
    let (code, reason) = match state.backend.logs(&request).await {
        Err(err) => (1011, format!("logs unavailable: {err}")),
        Ok(mut lines) => loop {
            tokio::select! {
                line = lines.next() => match line {
                    Some(Ok(line)) => {
                        let frame = json!({"data": format!("{}\n", prefixed(&label, &line))}).to_string();
                        if sink.send(Message::text(frame)).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(err)) => break (1011, format!("logs interrupted: {err}")),
                    None => break (1000, String::new()),
                },
                msg = incoming.next() => match msg {
                    Some(Ok(msg)) if !msg.is_close() => {}
                    _ => return,
                },
                () = &mut stopped => break (1001, "emulator shutting down".to_owned()),
            }
        },
    };
    let _ = sink.send(ws::close(code, &reason)).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(msg)) = incoming.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await;
}

/// `GET /logs/historic?token=T`: the logs so far as text, no auth (like a presigned URL).
pub(crate) async fn historic(State(state): State<Shared>, Query(query): Q) -> Response {
    let ticket = query
        .get("token")
        .and_then(|t| lock(&state.tickets).get(t).cloned());
    let Some(Ticket::HistoricLogs {
        request,
        label,
        expires,
    }) = ticket
    else {
        return (StatusCode::FORBIDDEN, "forbidden\n").into_response();
    };
    if OffsetDateTime::now_utc() > expires {
        return (StatusCode::FORBIDDEN, "expired\n").into_response();
    }
    let mut lines = match state.backend.logs(&request).await {
        Ok(lines) => lines,
        Err(err) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("logs unavailable: {err}\n"),
            )
                .into_response();
        }
    };
    let mut text = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, lines.next()).await {
            Ok(Some(Ok(line))) => text.push(prefixed(&label, &line)),
            Ok(Some(Err(err))) => {
                tracing::warn!(%err, "historic logs cut short");
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    (
        StatusCode::OK,
        [("content-type", "text/plain")],
        text.join("\n"),
    )
        .into_response()
}
