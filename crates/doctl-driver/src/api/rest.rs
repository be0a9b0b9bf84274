//! The REST half of [`DoApi`](super::DoApi): requests, retries, and App Platform's errors
//! mapped to this crate's [`Error`].

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, RateLimits, Result};
use crate::token::Token;
use crate::wire::ApiErrorBody;

/// When a request may be sent again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reads and deletes: on 429, 5xx (but 501) and any transport failure.
    Safe,
    /// Creates: only where the API certainly did nothing (429, or a connection that never
    /// opened), so a retry can never make two apps.
    Once,
}

/// Retry limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff; it doubles each retry.
    pub wait_min: Duration,
    /// The longest single wait, `retry-after` included.
    pub wait_max: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based), `retry_after` winning when given.
    ///
    /// `None` when the API asked for a longer wait than `wait_max`: the caller gives up
    /// rather than sleep that long.
    pub(crate) fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(asked) = retry_after {
            return (asked <= self.wait_max).then_some(asked);
        }
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        Some(self.wait_min.saturating_mul(factor).min(self.wait_max))
    }
}

/// What a request is about, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    /// `GET /v2/apps/abc`.
    pub operation: String,
    /// What a 404 means: "app `abc`".
    pub what: String,
    /// The app name, for requests carrying a spec (400 and 409 then concern it).
    pub name: Option<String>,
}

/// The REST client: base URL, token, retries.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    pub base: Url,
    pub token: Token,
    pub retry: RetryPolicy,
    pub timeout: Duration,
}

impl Http {
    /// `base` joined with path segments (each percent-encoded) and query pairs.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| Error::InvalidArgument {
                    name: "base_url".into(),
                    reason: format!("`{}` cannot be a base URL", self.base),
                })?;
            path.clear();
            path.extend(segments);
        }
        if query.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut()
                .clear()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    /// Sends a request with retries and decodes the JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        replay: Replay,
        subject: &Subject,
    ) -> Result<T> {
        let bytes = self.send(method, url, body, replay, subject).await?;
        serde_json::from_slice(&bytes).map_err(|err| {
            Error::other_with(
                format!(
                    "`{}`: the API's answer is not the JSON expected",
                    subject.operation
                ),
                err,
            )
        })
    }

    /// Sends a request with retries; returns the body of a 2xx answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        replay: Replay,
        subject: &Subject,
    ) -> Result<Vec<u8>> {
        let mut retry = 0u32;
        loop {
            let outcome = self
                .attempt(method.clone(), url.clone(), body.clone())
                .await;
            let (error, retryable, retry_after) = match outcome {
                Ok((status, _, bytes)) if status.is_success() => return Ok(bytes),
                Ok((status, headers, bytes)) => {
                    let retry_after = retry_after(&headers);
                    let retryable = match replay {
                        Replay::Safe => {
                            status == StatusCode::TOO_MANY_REQUESTS
                                || (status.is_server_error()
                                    && status != StatusCode::NOT_IMPLEMENTED)
                        }
                        Replay::Once => status == StatusCode::TOO_MANY_REQUESTS,
                    };
                    let error = status_error(status, &headers, &bytes, subject);
                    (error, retryable, retry_after)
                }
                Err(failure) => {
                    let retryable = match replay {
                        Replay::Safe => true,
                        Replay::Once => failure.never_sent,
                    };
                    (failure.error, retryable, None)
                }
            };
            if !retryable || retry >= self.retry.max_retries {
                if retry > 0 {
                    tracing::debug!(attempts = retry + 1, "giving up");
                }
                return Err(error);
            }
            let Some(wait) = self.retry.wait(retry, retry_after) else {
                tracing::debug!(?retry_after, "the API asks for a longer wait than allowed");
                return Err(error);
            };
            // A warning, so that a command-line user sees each attempt rather than a silence.
            tracing::warn!(
                "{} failed ({error}); try {} of {} in {:.1} s",
                subject.operation,
                retry + 2,
                self.retry.max_retries + 1,
                wait.as_secs_f64()
            );
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> std::result::Result<(StatusCode, HeaderMap, Vec<u8>), Failure> {
        let operation = format!("{method} {}", url.path());
        let mut request = self
            .client
            .request(method.clone(), url)
            .bearer_auth(self.token.expose())
            .header(http::header::ACCEPT, "application/json")
            .timeout(self.timeout);
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        } else if method != Method::GET {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let response = request
            .send()
            .await
            .map_err(|err| Failure::from_reqwest(err, &operation, self.timeout))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| Failure::from_reqwest(err, &operation, self.timeout))?;
        Ok((status, headers, bytes.to_vec()))
    }
}

