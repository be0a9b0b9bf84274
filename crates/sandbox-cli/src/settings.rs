//! Resolution of what the user asked for: command line, then environment, then the
//! configuration file, then defaults. This is the only place that precedence is applied.
//!
//! | flag | environment | configuration key |
//! | --- | --- | --- |
//! | `--provider` | `SANDBOX_PROVIDER` | `provider` |
//! | `--driver` | `SANDBOX_DRIVER` | `driver` |
//! | `--api-url` | `DIGITALOCEAN_API_URL` | `api_url` |
//! | `--context` | `DIGITALOCEAN_CONTEXT` | `context` |
//! | `--config` | `SANDBOX_CONFIG` | |
//! | `--local-dir` | `SANDBOX_LOCAL_DIR` | `local_dir` |
//! | `--no-progress` | `SANDBOX_NO_PROGRESS` | |
//! | | `DOCTL` | `doctl` |

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

use clap::ValueEnum;

use crate::args::{ComponentTypeArg, DriverArg, GlobalArgs, ImageArg, ProviderArg, SpecArgs};
use crate::error::CliError;
pub(crate) use sandbox_core::ProviderKind;

/// The configuration file's folder under `$XDG_CONFIG_HOME` (or `~/.config`).
pub(crate) const CONFIG_DIR: &str = "do-app-sandbox";
/// File names tried in that folder, in order (JSON is valid YAML, so one parser reads both).
pub(crate) const CONFIG_FILES: [&str; 3] = ["config.yaml", "config.yml", "config.json"];

/// The configuration file: every key optional, unknown keys refused.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// `local` or `digitalocean`.
    pub provider: Option<String>,
    /// `auto`, `api` or `doctl`.
    pub driver: Option<String>,
    /// The API's base URL.
    pub api_url: Option<String>,
    /// The doctl context.
    pub context: Option<String>,
    /// The doctl binary.
    pub doctl: Option<PathBuf>,
    /// The local provider's state folder.
    pub local_dir: Option<PathBuf>,
    /// Default image of new sandboxes.
    pub image: Option<String>,
    /// Default region of new sandboxes.
    pub region: Option<String>,
    /// Default instance size of new sandboxes.
    pub instance_size: Option<String>,
    /// Default component type of new sandboxes.
    pub component_type: Option<String>,
    /// Default readiness timeout of new sandboxes, in seconds.
    pub ready_timeout: Option<u64>,
}

impl ConfigFile {
    /// Reads the configuration: the explicit file (which must exist), else the first of
    /// [`CONFIG_FILES`] found in the default folder, else an empty configuration.
    pub(crate) fn load(
        explicit: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(ConfigFile, Option<PathBuf>)> {
        if let Some(path) = explicit {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file `{}`", path.display())
            })?;
            return Ok((Self::parse(&text, path)?, Some(path.to_owned())));
        }
        let Some(dir) = default_config_dir(env) else {
            return Ok((ConfigFile::default(), None));
        };
        for name in CONFIG_FILES {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => return Ok((Self::parse(&text, &path)?, Some(path))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot read the configuration file `{}`", path.display())
                    });
                }
            }
        }
        Ok((ConfigFile::default(), None))
    }

    /// Parses YAML or JSON text; an empty file is an empty configuration.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<ConfigFile> {
        if text.trim().is_empty() {
            return Ok(ConfigFile::default());
        }
        serde_yaml::from_str(text).map_err(|e| {
            CliError::Usage(format!(
                "configuration file `{}` is not valid: {e}",
                path.display()
            ))
            .into()
        })
    }
}

/// `$XDG_CONFIG_HOME/do-app-sandbox`, else `~/.config/do-app-sandbox`.
pub(crate) fn default_config_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let non_empty = |key: &str| env(key).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_CONFIG_HOME") {
        return Some(Path::new(&xdg).join(CONFIG_DIR));
    }
    non_empty("HOME").map(|home| Path::new(&home).join(".config").join(CONFIG_DIR))
}

/// The value of an environment variable, `None` when unset or empty.
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn env_value(env: Env<'_>, key: &str) -> Option<String> {
    env(key).filter(|v| !v.is_empty())
}

/// Parses an enum from an environment variable; a wrong value names the variable.
fn env_enum<T: ValueEnum>(env: Env<'_>, key: &str) -> Result<Option<T>> {
    let Some(value) = env_value(env, key) else {
        return Ok(None);
    };
    T::from_str(&value, true).map(Some).map_err(|_| {
        let allowed: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| format!("`{}`", p.get_name())))
            .collect();
        CliError::Usage(format!(
            "`{key}={value}`: it must be one of {}",
            allowed.join(", ")
        ))
        .into()
    })
}

