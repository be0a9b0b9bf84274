//! What a sandbox path is: [`FileSystem::list`], [`FileSystem::stat`],
//! [`FileSystem::exists`], [`FileSystem::is_file`], [`FileSystem::is_dir`] and
//! [`FileSystem::size`].

use super::FileSystem;
use super::util::{check_path, failure, ok_or_fail, parse_number, protocol};
use crate::entry::{DirEntry, base_name, parse_records};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::script;

impl FileSystem {
    /// Lists a directory: every entry but `.` and `..`, sorted by name, with kind, symlink
    /// target, size, permissions and modified time. Names may hold any byte but `/` and NUL.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::NotADirectory`], [`Error::PermissionDenied`].
    #[tracing::instrument(name = "fs.list", skip_all, fields(path = %path))]
    pub async fn list(&self, path: &str) -> Result<Vec<DirEntry>> {
        check_path("path", path)?;
        let out = self
            .run_idempotent("list", path, &script::list(), &[path], None)
            .await?
            .0;
        let out = ok_or_fail("list", path, out)?;
        let mut entries =
            parse_records(&out.stdout, Some(path)).map_err(|e| protocol("list", path, &e))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Describes a path (a symlink itself, not its target).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::PermissionDenied`].
    #[tracing::instrument(name = "fs.stat", skip_all, fields(path = %path))]
    pub async fn stat(&self, path: &str) -> Result<DirEntry> {
        check_path("path", path)?;
        let out = self
            .run_idempotent("stat", path, &script::stat(), &[path], None)
            .await?
            .0;
        let out = ok_or_fail("stat", path, out)?;
        let mut entries =
            parse_records(&out.stdout, None).map_err(|e| protocol("stat", path, &e))?;
        match entries.pop() {
            Some(mut entry) if entries.is_empty() => {
                entry.name = base_name(path);
                Ok(entry)
            }
            _ => Err(protocol("stat", path, "expected one entry")),
        }
    }

    /// Whether the path exists (a symlink counts when its target exists).
    ///
    /// # Errors
    ///
    /// [`Error::Exec`] when the sandbox cannot be asked.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        self.test('e', path).await
    }

    /// Whether the path is a regular file (symlinks followed).
    ///
    /// # Errors
    ///
    /// [`Error::Exec`] when the sandbox cannot be asked.
    pub async fn is_file(&self, path: &str) -> Result<bool> {
        self.test('f', path).await
    }

    /// Whether the path is a directory (symlinks followed).
    ///
    /// # Errors
    ///
    /// [`Error::Exec`] when the sandbox cannot be asked.
    pub async fn is_dir(&self, path: &str) -> Result<bool> {
        self.test('d', path).await
    }

    /// The size in bytes of a file (symlinks followed).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::IsADirectory`].
    #[tracing::instrument(name = "fs.size", skip_all, fields(path = %path))]
    pub async fn size(&self, path: &str) -> Result<u64> {
        check_path("path", path)?;
        let out = self
            .run_idempotent("size", path, script::SIZE_OF, &[path], None)
            .await?
            .0;
        let out = ok_or_fail("size", path, out)?;
        parse_number(&out.stdout).ok_or_else(|| protocol("size", path, "not a number"))
    }

    async fn test(&self, flag: char, path: &str) -> Result<bool> {
        check_path("path", path)?;
        let flag = flag.to_string();
        let out = self
            .run_idempotent("test", path, script::TEST, &[&flag, path], None)
            .await?
            .0;
        match out.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(failure("test", path, &out)),
        }
    }
}
