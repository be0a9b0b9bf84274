//! Finding a sandbox by name or id: [`Sandbox::find`] and [`Sandbox::lookup`], and the rules
//! they share.
//!
//! Among the sandboxes this SDK created (apps carrying the sandbox marker), in order:
//!
//! 1. an exact name;
//! 2. an exact app id;
//! 3. a unique app id prefix of at least [`MIN_ID_PREFIX`] characters;
//! 4. with [`Scope::AnyApp`] only: an app of exactly that name that this SDK did not create.
//!
//! A step that matches several sandboxes (two sandboxes of one name, a prefix of two ids) is
//! [`Error::Ambiguous`], listing them; nothing matching is [`Error::NotFound`]. A name that looks
//! like another sandbox's id is a name first.

use std::fmt;
use std::sync::Arc;

use doctl_driver::{App, Platform};
use tracing::Instrument as _;

use super::{Sandbox, SandboxInfo};
use crate::error::{Error, Result};

/// The shortest id prefix a lookup takes.
pub const MIN_ID_PREFIX: usize = 4;

/// Which apps a name or id may designate in [`Sandbox::lookup`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// Only sandboxes this SDK created (what deleting by name should act on).
    #[default]
    Sandboxes,
    /// Sandboxes first, then any app of exactly that name (to troubleshoot an existing app).
    AnyApp,
}

/// What [`Sandbox::lookup`] found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Found {
    /// A sandbox this SDK created.
    Sandbox(SandboxInfo),
    /// An app this SDK did not create, found by its exact name ([`Scope::AnyApp`] only).
    App(App),
}

impl Found {
    /// The app id.
    #[must_use]
    pub fn id(&self) -> &str {
        match self {
            Found::Sandbox(info) => &info.id,
            Found::App(app) => &app.id,
        }
    }

    /// The app name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Found::Sandbox(info) => &info.name,
            Found::App(app) => app.name(),
        }
    }

    /// Whether it is a sandbox this SDK created.
    #[must_use]
    pub fn is_sandbox(&self) -> bool {
        matches!(self, Found::Sandbox(_))
    }

    /// The app as the platform listed it.
    #[must_use]
    pub fn app(&self) -> &App {
        match self {
            Found::Sandbox(info) => &info.app,
            Found::App(app) => app,
        }
    }
}

/// One of the sandboxes an ambiguous name or prefix matches (see [`Error::Ambiguous`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Candidate {
    /// App name.
    pub name: String,
    /// App id.
    pub id: String,
}

impl Candidate {
    fn of(info: &SandboxInfo) -> Self {
        Candidate {
            name: info.name.clone(),
            id: info.id.clone(),
        }
    }
}

/// `name (id)`.
impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.id)
    }
}

/// Rules 1 to 3 over the listed sandboxes: `Ok(None)` when none matches.
fn pick<'a>(sandboxes: &'a [SandboxInfo], target: &str) -> Result<Option<&'a SandboxInfo>> {
    let unique = |matches: Vec<&'a SandboxInfo>| match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(Error::Ambiguous {
            target: target.to_owned(),
            candidates: many.iter().map(|info| Candidate::of(info)).collect(),
        }),
    };
    if let Some(found) = unique(sandboxes.iter().filter(|s| s.name == target).collect())? {
        return Ok(Some(found));
    }
    if let Some(exact) = sandboxes.iter().find(|s| s.id == target) {
        return Ok(Some(exact));
    }
    if target.len() >= MIN_ID_PREFIX {
        return unique(
            sandboxes
                .iter()
                .filter(|s| s.id.starts_with(target))
                .collect(),
        );
    }
    Ok(None)
}

impl Sandbox {
    /// Finds the sandbox `name_or_id` designates (see the rules in this module's docs:
    /// exact name, exact id, unique id prefix) and attaches to it.
    ///
    /// One `list_apps` call; no console is opened until the first command.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(platform: std::sync::Arc<dyn doctl_driver::Platform>) -> sandbox_core::Result<()> {
    /// let sandbox = sandbox_core::Sandbox::find(platform, "demo").await?;
    /// let out = sandbox.exec("python3 -V").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when nothing matches; [`Error::Ambiguous`] listing the candidates
    /// when several sandboxes do; the platform's error.
    pub async fn find(platform: Arc<dyn Platform>, name_or_id: &str) -> Result<Sandbox> {
        let found = Self::lookup(platform.as_ref(), name_or_id, Scope::Sandboxes).await?;
        Self::attach_app(platform, found.app())
    }

