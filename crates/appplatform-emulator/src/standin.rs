//! Finding (or building) the `doctl-standin` binary for tests in any crate of the workspace.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const NAME: &str = "doctl-standin";

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// The path of the `doctl-standin` binary, building it when it is missing.
///
/// Looks next to the running executable: tests run from `target/<profile>/deps/`, examples
/// from `target/<profile>/examples/`, binaries live in `target/<profile>/`. When the binary is
/// not there it runs `$CARGO build -p appplatform-emulator --bin doctl-standin` (`CARGO` is
/// set when tests run under cargo; `cargo` from `PATH` otherwise), with `--release` when the
/// folder is `target/release`, and looks again.
///
/// # Errors
///
/// When the running executable's directory cannot be found, the build fails, or the binary is
/// still missing after it.
pub fn standin_path() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut candidates = candidate_dirs(&exe);
    // Examples run from `target/<profile>/examples/`: the profile folder is one level up.
    if let Some(profile) = exe
        .parent()
        .filter(|d| d.file_name().is_some_and(|n| n == "examples"))
        .and_then(Path::parent)
    {
        candidates.insert(0, profile.to_path_buf());
    }
    if let Some(found) = find_in(&candidates) {
        return Ok(found);
    }
    let _guard = BUILD_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = find_in(&candidates) {
        return Ok(found);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "-p",
        "appplatform-emulator",
        "--features",
        "bin",
        "--bin",
        NAME,
    ]);
    // Build into the profile folder looked in first (`target/release` or the dev profile).
    if candidates
        .first()
        .and_then(|d| d.file_name())
        .is_some_and(|p| p == "release")
    {
        command.arg("--release");
    }
    let status = command.status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "`cargo build --bin {NAME}` failed with {status}"
        )));
    }
    find_in(&candidates).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{NAME} not found in {} after building it",
                display_dirs(&candidates)
            ),
        )
    })
}

/// `target/<profile>/` for an executable in `target/<profile>/deps/` or `target/<profile>/`.
fn candidate_dirs(exe: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = exe.parent() {
        if dir.file_name().is_some_and(|n| n == "deps") {
            if let Some(profile) = dir.parent() {
                dirs.push(profile.to_path_buf());
            }
        }
        dirs.push(dir.to_path_buf());
    }
    dirs
}

fn find_in(dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(NAME)).find(|p| p.is_file())
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
