//! `/v2/apps/{id}/deployments`: list, get, create.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::{find_app, links_and_meta, ok_json, paging, resolve};
use crate::error::ApiError;
use crate::handlers::apps::new_deployment;
use crate::model::View;
use crate::server::{Shared, lock};

/// `GET /v2/apps/{id}/deployments`, newest first.
pub(crate) async fn list(
    State(state): State<Shared>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page, per_page) = paging(&query)?;
    let app = find_app(&state, &app_id)?;
    let views = resolve(&state, &app).await;
    let total = app.deployments.len();
    let deployments: Vec<Value> = app
        .deployments
        .iter()
        .zip(&views)
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(d, v)| d.to_json(v))
        .collect();
    let base = format!(
        "http://{}/v2/apps/{app_id}/deployments",
        state.host(&headers)
    );
    let (links, meta) = links_and_meta(&base, page, per_page, total);
    Ok(ok_json(
        &json!({"deployments": deployments, "links": links, "meta": meta}),
    ))
}

/// `GET /v2/apps/{id}/deployments/{dep}`.
pub(crate) async fn get(
    State(state): State<Shared>,
    Path((app_id, dep_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let app = find_app(&state, &app_id)?;
    let index = app
        .deployments
        .iter()
        .position(|d| d.id == dep_id)
        .ok_or_else(ApiError::not_found)?;
    let views = resolve(&state, &app).await;
    Ok(ok_json(
        &json!({"deployment": app.deployments[index].to_json(&views[index])}),
    ))
}

/// `POST /v2/apps/{id}/deployments` (`{"force_build": bool}`): a new deployment of the
/// current spec.
pub(crate) async fn create(
    State(state): State<Shared>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !body.is_empty() {
        crate::handlers::apps::parse_body(&headers, &body, &["force_build"])?;
    }
    let deployment = {
        let mut apps = lock(&state.apps);
        let record = apps
            .iter_mut()
            .find(|a| a.id == app_id)
            .ok_or_else(ApiError::not_found)?;
        let deployment = new_deployment(&state, &record.spec, "manual");
        record.deployments.insert(0, deployment.clone());
        deployment
    };
    Ok(ok_json(
        &json!({"deployment": deployment.to_json(&View::PendingBuild)}),
    ))
}
