//! The admin endpoint, outside the emulated API: `/_emulator/...`.
//!
//! - `POST /_emulator/faults` with a [`FaultRequest`](crate::FaultRequest) JSON body queues a
//!   fault, for example `{"fault":"http","kind":"rate_limited","retry_after":1,"count":3}`.
//! - `GET /_emulator/requests` lists the requests received (authorization redacted).
//! - `GET /_emulator/health` answers `ok`.
//!
//! Admin calls need the same bearer token as the API.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::faults::FaultRequest;
use crate::handlers::ok_json;
use crate::server::{Shared, lock};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/_emulator/faults", post(faults))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/health", get(|| async { "ok\n" }))
}

fn check(state: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = format!("Bearer {}", state.token);
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) if v == expected => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

async fn faults(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check(&state, &headers)?;
    let request: FaultRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid fault request: {e}")))?;
    tracing::info!(?request, "fault queued");
    state.faults.apply(request);
    Ok((StatusCode::NO_CONTENT, ()).into_response())
}

async fn requests(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    check(&state, &headers)?;
    let list: Vec<Value> = lock(&state.requests)
        .iter()
        .map(|r| {
            let headers: Vec<Value> = r
                .headers
                .iter()
                .map(|(n, v)| {
                    let v = if n.eq_ignore_ascii_case("authorization") {
                        "[REDACTED]"
                    } else {
                        v
                    };
                    json!([n, v])
                })
                .collect();
            json!({
                "method": r.method,
                "path": r.path,
                "query": r.query,
                "headers": headers,
                "body": String::from_utf8_lossy(&r.body),
            })
        })
        .collect();
    Ok(ok_json(&Value::Array(list)))
}
