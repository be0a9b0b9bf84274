//! Expiry and the sweep of forgotten sandboxes: where a sandbox's expiry and pool membership
//! are recorded, how they are read back, and [`sweep`].
//!
//! # Where the expiry lives
//!
//! App Platform has no expiry of its own, and no labels or tags on apps; changing an app's
//! spec (`PUT /v2/apps/{id}`) always starts a new deployment, which replaces the container
//! and loses everything in it. So the expiry is written once, when the app is created, as an
//! attribute of the sandbox marker (the app-level `DO_APP_SANDBOX` env var, whose value
//! reserves everything after a `;` for attributes):
//!
//! ```text
//! DO_APP_SANDBOX=python/worker;expires=2026-12-04T05:00:00Z;pool=myhost:4242:918273
//! ```
//!
//! Any client that lists apps reads it back (`doctl apps list -o json` shows it too). Its
//! limit: it cannot change afterwards without a redeploy, so `sandbox extend` is refused on
//! App Platform. Pooled sandboxes carry `pool=<host>:<pid>:<process start>` too, naming the
//! process whose pool manager made them.
//!
//! # Who deletes expired sandboxes
//!
//! On the local provider, the sandbox's own supervisor (it reads the expiry when the sandbox
//! starts). On App Platform nothing does unless a client runs [`sweep`]: every running
//! [`PoolManager`](crate::PoolManager) sweeps once a minute, and `sandbox gc` sweeps on demand.

use std::fmt;

use appspec::{AppSpec, MARKER_ENV};
use doctl_driver::{App, Platform};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Instrument as _;

use crate::error::{Error, Result};

/// The marker attribute holding the expiry (RFC 3339, UTC).
pub(crate) const EXPIRES_ATTR: &str = "expires";
/// The marker attribute naming the process whose pool made the sandbox.
pub(crate) const POOL_ATTR: &str = "pool";

/// The value of attribute `key` in the sandbox marker of `spec`, if any.
pub(crate) fn marker_attr<'a>(spec: &'a AppSpec, key: &str) -> Option<&'a str> {
    let env = spec.envs.iter().find(|e| e.key == MARKER_ENV)?;
    env.value.split(';').skip(1).find_map(|attr| {
        let (k, v) = attr.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// Adds `key=value` to the sandbox marker of `spec` (replacing an earlier value).
///
/// # Errors
///
/// [`Error::InvalidArgument`] when the spec has no marker, or the value holds a `;`.
pub(crate) fn set_marker_attr(spec: &mut AppSpec, key: &str, value: &str) -> Result<()> {
    if value.contains(';') || value.contains('=') {
        return Err(Error::invalid(
            key,
            "a marker attribute holds no `;` or `=`",
        ));
    }
    let env = spec
        .envs
        .iter_mut()
        .find(|e| e.key == MARKER_ENV)
        .ok_or_else(|| Error::invalid("spec", format!("the spec has no `{MARKER_ENV}` marker")))?;
    let mut parts: Vec<String> = env
        .value
        .split(';')
        .enumerate()
        .filter(|(i, attr)| *i == 0 || attr.split_once('=').is_none_or(|(k, _)| k.trim() != key))
        .map(|(_, attr)| attr.to_owned())
        .collect();
    parts.push(format!("{key}={value}"));
    env.value = parts.join(";");
    Ok(())
}

/// Records `at` as the expiry of the sandbox `spec` describes.
pub(crate) fn set_expiry(spec: &mut AppSpec, at: OffsetDateTime) -> Result<()> {
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    let text = at
        .format(&Rfc3339)
        .map_err(|e| Error::invalid("ttl", format!("the expiry cannot be written: {e}")))?;
    set_marker_attr(spec, EXPIRES_ATTR, &text)
}

/// The expiry recorded in `spec`, if any (an unreadable one counts as none).
#[must_use]
pub fn expires_at(spec: &AppSpec) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(marker_attr(spec, EXPIRES_ATTR)?, &Rfc3339).ok()
}

/// The process a pool member was made by, as recorded in its marker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PoolOwner {
    /// The host name of the machine it ran on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started (the kernel's start time in clock ticks since boot; 0 when unknown),
    /// so a recycled pid is not mistaken for it.
    pub start: u64,
}

impl PoolOwner {
    /// This process.
    #[must_use]
    pub fn current() -> PoolOwner {
        let pid = std::process::id();
        PoolOwner {
            host: host_name(),
            pid,
            start: process_start(pid).unwrap_or(0),
        }
    }

    /// Reads `host:pid:start`.
    fn parse(text: &str) -> Option<PoolOwner> {
        let mut parts = text.rsplitn(3, ':');
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_owned();
        Some(PoolOwner { host, pid, start })
    }

    /// Whether this owner is known to be gone: it ran on this machine and no process with
    /// its pid and start time runs now. An owner on another machine is never known to be
    /// gone (its members wait for their expiry).
    #[must_use]
    pub fn is_gone(&self) -> bool {
        if self.host != host_name() {
            return false;
        }
        match process_start(self.pid) {
            None => true,
            Some(start) => self.start != 0 && start != self.start,
        }
    }
}

/// `host:pid:start`.
impl fmt::Display for PoolOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.pid, self.start)
    }
}

/// The pool owner recorded in `spec`, for pool members.
#[must_use]
pub fn pool_owner(spec: &AppSpec) -> Option<PoolOwner> {
    PoolOwner::parse(marker_attr(spec, POOL_ATTR)?)
}