/// A request that got no answer.
pub(crate) struct Failure {
    pub error: Error,
    /// The connection never opened, so the server saw nothing.
    pub never_sent: bool,
}

impl Failure {
    pub(crate) fn from_reqwest(err: reqwest::Error, operation: &str, timeout: Duration) -> Self {
        let never_sent = err.is_connect();
        // `without_url`: URLs handed out by the API can carry credentials in their query.
        let err = err.without_url();
        let error = if err.is_timeout() {
            Error::Timeout {
                operation: operation.to_owned(),
                timeout,
            }
        } else {
            Error::Network {
                message: format!("`{operation}`: {}", chain(&err)),
            }
        };
        Failure { error, never_sent }
    }
}

/// An error and its causes on one line (reqwest's own message says little).
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// `retry-after` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let left = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// The `ratelimit-*` headers, when all three are there.
pub(crate) fn rate_limits(headers: &HeaderMap) -> Option<RateLimits> {
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    Some(RateLimits {
        limit: number("ratelimit-limit")?,
        remaining: number("ratelimit-remaining")?,
        reset: number("ratelimit-reset")?,
    })
}

/// The field named by App Platform's `error validating app spec field "<path>": ...`.
pub(crate) fn spec_field(message: &str) -> Option<String> {
    let rest = message.split_once("field \"")?.1;
    let field = rest.split_once('"')?.0;
    (!field.is_empty()).then(|| field.to_owned())
}

