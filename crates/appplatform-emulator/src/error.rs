//! Errors: what the emulator answers when a request fails, and what can go wrong starting it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An App Platform error answer: status and `{"id","message","request_id"}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub id: &'static str,
    pub message: String,
    /// `retry-after` seconds (429 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            id,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 404 for a missing app, deployment or component.
    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "The resource you were accessing could not be found.",
        )
    }

    /// 401 for a missing or wrong token.
    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unable to authenticate you",
        )
    }

    /// 400 with a message.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 for a spec that fails validation.
    pub(crate) fn invalid_spec(field: &str, reason: &str) -> Self {
        Self::bad_request(format!(
            "error validating app spec field \"{field}\": {reason}"
        ))
    }

    /// 409 for a taken app name.
    pub(crate) fn conflict() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "conflict",
            "an app with this name already exists",
        )
    }

    /// 500 for a backend failure.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// 429 with `retry-after`.
    pub(crate) fn rate_limited(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "API Rate limit exceeded.",
            )
        }
    }

    /// Maps a backend error to the answer App Platform would give.
    pub(crate) fn from_backend(err: &doctl_driver::Error) -> Self {
        use doctl_driver::Error as E;
        match err {
            E::NotFound { .. } => Self::not_found(),
            E::NameTaken { .. } => Self::conflict(),
            E::InvalidSpec { field, message } => match field {
                Some(field) => Self::invalid_spec(field, message),
                None => Self::bad_request(message.clone()),
            },
            E::InvalidArgument { name, reason } => Self::bad_request(format!("{name}: {reason}")),
            other => Self::internal(format!("backend error: {other}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let body = json!({"id": self.id, "message": self.message, "request_id": request_id});
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            headers.insert("x-request-id", v);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No backend was given to the builder.
    #[error("the emulator needs a backend: call `Emulator::builder().backend(platform)`")]
    NoBackend,
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
