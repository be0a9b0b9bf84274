//! `/v2/apps`: create, list, get, update, delete; instances.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tracing::Instrument;

use super::{find_app, links_and_meta, ok_json, paging, resolve};
use crate::error::ApiError;
use crate::godo;
use crate::model::{AppRecord, DeploymentRecord, View};
use crate::server::{Shared, lock};

/// Parses a request body (JSON, or YAML when the content type says so) into an object whose
/// keys are all in `allowed`.
pub(crate) fn parse_body(
    headers: &HeaderMap,
    body: &[u8],
    allowed: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let yaml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("yaml"));
    let value: Value = if yaml {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?
    };
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "invalid request body: expected a JSON object",
        ));
    };
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "invalid request body: unknown field \"{key}\""
        )));
    }
    Ok(map)
}

/// Checks a request's `spec` the way App Platform does; returns it stored and parsed.
pub(crate) fn checked_spec(
    body: &Map<String, Value>,
) -> Result<(Value, appspec::AppSpec), ApiError> {
    let Some(spec_value) = body.get("spec").filter(|v| !v.is_null()) else {
        return Err(ApiError::invalid_spec("spec", "an app spec is required"));
    };
    if !spec_value.is_object() {
        return Err(ApiError::bad_request(
            "invalid request body: spec must be an object",
        ));
    }
    let spec: appspec::AppSpec = serde_json::from_value(spec_value.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid request body: spec: {e}")))?;
    if let Err(err) = spec.validate() {
        return Err(match err.field() {
            Some(field) => ApiError::invalid_spec(field, &err.reason()),
            None => ApiError::bad_request(err.api_message()),
        });
    }
    if let Some(field) = godo::check_spec(spec_value) {
        return Err(ApiError::invalid_spec(&field, "unknown field"));
    }
    let mut stored = spec_value.clone();
    add_default_ingress(&mut stored);
    Ok((stored, spec))
}

/// App Platform routes `/` to the only service of an app that has no ingress rules.
fn add_default_ingress(spec: &mut Value) {
    let Value::Object(map) = spec else { return };
    if map.contains_key("ingress") {
        return;
    }
    let services: Vec<String> = match map.get("services") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect(),
        _ => return,
    };
    if let [only] = services.as_slice() {
        map.insert(
            "ingress".into(),
            json!({"rules": [{"match": {"path": {"prefix": "/"}}, "component": {"name": only}}]}),
        );
    }
}

/// A new deployment record for `spec`, doomed when a fault says so.
pub(crate) fn new_deployment(state: &Shared, spec: &Value, cause: &str) -> DeploymentRecord {
    DeploymentRecord {
        id: uuid::Uuid::new_v4().to_string(),
        spec: spec.clone(),
        cause: cause.to_owned(),
        created_at: OffsetDateTime::now_utc(),
        pace: time::Duration::try_from(state.pace).unwrap_or(time::Duration::ZERO),
        doomed: state.faults.take_deployment_failure(),
        outcome: None,
    }
}

/// Releases a reserved name when dropped.
struct Reservation<'a> {
    state: &'a Shared,
    name: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        lock(&self.state.reserved).remove(&self.name);
    }
}

/// `POST /v2/apps`.
pub(crate) async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_body(&headers, &body, &["spec", "project_id"])?;
    let (stored, spec) = checked_spec(&body)?;
    let name = spec.name.clone();
    let _reservation = {
        let apps = lock(&state.apps);
        let mut reserved = lock(&state.reserved);
        if apps.iter().any(|a| a.name == name) || reserved.contains(&name) {
            return Err(ApiError::conflict());
        }
        reserved.insert(name.clone());
        Reservation {
            state: &state,
            name: name.clone(),
        }
    };
    let app = state
        .backend
        .create_app(&spec)
        .instrument(tracing::info_span!("create_app", %name))
        .await
        .map_err(|e| ApiError::from_backend(&e))?;
    let now = OffsetDateTime::now_utc();
    let record = AppRecord {
        id: app.id.clone(),
        name,
        spec: stored.clone(),
        created_at: now,
        updated_at: now,
        deployments: vec![new_deployment(&state, &stored, "app created")],
        backend_live_url: app.live_url.clone(),
    };
    let answer = json!({"app": record.to_json(&[View::PendingBuild], true)});
    lock(&state.apps).push(record);
    tracing::info!(app_id = %app.id, "app created");
    Ok(ok_json(&answer))
}