/// `1`, `true`, `yes`, `on` (any case) are true.
fn env_flag(env: Env<'_>, key: &str) -> bool {
    env_value(env, key)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// What every command needs: where sandboxes run and how to talk.
#[derive(Debug, Clone)]
pub(crate) struct GlobalSettings {
    pub provider: ProviderKind,
    pub driver: DriverArg,
    pub api_url: Option<String>,
    pub context: Option<String>,
    pub doctl: Option<PathBuf>,
    pub local_dir: Option<PathBuf>,
    /// Whether a spinner may be drawn.
    pub progress: bool,
    pub config: ConfigFile,
}

impl GlobalSettings {
    /// Reads the configuration file and resolves the settings.
    pub(crate) fn load(args: &GlobalArgs, env: Env<'_>) -> Result<GlobalSettings> {
        let explicit = args
            .config
            .clone()
            .or_else(|| env_value(env, "SANDBOX_CONFIG").map(PathBuf::from));
        let (config, _) = ConfigFile::load(explicit.as_deref(), env)?;
        Self::resolve(args, config, env)
    }

    /// Merges the command line, the environment and the configuration file, in that order.
    pub(crate) fn resolve(
        args: &GlobalArgs,
        config: ConfigFile,
        env: Env<'_>,
    ) -> Result<GlobalSettings> {
        let provider_arg = match args.provider {
            Some(p) => Some(p),
            None => env_enum::<ProviderArg>(env, "SANDBOX_PROVIDER")?,
        };
        let driver_arg = match args.driver {
            Some(d) => Some(d),
            None => env_enum::<DriverArg>(env, "SANDBOX_DRIVER")?,
        };
        let provider = match (provider_arg, config.provider.as_deref()) {
            (Some(ProviderArg::Local), _) => ProviderKind::Local,
            (Some(ProviderArg::Digitalocean), _) => ProviderKind::DigitalOcean,
            (None, None | Some("local")) => ProviderKind::Local,
            (None, Some("digitalocean" | "do")) => ProviderKind::DigitalOcean,
            (None, Some(other)) => {
                return Err(CliError::Usage(format!(
                    "configuration key `provider` is `{other}`: it must be `local` or `digitalocean`"
                ))
                .into());
            }
        };
        let driver = match (driver_arg, config.driver.as_deref()) {
            (Some(driver), _) => driver,
            (None, None | Some("auto")) => DriverArg::Auto,
            (None, Some("api")) => DriverArg::Api,
            (None, Some("doctl")) => DriverArg::Doctl,
            (None, Some(other)) => {
                return Err(CliError::Usage(format!(
                    "configuration key `driver` is `{other}`: it must be `auto`, `api` or `doctl`"
                ))
                .into());
            }
        };
        Ok(GlobalSettings {
            provider,
            driver,
            api_url: args
                .api_url
                .clone()
                .or_else(|| env_value(env, "DIGITALOCEAN_API_URL"))
                .or_else(|| config.api_url.clone()),
            context: args
                .context
                .clone()
                .or_else(|| env_value(env, "DIGITALOCEAN_CONTEXT"))
                .or_else(|| config.context.clone()),
            doctl: env_value(env, doctl_driver::DOCTL_ENV)
                .map(PathBuf::from)
                .or_else(|| config.doctl.clone()),
            local_dir: args
                .local_dir
                .clone()
                .or_else(|| env_value(env, "SANDBOX_LOCAL_DIR").map(PathBuf::from))
                .or_else(|| config.local_dir.clone()),
            progress: !args.no_progress
                && !env_flag(env, "SANDBOX_NO_PROGRESS")
                && !args.quiet
                && args.verbose == 0,
            config,
        })
    }
}

/// What a new sandbox looks like.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpecSettings {
    pub image: appspec::ImageKind,
    pub name: Option<String>,
    pub region: Option<String>,
    pub instance_size: Option<String>,
    pub component_type: appspec::ComponentType,
    pub env: Vec<(String, String)>,
    pub ready_timeout: Duration,
    pub ttl: Option<Duration>,
}

