//! Self-expiry: a sandbox whose spec carries an expiry (the `expires=` attribute of the
//! `DO_APP_SANDBOX` marker, written by sandbox-core's `SandboxBuilder::ttl`) is deleted by its
//! holder when the time comes, with no client running.
//!
//! At creation, the expiry goes into the sandbox's folder as `expires` (Unix seconds, one
//! line). The holder (`assets/holder.sh`), which wakes once a second anyway, reads it when it
//! starts; once it passes, the holder stops the container, releases the name and removes the
//! folder, as `delete_app` would. Any `LocalPlatform` on the state folder then no longer
//! lists the sandbox.

use std::path::Path;

use appspec::{AppSpec, MARKER_ENV};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::state::write_atomic;
use doctl_driver::Result;

/// The file, in a sandbox's folder, that holds its expiry.
pub(crate) const EXPIRES_FILE: &str = "expires";

/// The expiry the spec's marker records, if any.
pub(crate) fn expiry_of(spec: &AppSpec) -> Option<OffsetDateTime> {
    let marker = spec.envs.iter().find(|e| e.key == MARKER_ENV)?;
    let value = marker.value.split(';').skip(1).find_map(|attr| {
        let (key, value) = attr.split_once('=')?;
        (key.trim() == "expires").then(|| value.trim())
    })?;
    OffsetDateTime::parse(value, &Rfc3339).ok()
}

/// Writes the `expires` file into the sandbox folder `dir` when the spec carries an expiry.
pub(crate) fn record(dir: &Path, spec: &AppSpec) -> Result<()> {
    let Some(at) = expiry_of(spec) else {
        return Ok(());
    };
    write_atomic(
        &dir.join(EXPIRES_FILE),
        format!("{}\n", at.unix_timestamp()).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_attribute_is_read_and_written_as_unix_seconds() {
        let mut spec = appspec::SandboxTemplate::new(
            appspec::ImageKind::Python,
            appspec::ComponentType::Worker,
        )
        .name("sandbox-0a1b2c3d")
        .build()
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), &spec).unwrap();
        assert!(
            !dir.path().join(EXPIRES_FILE).exists(),
            "no expiry, no file"
        );
        let marker = spec.envs.iter_mut().find(|e| e.key == MARKER_ENV).unwrap();
        marker
            .value
            .push_str(";expires=2027-01-15T08:00:00Z;pool=h:1:2");
        record(dir.path(), &spec).unwrap();
        let text = std::fs::read_to_string(dir.path().join(EXPIRES_FILE)).unwrap();
        assert_eq!(text, "1800000000\n");
    }
}
