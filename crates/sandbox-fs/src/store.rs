//! The object store seam ([`ObjectStore`]), its configuration ([`SpacesConfig`]) and the
//! options of transfers ([`TransferOptions`], [`Progress`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// How long presigned URLs stay valid unless configured otherwise: 15 minutes.
pub const DEFAULT_URL_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// Files at least this large go through the object store (when one is configured) in plain
/// [`upload`](crate::FileSystem::upload) and [`download`](crate::FileSystem::download):
/// 256000 bytes, unless `SANDBOX_LARGE_FILE_THRESHOLD` says otherwise.
pub const DEFAULT_LARGE_FILE_THRESHOLD: u64 = 256_000;

/// An S3-compatible object store that hands out presigned URLs.
///
/// The sandbox fetches or sends objects with `curl` and these URLs; the host does the same
/// with an HTTP client, so the store itself only signs and deletes. Implemented by
/// `SpacesStore` (feature `spaces`, aws-sdk-s3); tests can supply their own.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// A URL that reads the object `key` with a GET until `expires` from now.
    ///
    /// # Errors
    ///
    /// [`Error::ObjectStore`] when the URL cannot be signed.
    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String>;

    /// A URL that writes the object `key` with a PUT until `expires` from now.
    ///
    /// # Errors
    ///
    /// [`Error::ObjectStore`] when the URL cannot be signed.
    async fn presign_put(&self, key: &str, expires: Duration) -> Result<String>;

    /// Removes the object `key` (a missing object is not an error).
    ///
    /// # Errors
    ///
    /// [`Error::ObjectStore`] or [`Error::BadCredentials`] when the store refuses.
    async fn delete(&self, key: &str) -> Result<()>;

    /// The keys of every object whose key starts with `prefix`, in any order. Snapshot
    /// listing needs it ([`SnapshotStore`](crate::SnapshotStore)); stores that cannot list
    /// keep this default, which fails.
    ///
    /// # Errors
    ///
    /// [`Error::ObjectStore`] when the store cannot list or refuses.
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Err(Error::object_store(
            "list",
            prefix,
            "this object store cannot list its keys",
        ))
    }
}

/// Reports the progress of a transfer: `(bytes_done, bytes_total)`, called with increasing
/// `bytes_done` and last with `bytes_done == bytes_total` when the transfer is complete.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Options of one transfer.
#[derive(Clone, Default)]
#[must_use]
pub struct TransferOptions {
    pub(crate) progress: Option<Progress>,
    pub(crate) keep_object: bool,
    pub(crate) url_expiry: Option<Duration>,
}

impl TransferOptions {
    /// Default options: no progress callback, the object removed afterwards, URLs valid for
    /// the store's configured time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `progress(done, total)` as bytes move. Through the console it is called after
    /// each chunk; through the object store as the host's side of the transfer streams, and
    /// once more when the sandbox's side is done.
    pub fn progress(mut self, progress: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    /// Keeps the intermediate object in the store after the transfer, whether it succeeds or
    /// fails (removed by default in both cases).
    pub fn keep_object(mut self, keep: bool) -> Self {
        self.keep_object = keep;
        self
    }

    /// How long the presigned URLs of this transfer stay valid.
    pub fn url_expiry(mut self, expiry: Duration) -> Self {
        self.url_expiry = Some(expiry);
        self
    }

    pub(crate) fn report(&self, done: u64, total: u64) {
        if let Some(progress) = &self.progress {
            progress(done, total);
        }
    }
}

impl fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferOptions")
            .field("progress", &self.progress.is_some())
            .field("keep_object", &self.keep_object)
            .field("url_expiry", &self.url_expiry)
            .finish()
    }
}

/// Where and how to reach DigitalOcean Spaces (or any S3-compatible store).
///
/// Debug output never shows the keys.
///
/// ```
/// use sandbox_fs::SpacesConfig;
///
/// let config = SpacesConfig::new("my-bucket", "NYC3", "DO00ACCESS", "wJalr-SECRET")
///     .with_endpoint("https://my-bucket.nyc3.digitaloceanspaces.com");
/// assert_eq!(config.region(), "nyc3");
/// assert_eq!(config.endpoint_url(), "https://nyc3.digitaloceanspaces.com");
/// assert!(!format!("{config:?}").contains("wJalr"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SpacesConfig {
    bucket: String,
    region: String,
    access_key: String,
    secret_key: String,
    endpoint: Option<String>,
    path_style: Option<bool>,
    url_expiry: Duration,
}