impl SpecSettings {
    pub(crate) fn resolve(args: &SpecArgs, global: &GlobalSettings) -> Result<SpecSettings> {
        let config = &global.config;
        let image = match (args.image, config.image.as_deref()) {
            (Some(ImageArg::Python), _) | (None, None | Some("python")) => {
                appspec::ImageKind::Python
            }
            (Some(ImageArg::Node), _) | (None, Some("node")) => appspec::ImageKind::Node,
            (None, Some(other)) => {
                return Err(CliError::Usage(format!(
                    "configuration key `image` is `{other}`: it must be `python` or `node`"
                ))
                .into());
            }
        };
        let component_type = match (args.component_type, config.component_type.as_deref()) {
            (Some(ComponentTypeArg::Worker), _) | (None, None | Some("worker")) => {
                appspec::ComponentType::Worker
            }
            (Some(ComponentTypeArg::Service), _) | (None, Some("service")) => {
                appspec::ComponentType::Service
            }
            (None, Some(other)) => {
                return Err(CliError::Usage(format!(
                    "configuration key `component_type` is `{other}`: it must be `service` or `worker`"
                ))
                .into());
            }
        };
        let ready_timeout = args
            .ready_timeout
            .or(config.ready_timeout.map(Duration::from_secs))
            .unwrap_or(sandbox_core::DEFAULT_READY_TIMEOUT);
        Ok(SpecSettings {
            image,
            name: args.name.clone(),
            region: args.region.clone().or_else(|| config.region.clone()),
            instance_size: args
                .instance_size
                .clone()
                .or_else(|| config.instance_size.clone()),
            component_type,
            env: args.env.clone(),
            ready_timeout,
            ttl: args.ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::Cli;

    fn global(argv: &[&str], config: ConfigFile) -> Result<GlobalSettings> {
        global_env(argv, config, &[])
    }

    fn global_env(
        argv: &[&str],
        config: ConfigFile,
        vars: &[(&str, &str)],
    ) -> Result<GlobalSettings> {
        let mut full = vec!["sandbox"];
        full.extend_from_slice(argv);
        full.extend_from_slice(&["list"]);
        let cli = Cli::try_parse_from(full)?;
        let env = |key: &str| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        };
        GlobalSettings::resolve(&cli.global, config, &env)
    }

    #[test]
    fn the_environment_sits_between_flags_and_the_config_file() {
        let config = ConfigFile {
            provider: Some("local".into()),
            api_url: Some("http://config".into()),
            ..ConfigFile::default()
        };
        let vars = [
            ("SANDBOX_PROVIDER", "digitalocean"),
            ("DIGITALOCEAN_API_URL", "http://env"),
            ("SANDBOX_NO_PROGRESS", "1"),
        ];
        let s = global_env(&[], config.clone(), &vars).unwrap();
        assert_eq!(s.provider, ProviderKind::DigitalOcean);
        assert_eq!(s.api_url.as_deref(), Some("http://env"));
        assert!(!s.progress);
        let s = global_env(&["--provider", "local"], config, &vars).unwrap();
        assert_eq!(s.provider, ProviderKind::Local);
        let err = global_env(&[], ConfigFile::default(), &[("SANDBOX_DRIVER", "ssh")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SANDBOX_DRIVER=ssh"), "{err}");
    }

    #[test]
    fn the_command_line_wins_over_the_config_file() {
        let config = ConfigFile {
            provider: Some("digitalocean".into()),
            api_url: Some("http://config".into()),
            ..ConfigFile::default()
        };
        let s = global(&["--provider", "local"], config.clone()).unwrap();
        assert_eq!(s.provider, ProviderKind::Local);
        assert_eq!(s.api_url.as_deref(), Some("http://config"));
        let s = global(&["--api-url", "http://flag"], config).unwrap();
        assert_eq!(s.provider, ProviderKind::DigitalOcean);
        assert_eq!(s.api_url.as_deref(), Some("http://flag"));
    }

    #[test]
    fn local_is_the_default_provider() {
        let s = global(&[], ConfigFile::default()).unwrap();
        assert_eq!(s.provider, ProviderKind::Local);
        assert_eq!(s.driver, DriverArg::Auto);
    }

    #[test]
    fn bad_config_values_name_the_key() {
        let config = ConfigFile {
            provider: Some("aws".into()),
            ..ConfigFile::default()
        };
        let err = global(&[], config).unwrap_err().to_string();
        assert!(err.contains("`provider`"), "{err}");
        let err = ConfigFile::parse("provder: local\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("provder"), "{err}");
    }

    #[test]
    fn yaml_and_json_config_files_parse() {
        let yaml = ConfigFile::parse(
            "provider: digitalocean\nregion: nyc1\nready_timeout: 30\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let json = ConfigFile::parse(
            r#"{"provider": "digitalocean", "region": "nyc1", "ready_timeout": 30}"#,
            Path::new("c.json"),
        )
        .unwrap();
        assert_eq!(yaml, json);
        assert_eq!(yaml.region.as_deref(), Some("nyc1"));
    }

    #[test]
    fn the_config_file_is_found_under_xdg_config_home() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(CONFIG_DIR);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("config.json"), r#"{"image": "node"}"#).unwrap();
        let root = dir.path().to_string_lossy().into_owned();
        let env = move |key: &str| (key == "XDG_CONFIG_HOME").then(|| root.clone());
        let (config, path) = ConfigFile::load(None, &env).unwrap();
        assert_eq!(config.image.as_deref(), Some("node"));
        assert_eq!(path, Some(folder.join("config.json")));
        let missing = dir.path().join("nope.yaml");
        assert!(ConfigFile::load(Some(&missing), &env).is_err());
    }
}
