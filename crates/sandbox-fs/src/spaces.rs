//! [`SpacesStore`]: the [`ObjectStore`] of DigitalOcean Spaces (or any S3-compatible
//! service), on aws-sdk-s3.

use std::fmt;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation};
use aws_sdk_s3::presigning::PresigningConfig;

use crate::error::{Error, Result};
use crate::store::{ObjectStore, SpacesConfig};

/// An [`ObjectStore`] on DigitalOcean Spaces through aws-sdk-s3: presigns GET and PUT URLs
/// (signature version 4) and deletes objects.
///
/// ```
/// use sandbox_fs::{SpacesConfig, SpacesStore};
///
/// let store = SpacesStore::new(SpacesConfig::new("bucket", "nyc3", "key-id", "secret"));
/// assert_eq!(store.config().bucket(), "bucket");
/// ```
#[derive(Clone)]
pub struct SpacesStore {
    config: SpacesConfig,
    client: aws_sdk_s3::Client,
}

impl SpacesStore {
    /// A store for this configuration (no request is made until a URL is needed).
    #[must_use]
    pub fn new(config: SpacesConfig) -> Self {
        let credentials = aws_credential_types::Credentials::new(
            config.access_key(),
            config.secret_key(),
            None,
            None,
            "sandbox-fs",
        );
        let s3 = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region().to_owned()))
            .endpoint_url(config.endpoint_url())
            .credentials_provider(credentials)
            .force_path_style(config.path_style())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        SpacesStore {
            client: aws_sdk_s3::Client::from_conf(s3),
            config,
        }
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &SpacesConfig {
        &self.config
    }

    fn presigning(key: &str, expires: Duration) -> Result<PresigningConfig> {
        PresigningConfig::expires_in(expires).map_err(|e| {
            Error::object_store(
                "presign",
                key,
                format!("URL expiry {expires:?} is not allowed: {e}"),
            )
        })
    }
}

impl fmt::Debug for SpacesStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpacesStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ObjectStore for SpacesStore {
    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String> {
        let request = self
            .client
            .get_object()
            .bucket(self.config.bucket())
            .key(key)
            .presigned(Self::presigning(key, expires)?)
            .await
            .map_err(|e| Error::object_store("presign GET", key, error_text(&e)))?;
        Ok(request.uri().to_owned())
    }

    async fn presign_put(&self, key: &str, expires: Duration) -> Result<String> {
        let request = self
            .client
            .put_object()
            .bucket(self.config.bucket())
            .key(key)
            .presigned(Self::presigning(key, expires)?)
            .await
            .map_err(|e| Error::object_store("presign PUT", key, error_text(&e)))?;
        Ok(request.uri().to_owned())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let result = self
            .client
            .delete_object()
            .bucket(self.config.bucket())
            .key(key)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                use aws_sdk_s3::error::ProvideErrorMetadata;
                let code = e.code().unwrap_or_default().to_owned();
                let message = e.message().unwrap_or_default().to_owned();
                match code.as_str() {
                    "NoSuchKey" => Ok(()),
                    "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "AccessDenied" => {
                        Err(Error::BadCredentials {
                            key: key.to_owned(),
                            code,
                            message,
                        })
                    }
                    _ => Err(Error::object_store("delete", key, error_text(&e))),
                }
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(self.config.bucket())
                .prefix(prefix);
            if let Some(token) = token.take() {
                request = request.continuation_token(token);
            }
            let page = request.send().await.map_err(|e| {
                use aws_sdk_s3::error::ProvideErrorMetadata;
                let code = e.code().unwrap_or_default().to_owned();
                match code.as_str() {
                    "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "AccessDenied" => {
                        Error::BadCredentials {
                            key: prefix.to_owned(),
                            code,
                            message: e.message().unwrap_or_default().to_owned(),
                        }
                    }
                    _ => Error::object_store("list", prefix, error_text(&e)),
                }
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|object| object.key().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(keys),
            }
        }
    }
}

/// The error and its causes on one line.
fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