impl SpacesConfig {
    /// A configuration for `bucket` in `region` (lower-cased) with these credentials.
    pub fn new(
        bucket: impl Into<String>,
        region: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        SpacesConfig {
            bucket: bucket.into(),
            region: region.into().to_lowercase(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            endpoint: None,
            path_style: None,
            url_expiry: DEFAULT_URL_EXPIRY,
        }
    }

    /// Reads `SPACES_ACCESS_KEY`, `SPACES_SECRET_KEY`, `SPACES_BUCKET`, `SPACES_REGION` and the
    /// optional `SPACES_ENDPOINT`. `Ok(None)` when none of the four is set.
    ///
    /// # Errors
    ///
    /// [`Error::SpacesNotConfigured`] naming the variables that are missing when only some are
    /// set.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let names = [
            "SPACES_ACCESS_KEY",
            "SPACES_SECRET_KEY",
            "SPACES_BUCKET",
            "SPACES_REGION",
        ];
        let values: Vec<Option<String>> = names
            .iter()
            .map(|n| get(n).filter(|v| !v.trim().is_empty()))
            .collect();
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let missing: Vec<&str> = names
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(Error::SpacesNotConfigured {
                missing: format!("{} not set", missing.join(", ")),
            });
        }
        let [Some(access), Some(secret), Some(bucket), Some(region)] =
            <[Option<String>; 4]>::try_from(values).unwrap_or_default()
        else {
            return Ok(None);
        };
        let mut config = SpacesConfig::new(bucket.trim(), region.trim(), access, secret);
        if let Some(endpoint) = get("SPACES_ENDPOINT").filter(|v| !v.trim().is_empty()) {
            config = config.with_endpoint(endpoint.trim());
        }
        Ok(Some(config))
    }

    /// Uses this endpoint instead of `https://<region>.digitaloceanspaces.com`. A
    /// bucket-prefixed endpoint (`https://<bucket>.<region>.digitaloceanspaces.com`) is
    /// reduced to the regional one.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into().trim_end_matches('/').to_owned();
        let prefix = format!("://{}.", self.bucket);
        self.endpoint = Some(match endpoint.find(&prefix) {
            Some(i) => format!("{}://{}", &endpoint[..i], &endpoint[i + prefix.len()..]),
            None => endpoint,
        });
        self
    }

    /// Addresses the bucket in the path (`endpoint/bucket/key`) rather than in the host name.
    /// By default path style is used only when the endpoint's host is an IP address or
    /// `localhost`.
    pub fn with_path_style(mut self, path_style: bool) -> Self {
        self.path_style = Some(path_style);
        self
    }

    /// How long presigned URLs stay valid (15 minutes by default).
    pub fn with_url_expiry(mut self, expiry: Duration) -> Self {
        self.url_expiry = expiry;
        self
    }

    /// The bucket.
    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The region (lower case).
    #[must_use]
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The access key id.
    #[must_use]
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret key. Keep it out of logs.
    #[must_use]
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The endpoint URL in use.
    #[must_use]
    pub fn endpoint_url(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}.digitaloceanspaces.com", self.region))
    }

    /// Whether requests address the bucket in the path.
    #[must_use]
    pub fn path_style(&self) -> bool {
        self.path_style.unwrap_or_else(|| {
            let url = self.endpoint_url();
            let host = url
                .split("://")
                .nth(1)
                .unwrap_or(&url)
                .split(['/', ':'])
                .next()
                .unwrap_or_default()
                .to_owned();
            host == "localhost"
                || host.starts_with('[')
                || host.parse::<std::net::Ipv4Addr>().is_ok()
        })
    }

    /// How long presigned URLs stay valid.
    #[must_use]
    pub fn url_expiry(&self) -> Duration {
        self.url_expiry
    }
}

impl fmt::Debug for SpacesConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpacesConfig")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &"<redacted>")
            .field("secret_key", &"<redacted>")
            .field("endpoint", &self.endpoint_url())
            .field("path_style", &self.path_style())
            .field("url_expiry", &self.url_expiry)
            .finish()
    }
}

