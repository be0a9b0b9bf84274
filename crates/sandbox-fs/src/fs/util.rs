//! Small helpers shared by the operations: path checks, random tokens for temporary names,
//! and turning a script's output into a result or a named [`Error`].

use sandbox_core::ExecOutput;

use crate::error::{Error, Result};
use crate::script;

/// A random token for temporary names (32 hex digits).
pub(crate) fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(crate) fn check_path(name: &str, path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(Error::invalid(name, "", "a path cannot be empty"));
    }
    if path.contains('\0') {
        return Err(Error::invalid(
            name,
            path.escape_debug().to_string(),
            "a path cannot contain a NUL byte",
        ));
    }
    Ok(())
}

pub(crate) fn parse_number(stdout: &[u8]) -> Option<u64> {
    std::str::from_utf8(stdout).ok()?.trim().parse().ok()
}

pub(crate) fn protocol(operation: &str, path: &str, message: &str) -> Error {
    Error::Remote {
        operation: operation.to_owned(),
        path: path.to_owned(),
        status: sandbox_core::ExitStatus::from_code(0),
        stderr: format!("unexpected output: {message}"),
    }
}

pub(crate) fn ok_or_fail(operation: &str, path: &str, out: ExecOutput) -> Result<ExecOutput> {
    if out.success() {
        Ok(out)
    } else {
        Err(failure(operation, path, &out))
    }
}

/// As [`ok_or_fail`] for two-path operations: the first path was checked by the script, so a
/// missing path or a permission problem reported by the tool concerns the destination.
pub(crate) fn ok_or_fail_two(
    operation: &str,
    src: &str,
    dst: &str,
    out: ExecOutput,
) -> Result<ExecOutput> {
    if out.success() {
        return Ok(out);
    }
    match out.code() {
        Some(script::NOT_FOUND | script::IS_DIR) => Err(failure(operation, src, &out)),
        _ => Err(failure(operation, dst, &out)),
    }
}

/// The error a failed script reports: by exit code, else by the tool's message.
pub(crate) fn failure(operation: &str, path: &str, out: &ExecOutput) -> Error {
    let path = path.to_owned();
    let stderr = last_line(&out.stderr_text());
    match out.code() {
        Some(script::NOT_FOUND) => return Error::NotFound { path },
        Some(script::IS_DIR) => return Error::IsADirectory { path },
        Some(script::NOT_DIR) => return Error::NotADirectory { path },
        Some(script::EXISTS) => return Error::AlreadyExists { path },
        Some(script::DENIED) => {
            return Error::PermissionDenied {
                path,
                message: stderr,
            };
        }
        _ => {}
    }
    if stderr.contains("Permission denied")
        || stderr.contains("Operation not permitted")
        || stderr.contains("Read-only file system")
    {
        Error::PermissionDenied {
            path,
            message: stderr,
        }
    } else if stderr.contains("No such file or directory") {
        Error::NotFound { path }
    } else if stderr.contains("Not a directory") {
        Error::NotADirectory { path }
    } else if stderr.contains("Is a directory") {
        Error::IsADirectory { path }
    } else if stderr.contains("File exists") {
        Error::AlreadyExists { path }
    } else {
        Error::Remote {
            operation: operation.to_owned(),
            path,
            status: out.status,
            stderr,
        }
    }
}

/// The last non-empty lines of a tool's stderr (at most 400 bytes), trimmed.
pub(crate) fn last_line(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.len() <= 400 {
        return trimmed.to_owned();
    }
    let mut start = trimmed.len() - 400;
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    trimmed[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert!(check_path("path", "").is_err());
        assert!(check_path("path", "a\0b").is_err());
        assert!(check_path("path", "-rf \n'x'").is_ok());
    }

    #[test]
    fn failures_are_named() {
        let out = |code: i32, stderr: &str| {
            ExecOutput::new(
                sandbox_core::ExitStatus::from_code(code),
                Vec::new(),
                stderr.as_bytes().to_vec(),
            )
        };
        assert!(matches!(
            failure("x", "p", &out(70, "")),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            failure("x", "p", &out(71, "")),
            Error::IsADirectory { .. }
        ));
        assert!(matches!(
            failure("x", "p", &out(1, "mv: cannot move: Permission denied")),
            Error::PermissionDenied { .. }
        ));
        let other = failure("x", "p", &out(1, "boom"));
        assert!(other.to_string().contains("boom"), "{other}");
        assert!(other.to_string().contains("`p`"), "{other}");
    }
}
