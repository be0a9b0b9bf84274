//! MCP over streamable HTTP: the same [`SandboxServer`] behind `POST /mcp`, on a listener the
//! caller bound (loopback, normally), every request needing `Authorization: Bearer <token>`.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::server::{Cleanup, SandboxServer};

/// The path the MCP endpoint is served at.
pub const HTTP_PATH: &str = "/mcp";

/// A bearer token for [`SandboxServer::run_http`]: 64 random hex digits.
#[must_use]
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl SandboxServer {
    /// Serves MCP over streamable HTTP at [`HTTP_PATH`] on this listener until `shutdown`
    /// completes, then [`shuts down`](SandboxServer::shutdown). Requests without
    /// `Authorization: Bearer <token>` get 401. All clients share this server's sandboxes,
    /// cap and ownership.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a token shorter than 16 characters; [`Error::Service`] when the
    /// HTTP server fails.
    pub async fn run_http(
        self,
        listener: tokio::net::TcpListener,
        token: String,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Cleanup> {
        if token.len() < 16 {
            return Err(Error::Config(
                "the HTTP bearer token must have at least 16 characters".into(),
            ));
        }
        let local = listener
            .local_addr()
            .map_err(|e| Error::Service(e.to_string()))?;
        let stop = CancellationToken::new();
        let mut config = StreamableHttpServerConfig::default();
        config.cancellation_token = stop.clone();
        // The Host header must name this listener (no DNS rebinding from a browser).
        let mut hosts = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "[::1]".to_owned(),
        ];
        hosts.push(local.ip().to_string());
        config = config.with_allowed_hosts(hosts);
        let server = self.clone();
        let service = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let expected = Arc::new(format!("Bearer {token}"));
        let router = axum::Router::new()
            .nest_service(HTTP_PATH, service)
            .layer(middleware::from_fn_with_state(expected, require_token));
        tracing::info!(%local, "serving MCP over HTTP");
        let serving = axum::serve(listener, router).with_graceful_shutdown({
            let stop = stop.clone();
            async move {
                shutdown.await;
                stop.cancel();
            }
        });
        let result = serving.await.map_err(|e| Error::Service(e.to_string()));
        stop.cancel();
        let cleanup = self.shutdown().await;
        result.map(|()| cleanup)
    }
}

async fn require_token(
    State(expected): State<Arc<String>>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if constant_time_eq(given, expected.as_bytes()) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required: Authorization: Bearer <the token sandbox mcp printed>\n",
    )
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_compared_whole() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(constant_time_eq(a.as_bytes(), a.as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), b.as_bytes()));
        assert!(!constant_time_eq(&a.as_bytes()[..63], a.as_bytes()));
    }
}
