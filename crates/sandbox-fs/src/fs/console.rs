//! Files through the console: [`FileSystem::read`], [`FileSystem::write`],
//! [`FileSystem::append`], [`FileSystem::upload`] and [`FileSystem::download`], as chunked,
//! atomic steps of the write and read scripts (optionally gzip-compressed), with the
//! [`Source`] of bytes to write and the [`Sink`] of bytes read.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use sandbox_core::ExecOutput;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::FileSystem;
use super::local::{local_file_size, local_temp_beside};
use super::util::{check_path, ok_or_fail, protocol, token};
use crate::error::{Error, Result};
use crate::script;
use crate::store::TransferOptions;

/// Where bytes to write come from.
enum Source {
    Bytes(Bytes),
    File {
        file: tokio::fs::File,
        path: PathBuf,
    },
}

impl Source {
    async fn read(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        match self {
            Source::Bytes(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start.saturating_add(len).min(bytes.len());
                Ok(bytes.slice(start..end))
            }
            Source::File { file, path } => {
                let mut buf = vec![0u8; len];
                let mut filled = 0;
                while filled < len {
                    let n = file
                        .read(&mut buf[filled..])
                        .await
                        .map_err(|e| Error::local(path.clone(), "reading", e))?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// Where read bytes go.
enum Sink {
    Memory(Vec<u8>),
    File {
        file: tokio::fs::File,
        path: PathBuf,
    },
}

impl Sink {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Sink::Memory(buf) => {
                buf.extend_from_slice(data);
                Ok(())
            }
            Sink::File { file, path } => file
                .write_all(data)
                .await
                .map_err(|e| Error::local(path.clone(), "writing", e)),
        }
    }
}

impl FileSystem {
    /// Reads a file's bytes, exactly.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::IsADirectory`], [`Error::PermissionDenied`],
    /// [`Error::Exec`].
    #[tracing::instrument(name = "fs.read", skip_all, fields(path = %path))]
    pub async fn read(&self, path: &str) -> Result<Vec<u8>> {
        check_path("path", path)?;
        let mut sink = Sink::Memory(Vec::new());
        self.read_console(path, &mut sink, &TransferOptions::default(), u64::MAX)
            .await?;
        match sink {
            Sink::Memory(data) => Ok(data),
            Sink::File { .. } => Ok(Vec::new()),
        }
    }

    /// Reads a file as UTF-8 text, exactly (blank lines, trailing newlines and `\r` kept).
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read), and [`Error::NotUtf8`].
    pub async fn read_text(&self, path: &str) -> Result<String> {
        let data = self.read(path).await?;
        String::from_utf8(data).map_err(|e| Error::NotUtf8 {
            path: path.to_owned(),
            valid_up_to: e.utf8_error().valid_up_to(),
        })
    }

    /// Creates or replaces a file with these bytes, atomically; creates missing parent
    /// directories. An empty `data` makes an empty file. Writing through a symlink replaces
    /// the file it points to.
    ///
    /// # Errors
    ///
    /// [`Error::IsADirectory`], [`Error::NotADirectory`] (a parent is a file),
    /// [`Error::PermissionDenied`], [`Error::Exec`].
    #[tracing::instrument(name = "fs.write", skip_all, fields(path = %path, bytes = data.as_ref().len()))]
    pub async fn write(&self, path: &str, data: impl AsRef<[u8]>) -> Result<()> {
        self.write_bytes(path, data.as_ref(), false).await
    }

    /// Appends bytes to a file (created when missing), atomically: the new content is built
    /// in a copy that replaces the file once complete.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    #[tracing::instrument(name = "fs.append", skip_all, fields(path = %path, bytes = data.as_ref().len()))]
    pub async fn append(&self, path: &str, data: impl AsRef<[u8]>) -> Result<()> {
        self.write_bytes(path, data.as_ref(), true).await
    }

    /// Copies a local file into the sandbox (atomically); returns its size. Through the object
    /// store when one is configured and the file has at least
    /// [`large_file_threshold`](Self::large_file_threshold) bytes, else through the console.
    ///
    /// # Errors
    ///
    /// [`Error::LocalNotFound`], [`Error::LocalKind`], and those of [`write`](Self::write)
    /// and [`upload_large`](Self::upload_large).
    pub async fn upload(&self, local: impl AsRef<Path>, remote: &str) -> Result<u64> {
        self.upload_with(local, remote, &TransferOptions::default())
            .await
    }

    /// [`upload`](Self::upload) with options (progress, object store behaviour).
    ///
    /// # Errors
    ///
    /// As [`upload`](Self::upload).
    #[tracing::instrument(name = "fs.upload", skip_all, fields(local = %local.as_ref().display(), remote = %remote))]
    pub async fn upload_with(
        &self,
        local: impl AsRef<Path>,
        remote: &str,
        options: &TransferOptions,
    ) -> Result<u64> {
        let local = local.as_ref();
        check_path("remote path", remote)?;
        let size = local_file_size(local).await?;
        if self.store.is_some() && size >= self.threshold {
            return self.upload_store(local, size, remote, options).await;
        }
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::local(local, "opening for upload", e))?;
        let source = Source::File {
            file,
            path: local.to_owned(),
        };
        self.write_console(remote, source, size, false, options)
            .await?;
        Ok(size)
    }

    /// Copies a sandbox file to a local path (atomically, parents created); returns its size.
    /// Through the object store when one is configured and the file has at least
    /// [`large_file_threshold`](Self::large_file_threshold) bytes.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::IsADirectory`], [`Error::PermissionDenied`],
    /// [`Error::LocalKind`] (the local path is a directory), [`Error::Local`].
    pub async fn download(&self, remote: &str, local: impl AsRef<Path>) -> Result<u64> {
        self.download_with(remote, local, &TransferOptions::default())
            .await
    }

    /// [`download`](Self::download) with options.
    ///
    /// # Errors
    ///
    /// As [`download`](Self::download).
    #[tracing::instrument(name = "fs.download", skip_all, fields(remote = %remote, local = %local.as_ref().display()))]
    pub async fn download_with(
        &self,
        remote: &str,
        local: impl AsRef<Path>,
        options: &TransferOptions,
    ) -> Result<u64> {
        self.download_limited(remote, local.as_ref(), options, u64::MAX)
            .await
    }

    /// [`download_with`](Self::download_with), refusing ([`Error::Oversized`]) a file that
    /// sends more than `limit` bytes.
    pub(crate) async fn download_limited(
        &self,
        remote: &str,
        local: &Path,
        options: &TransferOptions,
        limit: u64,
    ) -> Result<u64> {
        check_path("remote path", remote)?;
        if self.store.is_some() {
            let size = self.size(remote).await?;
            if size >= self.threshold {
                return self.download_store(remote, local, options, limit).await;
            }
        }
        let (temp, file) = local_temp_beside(local).await?;
        let mut sink = Sink::File {
            file,
            path: temp.0.clone(),
        };
        let size = self.read_console(remote, &mut sink, options, limit).await?;
        if let Sink::File { mut file, path } = sink {
            file.flush()
                .await
                .map_err(|e| Error::local(path, "writing", e))?;
        }
        tokio::fs::rename(&temp.0, local)
            .await
            .map_err(|e| Error::local(local, "moving the download into place", e))?;
        Ok(size)
    }

    /// One step of the write script with `data` on stdin: gzip-compressed (flag `z`) when that
    /// saves at least a tenth of the bytes, plain again (and from then on) when the sandbox
    /// has no `gzip`. `args` are `$2..$6`; the chunk's length is added as `$7`.
    async fn write_step(
        &self,
        path: &str,
        flags: &str,
        args: [&str; 5],
        data: &Bytes,
    ) -> Result<(ExecOutput, u32)> {
        let length = data.len().to_string();
        let plain = |flags: &str| -> Vec<String> {
            let mut all = vec![flags.to_owned()];
            all.extend(args.iter().map(|a| (*a).to_owned()));
            all.push(length.clone());
            all
        };
        if flags.contains('d')
            && data.len() >= 1024
            && self.compress.load(std::sync::atomic::Ordering::Relaxed)
            && let Some(packed) = gzip(data)
        {
            let argv = plain(&format!("{flags}z"));
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let (out, attempt) = self
                .run_idempotent("write", path, &script::write(), &argv, Some(packed))
                .await?;
            if out.code() != Some(script::NO_GZIP) {
                return Ok((out, attempt));
            }
            tracing::debug!("the sandbox has no gzip; sending chunks uncompressed");
            self.compress
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        let argv = plain(flags);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let stdin = (!data.is_empty()).then(|| data.clone());
        self.run_idempotent("write", path, &script::write(), &argv, stdin)
            .await
    }

    /// The chunked, atomic write: begin (temporary file), data at fixed offsets, commit.
    /// [`write`](Self::write) or, with `append`, [`append`](Self::append).
    async fn write_bytes(&self, path: &str, data: &[u8], append: bool) -> Result<()> {
        check_path("path", path)?;
        let data = Bytes::copy_from_slice(data);
        let total = data.len() as u64;
        self.write_console(
            path,
            Source::Bytes(data),
            total,
            append,
            &TransferOptions::default(),
        )
        .await
    }

    async fn write_console(
        &self,
        path: &str,
        mut source: Source,
        total: u64,
        append: bool,
        options: &TransferOptions,
    ) -> Result<()> {
        let chunk = self.write_chunk as u64;
        let chunks = total.div_ceil(chunk).max(1);
        let token = token();
        let total_text = total.to_string();
        // Begin: with the first chunk when writing, alone when appending (its copy of the
        // current file must not be redone after a commit).
        let first = if append {
            Bytes::new()
        } else {
            source.read(0, self.write_chunk).await?
        };
        let mut flags = String::from("b");
        if append {
            flags.push('a');
        } else if !first.is_empty() {
            flags.push('d');
        }
        let one_call = (!append && chunks == 1) || (append && total == 0);
        if one_call {
            flags.push('c');
        }
        let (out, _) = self
            .write_step(path, &flags, [path, &token, "0", &total_text, "0"], &first)
            .await?;
        let out = ok_or_fail("write", path, out)?;
        let mut fields = out.stdout.split(|&b| b == 0);
        let target = fields
            .next()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default();
        let temp = fields
            .next()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default();
        let base = fields
            .next()
            .and_then(|f| std::str::from_utf8(f).ok())
            .unwrap_or_default()
            .to_owned();
        if target.is_empty() || temp.is_empty() || base.parse::<u64>().is_err() {
            return Err(protocol(
                "write",
                path,
                "the begin step did not report its files",
            ));
        }
        let mut done = first.len() as u64;
        options.report(done, total);
        if one_call {
            return Ok(());
        }
        let start = if append { 0 } else { 1 };
        let result = async {
            for index in start..chunks {
                let offset = index * chunk;
                let data = source.read(offset, self.write_chunk).await?;
                let last = index + 1 == chunks;
                let expected = (total - offset).min(chunk);
                if data.len() as u64 != expected {
                    return Err(Error::Incomplete {
                        path: path.to_owned(),
                        expected: total,
                        actual: offset + data.len() as u64,
                    });
                }
                let mut flags = String::new();
                if !data.is_empty() {
                    flags.push('d');
                }
                if last {
                    flags.push('c');
                }
                let offset_text = offset.to_string();
                let (out, attempt) = self
                    .write_step(
                        path,
                        &flags,
                        [&target, &temp, &offset_text, &total_text, &base],
                        &data,
                    )
                    .await?;
                if last && attempt > 1 && out.code() == Some(script::GONE) {
                    // An earlier attempt committed before its answer was lost.
                } else {
                    ok_or_fail("write", path, out)?;
                }
                done += data.len() as u64;
                options.report(done, total);
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            self.discard(&temp).await;
        }
        result
    }

    /// The chunked read into a sink; returns the byte count.
    /// Reads a file through the console into `sink`; more than `limit` bytes is
    /// [`Error::Oversized`], and a chunk longer than asked for is a protocol error.
    async fn read_console(
        &self,
        path: &str,
        sink: &mut Sink,
        options: &TransferOptions,
        limit: u64,
    ) -> Result<u64> {
        let chunk_text = self.read_chunk.to_string();
        let (out, _) = self
            .run_idempotent("read", path, script::READ, &[path, &chunk_text], None)
            .await?;
        let out = ok_or_fail("read", path, out)?;
        let newline = out
            .stdout
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| protocol("read", path, "no header line"))?;
        let header = String::from_utf8_lossy(&out.stdout[..newline]).into_owned();
        let data = &out.stdout[newline + 1..];
        let (kind, size) = header
            .split_once(' ')
            .and_then(|(k, s)| Some((k.to_owned(), s.parse::<u64>().ok()?)))
            .ok_or_else(|| protocol("read", path, "bad header line"))?;
        let oversized = || Error::Oversized {
            path: path.to_owned(),
            limit,
        };
        if data.len() as u64 > limit || (kind == "r" && size > limit) {
            return Err(oversized());
        }
        sink.write(data).await?;
        let mut done = data.len() as u64;
        if kind != "r" || size <= self.read_chunk as u64 {
            options.report(done, done);
            return Ok(done);
        }
        options.report(done, size);
        while done < size {
            let want = (size - done).min(self.read_chunk as u64);
            let offset = done.to_string();
            let count = want.to_string();
            let (out, _) = self
                .run_idempotent(
                    "read",
                    path,
                    script::READ_RANGE,
                    &[path, &offset, &count],
                    None,
                )
                .await?;
            let out = ok_or_fail("read", path, out)?;
            if out.stdout.len() as u64 > want {
                return Err(protocol("read", path, "a chunk longer than asked for"));
            }
            if out.stdout.is_empty() {
                return Err(Error::Incomplete {
                    path: path.to_owned(),
                    expected: size,
                    actual: done,
                });
            }
            sink.write(&out.stdout).await?;
            done += out.stdout.len() as u64;
            options.report(done, size);
        }
        Ok(done)
    }
}

/// `data` gzip-compressed (fast level), when that saves at least a tenth of its size.
fn gzip(data: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::fast(),
    );
    encoder.write_all(data).ok()?;
    let packed = encoder.finish().ok()?;
    (packed.len() * 10 <= data.len() * 9).then(|| Bytes::from(packed))
}
