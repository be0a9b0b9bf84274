//! The provider and the sandbox a command works on: the settings handed to the SDK's
//! [`ProviderBuilder`], and names resolved by the SDK ([`Sandbox::lookup`]), with the SDK's
//! errors rendered the CLI's way.

use anyhow::{Context, Result};
use sandbox_core::{Driver, Found, Provider, ProviderBuilder, Sandbox, Scope};

use crate::args::{DriverArg, TargetArgs};
use crate::commands::Ctx;
use crate::error::CliError;
use crate::settings::GlobalSettings;

/// Builds the provider the settings ask for.
pub(crate) fn open(settings: &GlobalSettings) -> Result<Provider> {
    let mut builder =
        ProviderBuilder::new()
            .kind(settings.provider)
            .driver(match settings.driver {
                DriverArg::Auto => Driver::Auto,
                DriverArg::Api => Driver::Api,
                DriverArg::Doctl => Driver::Doctl,
            });
    if let Some(url) = &settings.api_url {
        builder = builder.api_url(url.clone());
    }
    if let Some(context) = &settings.context {
        builder = builder.context(context.clone());
    }
    if let Some(doctl) = &settings.doctl {
        builder = builder.doctl(doctl.clone());
    }
    if let Some(dir) = &settings.local_dir {
        builder = builder.local_dir(dir.clone());
    }
    builder.build().map_err(|e| match e {
        // A platform's own error (no token and no doctl) reads best on its own.
        sandbox_core::Error::Platform(e) => anyhow::Error::new(e),
        e => anyhow::Error::new(e),
    })
}

impl Ctx {
    /// Attaches to the sandbox a command's [`TargetArgs`] name, as [`Ctx::attach`] does.
    pub(crate) async fn attach_target(&self, target: &TargetArgs) -> Result<Sandbox> {
        self.attach(
            target.name.as_deref(),
            target.id.as_deref(),
            target.component.as_deref(),
        )
        .await
    }

    /// Attaches to a sandbox given by app id (any app) or by name (a sandbox this tool made,
    /// else any app of that name).
    pub(crate) async fn attach(
        &self,
        name: Option<&str>,
        id: Option<&str>,
        component: Option<&str>,
    ) -> Result<Sandbox> {
        let app_id = match (id, name) {
            (Some(id), _) => id.to_owned(),
            (None, Some(name)) => self.resolve(name).await?.id().to_owned(),
            (None, None) => {
                return Err(CliError::Usage("give a sandbox name or `--id`".into()).into());
            }
        };
        let sandbox = match component {
            Some(component) => {
                Sandbox::connect_component(self.provider.platform().clone(), &app_id, component)
                    .await
            }
            None => Sandbox::connect(self.provider.platform().clone(), &app_id).await,
        };
        sandbox.with_context(|| format!("cannot attach to app `{app_id}`"))
    }

    /// Finds what a name designates: a sandbox this tool made (by the SDK's rules: exact name,
    /// exact id, unique id prefix), else any app of that name. Renders the SDK's errors the
    /// CLI's way: an ambiguous name lists the candidates; an unknown one the names that exist.
    pub(crate) async fn resolve(&self, target: &str) -> Result<Found> {
        match Sandbox::lookup(self.provider.platform().as_ref(), target, Scope::AnyApp).await {
            Ok(found) => Ok(found),
            Err(sandbox_core::Error::Ambiguous { target, candidates }) => {
                Err(CliError::Ambiguous {
                    target,
                    candidates: candidates.iter().map(ToString::to_string).collect(),
                }
                .into())
            }
            Err(sandbox_core::Error::NotFound { .. }) => {
                let names: Vec<String> = Sandbox::list(self.provider.platform().as_ref())
                    .await
                    .context("cannot list sandboxes")?
                    .into_iter()
                    .map(|s| s.name)
                    .collect();
                Err(CliError::NotFound {
                    what: format!("sandbox `{target}`"),
                    note: names.is_empty().then(|| {
                        format!(
                            "there are no sandboxes on provider {}",
                            self.provider.label()
                        )
                    }),
                    candidates: candidates(&names, target),
                }
                .into())
            }
            Err(e) => Err(anyhow::Error::new(e).context("cannot list sandboxes")),
        }
    }
}

/// Names to suggest: those sharing a part with the target, else all (at most 10).
fn candidates(names: &[String], target: &str) -> Vec<String> {
    let similar: Vec<String> = names
        .iter()
        .filter(|name| name.contains(target) || target.contains(name.as_str()))
        .cloned()
        .collect();
    let mut names = if similar.is_empty() {
        names.to_vec()
    } else {
        similar
    };
    names.sort();
    if names.len() > 10 {
        names.truncate(10);
        names.push("...".to_owned());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn settings_reach_the_sdk_provider() {
        let dir = tempfile::tempdir().unwrap();
        let args = |argv: &[&str]| {
            let mut full = vec!["sandbox"];
            full.extend_from_slice(argv);
            full.push("list");
            <crate::args::Cli as clap::Parser>::try_parse_from(full).unwrap()
        };
        let local = dir.path().join("local").to_string_lossy().into_owned();
        let cli = args(&["--local-dir", &local]);
        let settings = GlobalSettings::resolve(&cli.global, Default::default(), &|_| None).unwrap();
        assert_eq!(open(&settings).unwrap().label(), "local");
        let cli = args(&["--provider", "digitalocean", "--driver", "doctl"]);
        let settings = GlobalSettings::resolve(&cli.global, Default::default(), &|_| None).unwrap();
        let provider = open(&settings).unwrap();
        assert_eq!(provider.label(), "digitalocean (doctl)");
        assert_eq!(provider.platform().kind(), "doctl");
    }

    #[test]
    fn candidates_prefer_similar_names_and_are_capped() {
        let all = names(&["web-1", "web-2", "db"]);
        assert_eq!(candidates(&all, "web"), ["web-1", "web-2"]);
        assert_eq!(candidates(&all, "zzz"), ["db", "web-1", "web-2"]);
        let many: Vec<String> = (0..15).map(|i| format!("s{i:02}")).collect();
        let shown = candidates(&many, "x");
        assert_eq!(shown.len(), 11);
        assert_eq!(shown.last().map(String::as_str), Some("..."));
    }
}