/// This machine's host name, reduced to letters, digits, `-` and `.`.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`), or `None` when it does
/// not run (or cannot be seen).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Why [`sweep`] deletes (or, in a dry run, would delete) a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SweepReason {
    /// Its expiry passed.
    Expired {
        /// The expiry it carried.
        at: OffsetDateTime,
    },
    /// It belongs to a pool whose process is gone.
    Orphaned {
        /// The process that made it.
        owner: PoolOwner,
    },
}

impl fmt::Display for SweepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepReason::Expired { at } => {
                write!(f, "expired at {}", at.format(&Rfc3339).unwrap_or_default())
            }
            SweepReason::Orphaned { owner } => {
                write!(f, "its pool's process ({owner}) is gone")
            }
        }
    }
}

/// One sandbox [`sweep`] deleted or would delete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Swept {
    /// App id.
    pub id: String,
    /// App name.
    pub name: String,
    /// Why.
    pub reason: SweepReason,
    /// Whether it was deleted (false in a dry run, or when the delete failed: see `error`).
    pub deleted: bool,
    /// Why deleting it failed, when it did.
    pub error: Option<String>,
}

/// What [`sweep`] does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct SweepOptions {
    /// Only report what would be deleted.
    pub dry_run: bool,
    /// The time to compare expiries with (default: now).
    pub now: Option<OffsetDateTime>,
}

impl SweepOptions {
    /// Deletes what is expired or orphaned, now.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only reports.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Compares expiries with `now` instead of the clock.
    pub fn now(mut self, now: OffsetDateTime) -> Self {
        self.now = Some(now);
        self
    }
}

/// Why `app` should be swept at `now`, if it should.
pub(crate) fn reason(app: &App, now: OffsetDateTime) -> Option<SweepReason> {
    appspec::sandbox_marker(&app.spec)?;
    if let Some(at) = expires_at(&app.spec)
        && at <= now
    {
        return Some(SweepReason::Expired { at });
    }
    let owner = pool_owner(&app.spec)?;
    owner.is_gone().then_some(SweepReason::Orphaned { owner })
}

/// Deletes the sandboxes whose expiry passed and the pool members whose process is gone (on
/// this machine), with one `list_apps` call and one delete each; returns what it found.
///
/// App Platform has no expiry of its own: this is what enforces it there (see the module
/// docs). A delete that fails is reported in [`Swept::error`], not as an error of the sweep.
///
/// # Errors
///
/// The platform's error when listing fails.
pub async fn sweep(platform: &dyn Platform, options: &SweepOptions) -> Result<Vec<Swept>> {
    let span = tracing::info_span!("sandbox.sweep", dry_run = options.dry_run);
    async {
        let now = options.now.unwrap_or_else(OffsetDateTime::now_utc);
        let apps = platform.list_apps().await?;
        let mut swept = Vec::new();
        for app in apps {
            let Some(reason) = reason(&app, now) else {
                continue;
            };
            let mut entry = Swept {
                id: app.id.clone(),
                name: app.name().to_owned(),
                reason,
                deleted: false,
                error: None,
            };
            if !options.dry_run {
                match platform.delete_app(&app.id).await {
                    Ok(()) => entry.deleted = true,
                    Err(e) if e.is_not_found() => entry.deleted = true,
                    Err(e) => entry.error = Some(e.to_string()),
                }
                tracing::info!(app_id = %entry.id, reason = %entry.reason, deleted = entry.deleted, "swept");
            }
            swept.push(entry);
        }
        Ok(swept)
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use appspec::{ComponentType, ImageKind, SandboxTemplate};

    fn spec() -> AppSpec {
        SandboxTemplate::new(ImageKind::Python, ComponentType::Worker)
            .name("sandbox-0a1b2c3d")
            .build()
            .unwrap()
    }

    #[test]
    fn attributes_round_trip_and_keep_the_marker_readable() {
        let mut spec = spec();
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        set_expiry(&mut spec, at).unwrap();
        set_marker_attr(&mut spec, POOL_ATTR, &PoolOwner::current().to_string()).unwrap();
        set_expiry(&mut spec, at + time::Duration::hours(1)).unwrap();
        let value = &spec.env(MARKER_ENV).unwrap().value;
        assert_eq!(
            value.split(';').next(),
            Some("python/worker"),
            "the head is unchanged: {value}"
        );
        assert_eq!(value.matches("expires=").count(), 1, "{value}");
        assert!(value.contains("expires=2027-01-15T09:00:00Z"), "{value}");
        assert_eq!(expires_at(&spec), Some(at + time::Duration::hours(1)));
        assert_eq!(pool_owner(&spec), Some(PoolOwner::current()));
        assert!(appspec::sandbox_marker(&spec).is_some());
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_gone() {
        let me = PoolOwner::current();
        assert!(!me.is_gone());
        assert!(me.start > 0, "start time read from /proc");
        let recycled = PoolOwner {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(recycled.is_gone());
        let elsewhere = PoolOwner {
            host: "another-host.invalid".to_owned(),
            pid: 1 << 30,
            start: 1,
        };
        assert!(
            !elsewhere.is_gone(),
            "owners on other machines are never known gone"
        );
        assert_eq!(PoolOwner::parse(&me.to_string()), Some(me));
    }
}
