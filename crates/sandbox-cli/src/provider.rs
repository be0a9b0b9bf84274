//! Picks the platform sandboxes run on, and finds sandboxes by name (through the SDK).

use std::sync::Arc;

use anyhow::{Context, Result};
use doctl_driver::{DoApi, DoApiConfig, Doctl, DoctlConfig, Platform};
use sandbox_core::{Found, Sandbox, Scope};
use sandbox_local::{LocalConfig, LocalPlatform};

use crate::args::{DriverArg, TargetArgs};
use crate::error::CliError;
use crate::settings::{GlobalSettings, ProviderKind};

/// The platform in use, and how to name it in messages.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    pub platform: Arc<dyn Platform>,
    /// `local`, `digitalocean (api)` or `digitalocean (doctl)`.
    pub label: String,
}

impl Provider {
    /// Builds the platform the settings ask for.
    pub(crate) fn open(settings: &GlobalSettings) -> Result<Provider> {
        match settings.provider {
            ProviderKind::Local => {
                let config = match &settings.local_dir {
                    Some(dir) => LocalConfig::new(dir),
                    None => LocalConfig::from_env(),
                };
                let platform =
                    LocalPlatform::new(config).context("cannot start the local provider")?;
                Ok(Provider {
                    platform: Arc::new(platform),
                    label: "local".to_owned(),
                })
            }
            ProviderKind::DigitalOcean => Self::digitalocean(settings),
        }
    }

    fn digitalocean(settings: &GlobalSettings) -> Result<Provider> {
        let api = || {
            let mut config = DoApiConfig::new();
            if let Some(url) = &settings.api_url {
                config = config.with_base_url(url.clone());
            }
            if let Some(context) = &settings.context {
                config = config.with_context(context.clone());
            }
            DoApi::new(config)
        };
        let doctl = || {
            let mut config = DoctlConfig::new();
            if let Some(url) = &settings.api_url {
                config = config.with_api_url(url.clone());
            }
            if let Some(context) = &settings.context {
                config = config.with_context(context.clone());
            }
            if let Some(binary) = &settings.doctl {
                config = config.with_binary(binary.clone());
            }
            Doctl::new(config)
        };
        match settings.driver {
            DriverArg::Api => Ok(Provider {
                platform: Arc::new(api().context("cannot use the DigitalOcean API")?),
                label: "digitalocean (api)".to_owned(),
            }),
            DriverArg::Doctl => Ok(Provider {
                platform: Arc::new(doctl()),
                label: "digitalocean (doctl)".to_owned(),
            }),
            DriverArg::Auto => match api() {
                Ok(api) => Ok(Provider {
                    platform: Arc::new(api),
                    label: "digitalocean (api)".to_owned(),
                }),
                Err(doctl_driver::Error::NotAuthenticated { message }) => {
                    let doctl = doctl();
                    if doctl.binary().is_none() {
                        return Err(doctl_driver::Error::NotAuthenticated {
                            message: format!(
                                "{message}; and doctl, the other way in, is not installed (set `DOCTL` or put it on PATH)"
                            ),
                        }
                        .into());
                    }
                    tracing::debug!("no API token at hand; using doctl");
                    Ok(Provider {
                        platform: Arc::new(doctl),
                        label: "digitalocean (doctl)".to_owned(),
                    })
                }
                Err(e) => Err(e).context("cannot use the DigitalOcean API"),
            },
        }
    }

    /// Attaches to the sandbox a command's [`TargetArgs`] name, as [`Provider::attach`] does.
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
                Sandbox::connect_component(self.platform.clone(), &app_id, component).await
            }
            None => Sandbox::connect(self.platform.clone(), &app_id).await,
        };
        sandbox.with_context(|| format!("cannot attach to app `{app_id}`"))
    }

    /// Finds what a name designates: a sandbox this tool made (by the SDK's rules: exact name,
    /// exact id, unique id prefix), else any app of that name. Renders the SDK's errors the
    /// CLI's way: an ambiguous name lists the candidates; an unknown one the names that exist.
    pub(crate) async fn resolve(&self, target: &str) -> Result<Found> {
        match Sandbox::lookup(self.platform.as_ref(), target, Scope::AnyApp).await {
            Ok(found) => Ok(found),
            Err(sandbox_core::Error::Ambiguous { target, candidates }) => {
                Err(CliError::Ambiguous {
                    target,
                    candidates: candidates.iter().map(ToString::to_string).collect(),
                }
                .into())
            }
            Err(sandbox_core::Error::NotFound { .. }) => {
                let names: Vec<String> = Sandbox::list(self.platform.as_ref())
                    .await
                    .context("cannot list sandboxes")?
                    .into_iter()
                    .map(|s| s.name)
                    .collect();
                Err(CliError::NotFound {
                    what: format!("sandbox `{target}`"),
                    note: names
                        .is_empty()
                        .then(|| format!("there are no sandboxes on provider {}", self.label)),
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
