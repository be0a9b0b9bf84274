//! Request handlers, one module per resource.

pub(crate) mod admin;
pub(crate) mod apps;
pub(crate) mod deployments;
pub(crate) mod exec;
pub(crate) mod logs;
mod ws;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use doctl_driver::AppStatus;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::model::{AppRecord, Outcome, View};
use crate::server::{Shared, lock};

/// The REST routes under `/v2`.
pub(crate) fn api_routes() -> Router<Shared> {
    Router::new()
        .route("/v2/apps", get(apps::list).post(apps::create))
        .route(
            "/v2/apps/{app_id}",
            get(apps::get).put(apps::update).delete(apps::delete),
        )
        .route(
            "/v2/apps/{app_id}/deployments",
            get(deployments::list).post(deployments::create),
        )
        .route(
            "/v2/apps/{app_id}/deployments/{dep_id}",
            get(deployments::get),
        )
        .route("/v2/apps/{app_id}/instances", get(apps::instances))
        .route(
            "/v2/apps/{app_id}/components/{component}/exec",
            get(exec::exec_url),
        )
        .route(
            "/v2/apps/{app_id}/deployments/{dep_id}/components/{component}/exec",
            get(exec::exec_url_for_deployment),
        )
        .route(
            "/v2/apps/{app_id}/deployments/{dep_id}/logs",
            get(logs::deployment_logs),
        )
        .route(
            "/v2/apps/{app_id}/deployments/{dep_id}/components/{component}/logs",
            get(logs::deployment_component_logs),
        )
        .route("/v2/apps/{app_id}/logs", get(logs::app_logs))
        .route(
            "/v2/apps/{app_id}/components/{component}/logs",
            get(logs::app_component_logs),
        )
}

/// Any route the emulator does not serve: 501, which godo does not retry.
pub(crate) async fn not_implemented(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        format!(
            "the App Platform emulator does not implement {method} {}",
            uri.path()
        ),
    )
}

/// A 200 answer with a JSON body.
pub(crate) fn ok_json(body: &Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// A copy of one app's record, or 404.
pub(crate) fn find_app(state: &Shared, app_id: &str) -> Result<AppRecord, ApiError> {
    lock(&state.apps)
        .iter()
        .find(|a| a.id == app_id)
        .cloned()
        .ok_or_else(ApiError::not_found)
}

/// How every deployment of `app` stands now, newest first; asks the backend when a
/// deployment's walk is over, and stores what it learns.
pub(crate) async fn resolve(state: &Shared, app: &AppRecord) -> Vec<View> {
    let now = OffsetDateTime::now_utc();
    let mut views = Vec::with_capacity(app.deployments.len());
    let mut learned: Vec<(String, Outcome)> = Vec::new();
    let mut backend_status: Option<Result<AppStatus, doctl_driver::Error>> = None;
    for dep in &app.deployments {
        let view = if let Some(outcome) = &dep.outcome {
            outcome_view(outcome)
        } else if let Some(view) = dep.timeline_view(now) {
            view
        } else if let Some(reason) = &dep.doomed {
            let outcome = Outcome::Error {
                at: dep.created_at + dep.pace,
                reason: reason.clone(),
            };
            learned.push((dep.id.clone(), outcome.clone()));
            outcome_view(&outcome)
        } else {
            if backend_status.is_none() {
                let status = state.backend.get_app(&app.id).await.map(|a| a.status());
                backend_status = Some(status);
            }
            match &backend_status {
                Some(Ok(AppStatus::Active)) => {
                    let outcome = Outcome::Active {
                        at: now.max(dep.created_at + dep.pace),
                    };
                    learned.push((dep.id.clone(), outcome.clone()));
                    outcome_view(&outcome)
                }
                Some(Ok(AppStatus::Failed { reason, .. })) => {
                    let outcome = Outcome::Error {
                        at: now,
                        reason: reason
                            .clone()
                            .unwrap_or_else(|| "the app's container failed to start".to_owned()),
                    };
                    learned.push((dep.id.clone(), outcome.clone()));
                    outcome_view(&outcome)
                }
                Some(Err(err)) if err.is_not_found() => {
                    let outcome = Outcome::Error {
                        at: now,
                        reason: "the app's containers no longer exist".to_owned(),
                    };
                    learned.push((dep.id.clone(), outcome.clone()));
                    outcome_view(&outcome)
                }
                Some(Err(err)) => {
                    tracing::warn!(app_id = %app.id, %err, "backend status unavailable");
                    View::Deploying
                }
                _ => View::Deploying,
            }
        };
        views.push(view);
    }
    // Only the newest ACTIVE deployment is active; older ones were superseded.
    let mut seen_active = false;
    for view in &mut views {
        if let View::Active { at } = view {
            if seen_active {
                *view = View::Superseded { at: *at };
            }
            seen_active = true;
        }
    }
    if !learned.is_empty() {
        let mut apps = lock(&state.apps);
        if let Some(record) = apps.iter_mut().find(|a| a.id == app.id) {
            for (dep_id, outcome) in learned {
                if let Some(dep) = record.deployments.iter_mut().find(|d| d.id == dep_id) {
                    dep.outcome.get_or_insert(outcome);
                }
            }
        }
    }
    views
}

fn outcome_view(outcome: &Outcome) -> View {
    match outcome {
        Outcome::Active { at } => View::Active { at: *at },
        Outcome::Error { at, reason } => View::Error {
            at: *at,
            reason: reason.clone(),
        },
    }
}

/// Reads `page` and `per_page` (defaults 1 and 20, at most 200).
pub(crate) fn paging(
    query: &std::collections::HashMap<String, String>,
) -> Result<(usize, usize), ApiError> {
    let number = |key: &str, default: usize| -> Result<usize, ApiError> {
        match query.get(key) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::bad_request(format!("invalid {key} \"{v}\": must be a positive integer"))
            }),
        }
    };
    Ok((number("page", 1)?, number("per_page", 20)?.min(200)))
}

/// `links` and `meta` of a list answer, with absolute page URLs.
pub(crate) fn links_and_meta(
    base: &str,
    page: usize,
    per_page: usize,
    total: usize,
) -> (Value, Value) {
    let last = total.div_ceil(per_page).max(1);
    let url = |p: usize| format!("{base}?page={p}&per_page={per_page}");
    let mut pages = serde_json::Map::new();
    if page > 1 {
        pages.insert("first".into(), url(1).into());
        pages.insert("prev".into(), url(page - 1).into());
    }
    if page < last {
        pages.insert("next".into(), url(page + 1).into());
        pages.insert("last".into(), url(last).into());
    }
    let links = if pages.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({"pages": pages})
    };
    (links, serde_json::json!({"total": total}))
}
