//! Picks the platform sandboxes run on, and finds sandboxes by name.

use std::sync::Arc;

use anyhow::{Context, Result};
use doctl_driver::{DoApi, DoApiConfig, Doctl, DoctlConfig, Platform};
use sandbox_core::Sandbox;
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
            (None, Some(name)) => self.resolve(name, Lookup::AnyApp).await?.0,
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

    /// Finds the app id (and name) of a sandbox by name.
    ///
    /// An exact name wins, then an exact id, then a unique id prefix (at least 4
    /// characters); with [`Lookup::AnyApp`], apps of that name that this tool did not create
    /// come last.
    pub(crate) async fn resolve(&self, target: &str, lookup: Lookup) -> Result<(String, String)> {
        let sandboxes: Vec<Known> = Sandbox::list(self.platform.as_ref())
            .await
            .context("cannot list sandboxes")?
            .into_iter()
            .map(|s| Known {
                id: s.id,
                name: s.name,
            })
            .collect();
        match pick(&sandboxes, target) {
            Pick::One(info) => return Ok((info.id.clone(), info.name.clone())),
            Pick::Many(candidates) => {
                return Err(CliError::Ambiguous {
                    target: target.to_owned(),
                    candidates,
                }
                .into());
            }
            Pick::None => {}
        }
        if let Some(app) = self
            .platform
            .find_app(target)
            .await
            .context("cannot look up apps")?
        {
            if lookup == Lookup::AnyApp {
                return Ok((app.id.clone(), app.name().to_owned()));
            }
            return Err(CliError::Usage(format!(
                "app `{target}` was not created by this tool; to delete it anyway, give its id: `--id {}`",
                app.id
            ))
            .into());
        }
        Err(CliError::NotFound {
            what: format!("sandbox `{target}`"),
            note: sandboxes
                .is_empty()
                .then(|| format!("there are no sandboxes on provider {}", self.label)),
            candidates: candidates(&sandboxes, target),
        }
        .into())
    }
}

/// Which apps a name may designate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Sandboxes, then any app of that name (to troubleshoot existing apps).
    AnyApp,
    /// Sandboxes only (what `delete` acts on).
    SandboxesOnly,
}

/// A sandbox as the lookup sees it: id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    id: String,
    name: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Pick<'a> {
    One(&'a Known),
    Many(Vec<String>),
    None,
}

fn pick<'a>(sandboxes: &'a [Known], target: &str) -> Pick<'a> {
    let describe = |s: &Known| format!("{} ({})", s.name, s.id);
    let by_name: Vec<&Known> = sandboxes.iter().filter(|s| s.name == target).collect();
    match by_name.as_slice() {
        [one] => return Pick::One(one),
        [] => {}
        many => return Pick::Many(many.iter().map(|s| describe(s)).collect()),
    }
    if let Some(exact) = sandboxes.iter().find(|s| s.id == target) {
        return Pick::One(exact);
    }
    if target.len() >= 4 {
        let by_prefix: Vec<&Known> = sandboxes
            .iter()
            .filter(|s| s.id.starts_with(target))
            .collect();
        match by_prefix.as_slice() {
            [one] => return Pick::One(one),
            [] => {}
            many => return Pick::Many(many.iter().map(|s| describe(s)).collect()),
        }
    }
    Pick::None
}

/// Names to suggest: those sharing a part with the target, else all (at most 10).
fn candidates(sandboxes: &[Known], target: &str) -> Vec<String> {
    let similar: Vec<String> = sandboxes
        .iter()
        .filter(|s| s.name.contains(target) || target.contains(s.name.as_str()))
        .map(|s| s.name.clone())
        .collect();
    let mut names = if similar.is_empty() {
        sandboxes.iter().map(|s| s.name.clone()).collect()
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

    fn known(pairs: &[(&str, &str)]) -> Vec<Known> {
        pairs
            .iter()
            .map(|(id, name)| Known {
                id: (*id).to_owned(),
                name: (*name).to_owned(),
            })
            .collect()
    }

    #[test]
    fn names_win_then_ids_then_unique_id_prefixes() {
        let all = known(&[
            ("aaaa1111", "web"),
            ("aaaa2222", "aaaa1111"),
            ("bbbb3333", "db"),
        ]);
        // A name that looks like another sandbox's id is a name first.
        assert_eq!(pick(&all, "aaaa1111"), Pick::One(&all[1]));
        assert_eq!(pick(&all, "bbbb3333"), Pick::One(&all[2]));
        assert_eq!(pick(&all, "bbbb"), Pick::One(&all[2]));
        assert_eq!(
            pick(&all, "aaaa"),
            Pick::Many(vec![
                "web (aaaa1111)".to_owned(),
                "aaaa1111 (aaaa2222)".to_owned()
            ])
        );
        // Prefixes shorter than 4 characters are never taken.
        assert_eq!(pick(&all, "bbb"), Pick::None);
        assert_eq!(pick(&all, "nope"), Pick::None);
    }

    #[test]
    fn duplicate_names_are_ambiguous() {
        let all = known(&[("1111aaaa", "same"), ("2222bbbb", "same")]);
        assert!(matches!(pick(&all, "same"), Pick::Many(c) if c.len() == 2));
    }

    #[test]
    fn candidates_prefer_similar_names_and_are_capped() {
        let all = known(&[("1", "web-1"), ("2", "web-2"), ("3", "db")]);
        assert_eq!(candidates(&all, "web"), ["web-1", "web-2"]);
        assert_eq!(candidates(&all, "zzz"), ["db", "web-1", "web-2"]);
        let many: Vec<Known> = (0..15)
            .map(|i| Known {
                id: i.to_string(),
                name: format!("s{i:02}"),
            })
            .collect();
        let shown = candidates(&many, "x");
        assert_eq!(shown.len(), 11);
        assert_eq!(shown.last().map(String::as_str), Some("..."));
    }
}
