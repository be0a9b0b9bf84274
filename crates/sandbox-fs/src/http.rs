//! The host's side of object store transfers: a file sent with a presigned PUT, an object
//! fetched with a presigned GET, both streamed with progress.

use std::path::Path;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::store::{TransferOptions, redact_url, s3_error};

const PIECE: usize = 1024 * 1024;

/// Sends `size` bytes of the local file `path` to `url` with a PUT.
pub(crate) async fn put_file(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    path: &Path,
    size: u64,
    options: &TransferOptions,
) -> Result<()> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::local(path, "opening for upload", e))?;
    let progress = options.clone();
    let stream = futures::stream::unfold((file, 0u64), move |(mut file, done)| {
        let progress = progress.clone();
        async move {
            let mut buf = vec![0u8; PIECE];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let done = done + n as u64;
                    progress.report(done, size);
                    Some((
                        Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                        (file, done),
                    ))
                }
                Err(e) => Some((Err(e), (file, done))),
            }
        }
    });
    let response = client
        .put(url)
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|e| request_error("upload", key, url, e))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(s3_error("upload", key, status.as_u16(), &body));
    }
    Ok(())
}

/// Fetches `url` into the open local file `file` (at `path`); returns the byte count. A body
/// longer than `total` is [`Error::Oversized`] (its path left empty for the caller to name).
pub(crate) async fn get_to_file(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    (file, path): (tokio::fs::File, &Path),
    total: u64,
    options: &TransferOptions,
) -> Result<u64> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| request_error("download", key, url, e))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(s3_error("download", key, status.as_u16(), &body));
    }
    let mut file = tokio::io::BufWriter::with_capacity(PIECE, file);
    let mut done = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| request_error("download", key, url, e))?;
        done += chunk.len() as u64;
        if done > total {
            return Err(Error::Oversized {
                path: String::new(),
                limit: total,
            });
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::local(path, "writing the download", e))?;
        options.report(done, total);
    }
    file.flush()
        .await
        .map_err(|e| Error::local(path, "writing the download", e))?;
    Ok(done)
}

fn request_error(operation: &str, key: &str, url: &str, error: reqwest::Error) -> Error {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::object_store(operation, key, format!("{text} ({})", redact_url(url)))
}
