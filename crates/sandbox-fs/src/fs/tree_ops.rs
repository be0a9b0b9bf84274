//! Changes to the sandbox's tree: [`FileSystem::mkdir`], [`FileSystem::rm`],
//! [`FileSystem::copy`], [`FileSystem::rename`] and [`FileSystem::chmod`], with the check of
//! a `chmod` mode before it is sent.

use super::util::{check_path, ok_or_fail, ok_or_fail_two};
use super::{FileSystem, RmOptions};
use crate::error::{Error, Result};
use crate::script;

impl FileSystem {
    /// Creates a directory; with `parents`, also its missing parents, and an existing
    /// directory is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`], [`Error::NotFound`] (a parent is missing and `parents` is
    /// false), [`Error::NotADirectory`], [`Error::PermissionDenied`].
    #[tracing::instrument(name = "fs.mkdir", skip_all, fields(path = %path, parents))]
    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<()> {
        check_path("path", path)?;
        let flag = if parents { "p" } else { "" };
        let (out, attempt) = self
            .run_idempotent("mkdir", path, script::MKDIR, &[path, flag], None)
            .await?;
        if attempt > 1 && out.code() == Some(script::EXISTS) {
            return Ok(());
        }
        ok_or_fail("mkdir", path, out).map(drop)
    }

    /// Removes a file, a symlink, or with [`RmOptions::recursive`] a directory tree.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (unless forced), [`Error::IsADirectory`] (a directory without
    /// `recursive`), [`Error::PermissionDenied`].
    #[tracing::instrument(name = "fs.rm", skip_all, fields(path = %path, ?options))]
    pub async fn rm(&self, path: &str, options: RmOptions) -> Result<()> {
        check_path("path", path)?;
        let mut flags = String::new();
        if options.recursive {
            flags.push('r');
        }
        if options.force {
            flags.push('f');
        }
        let (out, attempt) = self
            .run_idempotent("rm", path, script::RM, &[path, &flags], None)
            .await?;
        if attempt > 1 && out.code() == Some(script::NOT_FOUND) {
            return Ok(());
        }
        ok_or_fail("rm", path, out).map(drop)
    }

    /// Copies `src` to `dst` as `cp` does (into `dst` when it is a directory); `recursive`
    /// copies directories.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (`src`), [`Error::IsADirectory`] (`src` without `recursive`),
    /// [`Error::PermissionDenied`], [`Error::Remote`].
    #[tracing::instrument(name = "fs.copy", skip_all, fields(src = %src, dst = %dst))]
    pub async fn copy(&self, src: &str, dst: &str, recursive: bool) -> Result<()> {
        check_path("source path", src)?;
        check_path("destination path", dst)?;
        let flag = if recursive { "r" } else { "" };
        let out = self
            .run_idempotent("copy", src, script::COPY, &[src, dst, flag], None)
            .await?
            .0;
        ok_or_fail_two("copy", src, dst, out).map(drop)
    }

    /// Renames or moves `src` to `dst` as `mv` does (into `dst` when it is a directory).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (`src`), [`Error::PermissionDenied`], [`Error::Remote`].
    #[tracing::instrument(name = "fs.rename", skip_all, fields(src = %src, dst = %dst))]
    pub async fn rename(&self, src: &str, dst: &str) -> Result<()> {
        check_path("source path", src)?;
        check_path("destination path", dst)?;
        let out = self
            .run(
                "rename",
                src,
                script::RENAME,
                &[src, dst],
                None,
                self.timeout,
            )
            .await?;
        ok_or_fail_two("rename", src, dst, out).map(drop)
    }

    /// Changes permissions. `mode` is octal (`755`, `0644`, `4755`) or symbolic as `chmod`
    /// takes it (`u+x`, `go-w`, `a=rX,u+w`); anything else is refused before it is sent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (the mode), [`Error::NotFound`],
    /// [`Error::PermissionDenied`].
    #[tracing::instrument(name = "fs.chmod", skip_all, fields(path = %path, mode = %mode))]
    pub async fn chmod(&self, path: &str, mode: &str) -> Result<()> {
        check_path("path", path)?;
        validate_mode(mode)?;
        let out = self
            .run_idempotent("chmod", path, script::CHMOD, &[mode, path], None)
            .await?
            .0;
        ok_or_fail("chmod", path, out).map(drop)
    }
}

/// Accepts octal modes (`755`, `0644`, `4755`) and symbolic ones (`u+x`, `a=rX,u+w`).
fn validate_mode(mode: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::invalid(
            "mode",
            mode.escape_debug().to_string(),
            reason,
        ))
    };
    if mode.is_empty() {
        return bad("a mode cannot be empty");
    }
    if mode.bytes().all(|b| b.is_ascii_digit()) {
        if mode.len() > 4 || mode.bytes().any(|b| b > b'7') {
            return bad("an octal mode has 1 to 4 digits from 0 to 7");
        }
        return Ok(());
    }
    for clause in mode.split(',') {
        let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        if rest.is_empty() {
            return bad("each clause needs an operator (+, - or =), as in `u+x`");
        }
        let mut chars = rest.chars().peekable();
        while let Some(op) = chars.next() {
            if !matches!(op, '+' | '-' | '=') {
                return bad(
                    "a symbolic mode is [ugoa]*[+-=][rwxXst]* or [ugoa]*[+-=][ugo], joined by commas",
                );
            }
            let mut perms = String::new();
            while let Some(&c) = chars.peek() {
                if matches!(c, '+' | '-' | '=') {
                    break;
                }
                perms.push(c);
                chars.next();
            }
            let copy = perms.len() == 1 && matches!(perms.as_str(), "u" | "g" | "o");
            if !copy && !perms.chars().all(|c| "rwxXst".contains(c)) {
                return bad("permissions are letters of rwxXst, or one of u, g, o");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_validated() {
        for ok in [
            "755", "0644", "4755", "7", "u+x", "go-w", "a=rX,u+w", "+x", "u=g", "o-rwx",
        ] {
            assert!(validate_mode(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "8",
            "77777",
            "755; rm -rf /",
            "u",
            "u+q",
            "$(id)",
            "u+x,",
            "u+x g+w",
        ] {
            let err = validate_mode(bad).expect_err(bad);
            assert!(err.to_string().contains("mode"), "{err}");
        }
    }
}