    /// Resolves `name_or_id` without attaching: a sandbox by the module's rules, then, with
    /// [`Scope::AnyApp`], an app of that exact name that this SDK did not create.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (what: ``sandbox `NAME` ``) when nothing matches;
    /// [`Error::Ambiguous`] when several sandboxes do; the platform's error.
    pub async fn lookup(platform: &dyn Platform, name_or_id: &str, scope: Scope) -> Result<Found> {
        let span = tracing::debug_span!("sandbox.lookup", target = %name_or_id, ?scope);
        async {
            let apps = platform.list_apps().await?;
            let (sandboxes, others): (Vec<App>, Vec<App>) = apps
                .into_iter()
                .partition(|app| appspec::sandbox_marker(&app.spec).is_some());
            let sandboxes: Vec<SandboxInfo> = sandboxes
                .into_iter()
                .filter_map(SandboxInfo::from_app)
                .collect();
            if let Some(info) = pick(&sandboxes, name_or_id)? {
                tracing::debug!(app_id = %info.id, "found");
                return Ok(Found::Sandbox(info.clone()));
            }
            if scope == Scope::AnyApp {
                if let Some(app) = others.into_iter().find(|app| app.name() == name_or_id) {
                    tracing::debug!(app_id = %app.id, "found an app this SDK did not create");
                    return Ok(Found::App(app));
                }
            }
            Err(Error::NotFound {
                what: format!("sandbox `{name_or_id}`"),
            })
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockPlatform;

    fn platform(pairs: &[(&str, &str)]) -> Arc<MockPlatform> {
        let platform = Arc::new(MockPlatform::new());
        for (id, name) in pairs {
            platform.add_sandbox(id, name);
        }
        platform
    }

    async fn id_of(platform: &MockPlatform, target: &str) -> Result<String> {
        Sandbox::lookup(platform, target, Scope::Sandboxes)
            .await
            .map(|found| found.id().to_owned())
    }

    #[tokio::test]
    async fn names_win_then_ids_then_unique_id_prefixes() {
        let platform = platform(&[
            ("aaaa1111", "web"),
            ("aaaa2222", "aaaa1111"),
            ("bbbb3333", "db"),
        ]);
        // A name that looks like another sandbox's id is a name first.
        assert_eq!(id_of(&platform, "aaaa1111").await.unwrap(), "aaaa2222");
        assert_eq!(id_of(&platform, "web").await.unwrap(), "aaaa1111");
        assert_eq!(id_of(&platform, "bbbb3333").await.unwrap(), "bbbb3333");
        assert_eq!(id_of(&platform, "bbbb").await.unwrap(), "bbbb3333");
        match id_of(&platform, "aaaa").await.unwrap_err() {
            Error::Ambiguous { target, candidates } => {
                assert_eq!(target, "aaaa");
                let shown: Vec<String> = candidates.iter().map(ToString::to_string).collect();
                assert_eq!(shown, ["web (aaaa1111)", "aaaa1111 (aaaa2222)"]);
            }
            other => panic!("unexpected {other}"),
        }
        // Prefixes shorter than 4 characters are never taken; name prefixes are not ids.
        for target in ["bbb", "nope", "we"] {
            let err = id_of(&platform, target).await.unwrap_err();
            assert!(matches!(err, Error::NotFound { .. }), "{target}: {err}");
            assert_eq!(err.to_string(), format!("sandbox `{target}` not found"));
        }
    }

    #[tokio::test]
    async fn duplicate_names_are_ambiguous_and_the_message_lists_them() {
        let platform = platform(&[("1111aaaa", "same"), ("2222bbbb", "same")]);
        let err = id_of(&platform, "same").await.unwrap_err();
        assert!(matches!(&err, Error::Ambiguous { candidates, .. } if candidates.len() == 2));
        assert_eq!(
            err.to_string(),
            "`same` matches 2 sandboxes: same (1111aaaa), same (2222bbbb)"
        );
        // The exact id still picks one.
        assert_eq!(id_of(&platform, "2222bbbb").await.unwrap(), "2222bbbb");
    }

    #[tokio::test]
    async fn other_apps_are_found_by_exact_name_only_when_asked() {
        let platform = platform(&[("cccc1111", "mine")]);
        platform.add_plain_app("dddd2222", "plain-app");
        let err = id_of(&platform, "plain-app").await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let found = Sandbox::lookup(platform.as_ref(), "plain-app", Scope::AnyApp)
            .await
            .unwrap();
        assert!(!found.is_sandbox());
        assert_eq!((found.id(), found.name()), ("dddd2222", "plain-app"));
        // Their ids are not looked up (attach by id for those).
        let err = Sandbox::lookup(platform.as_ref(), "dddd2222", Scope::AnyApp)
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        // Sandboxes come first.
        let found = Sandbox::lookup(platform.as_ref(), "mine", Scope::AnyApp)
            .await
            .unwrap();
        assert!(found.is_sandbox());
        assert!(matches!(found, Found::Sandbox(SandboxInfo { ref id, .. }) if id == "cccc1111"));
    }

    #[tokio::test]
    async fn find_attaches_with_one_listing() {
        let platform = platform(&[("eeee1111", "demo"), ("ffff2222", "other")]);
        let sandbox = Sandbox::find(Arc::clone(&platform) as Arc<dyn Platform>, "eeee")
            .await
            .unwrap();
        assert_eq!((sandbox.id(), sandbox.name()), ("eeee1111", "demo"));
        assert_eq!(sandbox.component(), appspec::SANDBOX_COMPONENT);
        assert_eq!(platform.reads(), 1);
        let err = Sandbox::find(platform as Arc<dyn Platform>, "missing")
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }
}