/// The threshold of `SANDBOX_LARGE_FILE_THRESHOLD`, or the default when it is unset or not a
/// number (with a warning).
pub(crate) fn threshold_from_env() -> u64 {
    match std::env::var("SANDBOX_LARGE_FILE_THRESHOLD") {
        Ok(value) => value.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(
                value = %value,
                "SANDBOX_LARGE_FILE_THRESHOLD is not a number of bytes; using {DEFAULT_LARGE_FILE_THRESHOLD}"
            );
            DEFAULT_LARGE_FILE_THRESHOLD
        }),
        Err(_) => DEFAULT_LARGE_FILE_THRESHOLD,
    }
}

/// A URL without its query (where presigned URLs keep their signature), for messages.
pub(crate) fn redact_url(url: &str) -> String {
    match url.find('?') {
        Some(i) => format!("{}?<signature redacted>", &url[..i]),
        None => url.to_owned(),
    }
}

/// Reads an S3 error response (`<Error><Code>..</Code><Message>..</Message></Error>`) into the
/// matching error.
pub(crate) fn s3_error(operation: &str, key: &str, status: u16, body: &str) -> Error {
    let tag = |name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&close)? + start;
        Some(body[start..end].trim().to_owned())
    };
    let code = tag("Code").unwrap_or_default();
    let message = tag("Message").unwrap_or_default();
    if message.to_ascii_lowercase().contains("expired") {
        return Error::UrlExpired {
            key: key.to_owned(),
            message,
        };
    }
    match code.as_str() {
        "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "AccessDenied" => Error::BadCredentials {
            key: key.to_owned(),
            code,
            message,
        },
        _ => {
            let detail = if code.is_empty() {
                body.trim().chars().take(200).collect::<String>()
            } else {
                format!("{code}: {message}")
            };
            Error::object_store(operation, key, format!("HTTP {status}: {detail}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_env_names_missing_settings() {
        let none = SpacesConfig::from_lookup(|_| None).expect("none set");
        assert!(none.is_none());
        let err = SpacesConfig::from_lookup(|n| (n == "SPACES_BUCKET").then(|| "b".to_owned()))
            .expect_err("partial");
        let text = err.to_string();
        assert!(text.contains("SPACES_ACCESS_KEY"), "{text}");
        assert!(text.contains("SPACES_REGION"), "{text}");
        assert!(!text.contains("SPACES_BUCKET,"), "{text}");
        let full = SpacesConfig::from_lookup(|n| {
            Some(match n {
                "SPACES_ENDPOINT" => "http://127.0.0.1:9000".to_owned(),
                "SPACES_REGION" => "SFO3".to_owned(),
                other => format!("{other}-value"),
            })
        })
        .expect("full")
        .expect("some");
        assert_eq!(full.region(), "sfo3");
        assert_eq!(full.endpoint_url(), "http://127.0.0.1:9000");
        assert!(full.path_style());
        let debug = format!("{full:?}");
        assert!(!debug.contains("SPACES_SECRET_KEY-value"), "{debug}");
        assert!(!debug.contains("SPACES_ACCESS_KEY-value"), "{debug}");
    }

    #[test]
    fn default_endpoint_is_virtual_hosted() {
        let config = SpacesConfig::new("b", "ams3", "a", "s");
        assert_eq!(config.endpoint_url(), "https://ams3.digitaloceanspaces.com");
        assert!(!config.path_style());
        assert_eq!(config.url_expiry(), DEFAULT_URL_EXPIRY);
    }

    #[test]
    fn s3_errors_are_classified() {
        let expired =
            "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
        assert!(matches!(
            s3_error("get", "k", 403, expired),
            Error::UrlExpired { .. }
        ));
        let bad = "<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>";
        assert!(matches!(
            s3_error("get", "k", 403, bad),
            Error::BadCredentials { .. }
        ));
        let other = s3_error(
            "get",
            "k",
            404,
            "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>",
        );
        assert!(other.to_string().contains("NoSuchKey"), "{other}");
    }

    #[test]
    fn urls_lose_their_signature_in_messages() {
        let url = "http://h/b/k?X-Amz-Signature=abc";
        assert_eq!(redact_url(url), "http://h/b/k?<signature redacted>");
    }
}