/// Maps a non-2xx answer to a typed error.
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    subject: &Subject,
) -> Error {
    let parsed: Option<ApiErrorBody> = serde_json::from_slice(body).ok();
    let message = match &parsed {
        Some(body) if !body.message.is_empty() => body.message.clone(),
        _ => {
            let text = String::from_utf8_lossy(body);
            let line = text.lines().map(str::trim).find(|l| !l.is_empty());
            line.unwrap_or("").chars().take(300).collect()
        }
    };
    let request_id = parsed
        .as_ref()
        .map(|b| b.request_id.clone())
        .filter(|id| !id.is_empty())
        .or_else(|| {
            headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    let with_request = |text: String| match &request_id {
        Some(id) => format!("{text} (request {id})"),
        None => text,
    };
    match status.as_u16() {
        401 | 403 => Error::NotAuthenticated {
            message: with_request(if message.is_empty() {
                format!("HTTP {}", status.as_u16())
            } else {
                message
            }),
        },
        404 => Error::not_found(subject.what.clone()),
        409 => match &subject.name {
            Some(name) => Error::NameTaken { name: name.clone() },
            None => Error::other(with_request(format!(
                "`{}` conflicts: {message}",
                subject.operation
            ))),
        },
        400 | 422 => {
            let field = spec_field(&message);
            if field.is_some() || subject.name.is_some() {
                Error::InvalidSpec { field, message }
            } else {
                Error::InvalidArgument {
                    name: subject.operation.clone(),
                    reason: with_request(message),
                }
            }
        }
        429 => Error::RateLimited {
            retry_after: retry_after(headers),
            limits: rate_limits(headers),
        },
        502..=504 => Error::Network {
            message: with_request(format!(
                "`{}`: the API gateway answered {}{}",
                subject.operation,
                status.as_u16(),
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            )),
        },
        code => Error::other(with_request(format!(
            "`{}` failed: the API answered {code}{}",
            subject.operation,
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        ))),
    }
}

/// A URL with the values of credential-like query parameters replaced, for messages and logs.
pub(crate) fn redact_url(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        let pairs: Vec<String> = url
            .query_pairs()
            .map(|(k, v)| {
                let key = k.to_ascii_lowercase();
                let secret = ["token", "signature", "credential", "key"]
                    .iter()
                    .any(|word| key.contains(word));
                if secret {
                    format!("{k}=[REDACTED]")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(name: Option<&str>) -> Subject {
        Subject {
            operation: "POST /v2/apps".into(),
            what: "app `x`".into(),
            name: name.map(str::to_owned),
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_retries: 5,
            wait_min: Duration::from_secs(1),
            wait_max: Duration::from_secs(30),
        };
        let waits: Vec<u64> = (0..7)
            .map(|n| policy.wait(n, None).unwrap().as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            policy.wait(3, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(policy.wait(0, Some(Duration::from_secs(31))), None);
        assert_eq!(policy.wait(40, None), Some(Duration::from_secs(30)));
    }

    #[test]
    fn statuses_map_to_typed_errors() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        headers.insert("ratelimit-limit", "5000".parse().unwrap());
        headers.insert("ratelimit-remaining", "0".parse().unwrap());
        headers.insert("ratelimit-reset", "1700000000".parse().unwrap());
        let body = br#"{"id":"too_many_requests","message":"API Rate limit exceeded."}"#;
        match status_error(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            body,
            &subject(None),
        ) {
            Error::RateLimited {
                retry_after,
                limits,
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
                assert_eq!(
                    limits,
                    Some(RateLimits {
                        limit: 5000,
                        remaining: 0,
                        reset: 1_700_000_000
                    })
                );
            }
            other => panic!("{other:?}"),
        }
        let none = HeaderMap::new();
        let body = br#"{"id":"bad_request","message":"error validating app spec field \"services.health_check.port\": not found","request_id":"r1"}"#;
        match status_error(StatusCode::BAD_REQUEST, &none, body, &subject(Some("x"))) {
            Error::InvalidSpec { field, message } => {
                assert_eq!(field.as_deref(), Some("services.health_check.port"));
                assert!(message.contains("not found"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            status_error(StatusCode::CONFLICT, &none, b"{}", &subject(Some("x"))),
            Error::NameTaken { ref name } if name == "x"
        ));
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, &none, b"", &subject(None)),
            Error::NotAuthenticated { ref message } if message == "HTTP 401"
        ));
        assert!(status_error(StatusCode::NOT_FOUND, &none, b"", &subject(None)).is_not_found());
        let html = b"<html><body>502 Bad Gateway</body></html>";
        assert!(matches!(
            status_error(StatusCode::BAD_GATEWAY, &none, html, &subject(None)),
            Error::Network { .. }
        ));
        let err = status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &none,
            br#"{"id":"server_error","message":"boom","request_id":"req-9"}"#,
            &subject(None),
        );
        assert_eq!(
            err.to_string(),
            "`POST /v2/apps` failed: the API answered 500: boom (request req-9)"
        );
    }

    #[test]
    fn retry_after_as_http_date() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    }

    #[test]
    fn urls_hide_tokens() {
        let url = Url::parse("wss://exec.example/?token=s3cret&instance=a").unwrap();
        let shown = redact_url(&url);
        assert_eq!(shown, "wss://exec.example/?token=[REDACTED]&instance=a");
        let url = Url::parse("https://user:pw@logs.example:8443/a/b?X-Amz-Signature=abc").unwrap();
        assert_eq!(
            redact_url(&url),
            "https://logs.example:8443/a/b?X-Amz-Signature=[REDACTED]"
        );
    }

    #[test]
    fn spec_field_is_found() {
        assert_eq!(
            spec_field("error validating app spec field \"name\": bad").as_deref(),
            Some("name")
        );
        assert_eq!(spec_field("GitHub user not authenticated"), None);
    }
}