/// `GET /v2/apps`.
pub(crate) async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page, per_page) = paging(&query)?;
    let all: Vec<AppRecord> = lock(&state.apps).clone();
    let total = all.len();
    let mut apps = Vec::new();
    for app in all.iter().skip((page - 1) * per_page).take(per_page) {
        let views = resolve(&state, app).await;
        let fresh = find_app(&state, &app.id).unwrap_or_else(|_| app.clone());
        apps.push(fresh.to_json(&views, false));
    }
    let base = format!("http://{}/v2/apps", state.host(&headers));
    let (links, meta) = links_and_meta(&base, page, per_page, total);
    Ok(ok_json(
        &json!({"apps": apps, "links": links, "meta": meta}),
    ))
}

/// `GET /v2/apps/{id}`.
pub(crate) async fn get(
    State(state): State<Shared>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    let app = find_app(&state, &app_id)?;
    let views = resolve(&state, &app).await;
    Ok(ok_json(&json!({"app": app.to_json(&views, false)})))
}

/// `PUT /v2/apps/{id}`: records the new spec and a deployment for it. The backend keeps
/// running what it runs (the `Platform` seam has no update).
pub(crate) async fn update(
    State(state): State<Shared>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    find_app(&state, &app_id)?;
    let body = parse_body(&headers, &body, &["spec", "update_all_source_versions"])?;
    let (stored, spec) = checked_spec(&body)?;
    let record = {
        let mut apps = lock(&state.apps);
        if apps.iter().any(|a| a.name == spec.name && a.id != app_id) {
            return Err(ApiError::conflict());
        }
        let record = apps
            .iter_mut()
            .find(|a| a.id == app_id)
            .ok_or_else(ApiError::not_found)?;
        record.name = spec.name.clone();
        record.spec = stored.clone();
        record.updated_at = OffsetDateTime::now_utc();
        record
            .deployments
            .insert(0, new_deployment(&state, &stored, "app spec updated"));
        record.clone()
    };
    let views = resolve(&state, &record).await;
    let mut app = record.to_json(&views, false);
    if let (Value::Object(map), Some(newest)) = (&mut app, record.deployments.first()) {
        map.insert(
            "pending_deployment".into(),
            newest.to_json(&View::PendingBuild),
        );
    }
    Ok(ok_json(&json!({"app": app})))
}

/// `DELETE /v2/apps/{id}`.
pub(crate) async fn delete(
    State(state): State<Shared>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    find_app(&state, &app_id)?;
    match state.backend.delete_app(&app_id).await {
        Ok(()) => {}
        Err(err) if err.is_not_found() => {}
        Err(err) => return Err(ApiError::from_backend(&err)),
    }
    lock(&state.apps).retain(|a| a.id != app_id);
    lock(&state.tickets).retain(|_, t| match t {
        crate::server::Ticket::Exec(target) => target.app_id != app_id,
        crate::server::Ticket::LiveLogs { request, .. }
        | crate::server::Ticket::HistoricLogs { request, .. } => request.app_id != app_id,
    });
    tracing::info!(%app_id, "app deleted");
    Ok(ok_json(&json!({"id": app_id})))
}

/// `GET /v2/apps/{id}/instances`.
pub(crate) async fn instances(
    State(state): State<Shared>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    find_app(&state, &app_id)?;
    let instances = state
        .backend
        .list_instances(&app_id)
        .await
        .map_err(|e| ApiError::from_backend(&e))?;
    if instances.is_empty() {
        return Ok(ok_json(&json!({})));
    }
    let list: Vec<Value> = instances
        .iter()
        .map(|i| {
            let mut m = Map::new();
            m.insert("component_name".into(), json!(i.component_name));
            m.insert("instance_name".into(), json!(i.instance_name));
            if let Some(alias) = &i.instance_alias {
                m.insert("instance_alias".into(), json!(alias));
            }
            m.insert("component_type".into(), json!(i.component_type));
            Value::Object(m)
        })
        .collect();
    Ok(ok_json(&json!({"instances": list})))
}
