//! [`Provider`]: where sandboxes run, chosen from settings: this machine (`sandbox-local`'s
//! `LocalPlatform`, behind the `local` feature) or DigitalOcean App Platform through its REST
//! API (`DoApi`) or the doctl binary (`Doctl`).
//!
//! [`ProviderBuilder`] takes the settings explicitly (what a program with its own configuration
//! does, as the `sandbox` CLI does); [`Provider::from_env`] reads them from the environment.
//! Either way the result is an `Arc<dyn Platform>` for [`Sandbox`](crate::Sandbox) plus a label
//! for messages.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use doctl_driver::{DoApi, DoApiConfig, Doctl, DoctlConfig, Platform, Token};

use crate::error::{Error, Result};

/// `local` or `digitalocean` (also `do`).
const PROVIDER_ENV: &str = "SANDBOX_PROVIDER";
/// `auto`, `api` or `doctl`.
const DRIVER_ENV: &str = "SANDBOX_DRIVER";
/// The API's base URL.
const API_URL_ENV: &str = "DIGITALOCEAN_API_URL";
/// The doctl context (and token).
const CONTEXT_ENV: &str = "DIGITALOCEAN_CONTEXT";
/// The local provider's state folder.
const LOCAL_DIR_ENV: &str = "SANDBOX_LOCAL_DIR";

/// Where sandboxes run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// This machine (`sandbox_local::LocalPlatform`; needs the `local` feature).
    #[default]
    Local,
    /// DigitalOcean App Platform.
    DigitalOcean,
}

impl ProviderKind {
    /// `local` or `digitalocean`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::DigitalOcean => "digitalocean",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses `local`, `digitalocean` or `do`, in any case.
impl FromStr for ProviderKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "local" => Ok(ProviderKind::Local),
            "digitalocean" | "do" => Ok(ProviderKind::DigitalOcean),
            _ => Err(Error::invalid(
                "provider",
                format!("`{text}`: it must be `local` or `digitalocean`"),
            )),
        }
    }
}

/// How the digitalocean provider reaches App Platform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Driver {
    /// The REST API when a token is at hand (`DIGITALOCEAN_TOKEN`, `DIGITALOCEAN_ACCESS_TOKEN`
    /// or doctl's configuration file), else doctl.
    #[default]
    Auto,
    /// The REST API and the exec WebSocket (`DoApi`).
    Api,
    /// The doctl binary (`Doctl`).
    Doctl,
}

impl Driver {
    /// `auto`, `api` or `doctl`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Auto => "auto",
            Driver::Api => "api",
            Driver::Doctl => "doctl",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses `auto`, `api` or `doctl`, in any case.
impl FromStr for Driver {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(Driver::Auto),
            "api" => Ok(Driver::Api),
            "doctl" => Ok(Driver::Doctl),
            _ => Err(Error::invalid(
                "driver",
                format!("`{text}`: it must be `auto`, `api` or `doctl`"),
            )),
        }
    }
}

/// A platform chosen from settings, and how to name it in messages: `local`,
/// `digitalocean (api)` or `digitalocean (doctl)`.
///
/// # Example
///
/// ```no_run
/// use sandbox_core::{Driver, Provider, ProviderKind, Sandbox};
/// # async fn run() -> sandbox_core::Result<()> {
/// // What SANDBOX_PROVIDER, SANDBOX_DRIVER, DIGITALOCEAN_API_URL, ... say (default: local).
/// let provider = Provider::from_env()?;
/// // Or explicitly:
/// let provider = Provider::builder()
///     .kind(ProviderKind::DigitalOcean)
///     .driver(Driver::Auto)
///     .build()?;
/// println!("provider: {}", provider.label());
/// let sandbox = Sandbox::builder()
///     .platform(provider.platform().clone())
///     .create()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Provider {
    platform: Arc<dyn Platform>,
    label: String,
    kind: ProviderKind,
    driver: Option<Driver>,
}

impl Provider {
    /// A builder with the defaults: the local provider, its default state folder.
    pub fn builder() -> ProviderBuilder {
        ProviderBuilder::new()
    }

    /// The provider the environment names: see [`ProviderBuilder::from_env`].
    ///
    /// # Errors
    ///
    /// As [`ProviderBuilder::from_env`] and [`ProviderBuilder::build`].
    pub fn from_env() -> Result<Provider> {
        ProviderBuilder::from_env()?.build()
    }

    /// The platform, for [`SandboxBuilder::platform`](crate::SandboxBuilder::platform) and
    /// the other calls that take one.
    #[must_use]
    pub fn platform(&self) -> &Arc<dyn Platform> {
        &self.platform
    }

    /// The platform, consuming the provider.
    #[must_use]
    pub fn into_platform(self) -> Arc<dyn Platform> {
        self.platform
    }

    /// `local`, `digitalocean (api)` or `digitalocean (doctl)`.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Where sandboxes run.
    #[must_use]
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The driver in use on DigitalOcean (`Api` or `Doctl`, never `Auto`); `None` for local.
    #[must_use]
    pub fn driver(&self) -> Option<Driver> {
        self.driver
    }

    fn digitalocean(platform: Arc<dyn Platform>, driver: Driver) -> Provider {
        Provider {
            platform,
            label: format!("digitalocean ({driver})"),
            kind: ProviderKind::DigitalOcean,
            driver: Some(driver),
        }
    }
}

/// The settings a [`Provider`] is built from; every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ProviderBuilder {
    kind: ProviderKind,
    driver: Driver,
    api_url: Option<String>,
    context: Option<String>,
    token: Option<Token>,
    doctl: Option<PathBuf>,
    local_dir: Option<PathBuf>,
}

impl ProviderBuilder {
    /// The defaults: the local provider; on DigitalOcean the `auto` driver.
    pub fn new() -> Self {
        Self::default()
    }

    /// The settings in the environment:
    ///
    /// | variable | setting |
    /// | --- | --- |
    /// | `SANDBOX_PROVIDER` | [`kind`](Self::kind): `local` (default) or `digitalocean` |
    /// | `SANDBOX_DRIVER` | [`driver`](Self::driver): `auto` (default), `api` or `doctl` |
    /// | `DIGITALOCEAN_API_URL` | [`api_url`](Self::api_url) |
    /// | `DIGITALOCEAN_CONTEXT` | [`context`](Self::context) |
    /// | `DOCTL` | [`doctl`](Self::doctl) |
    /// | `SANDBOX_LOCAL_DIR` | [`local_dir`](Self::local_dir) |
    ///
    /// Empty values count as unset. Tokens are not read here: the drivers read them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the variable when a provider or driver is unknown.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// [`ProviderBuilder::from_env`] over any lookup (for tests, or another source).
    ///
    /// # Errors
    ///
    /// As [`ProviderBuilder::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let value = |key: &str| lookup(key).filter(|v| !v.is_empty());
        let named = |key: &str, e: Error| match e {
            Error::InvalidArgument { reason, .. } => Error::invalid(key, reason),
            other => other,
        };
        let mut builder = ProviderBuilder::new();
        if let Some(kind) = value(PROVIDER_ENV) {
            builder.kind = kind.parse().map_err(|e| named(PROVIDER_ENV, e))?;
        }
        if let Some(driver) = value(DRIVER_ENV) {
            builder.driver = driver.parse().map_err(|e| named(DRIVER_ENV, e))?;
        }
        builder.api_url = value(API_URL_ENV);
        builder.context = value(CONTEXT_ENV);
        builder.doctl = value(doctl_driver::DOCTL_ENV).map(PathBuf::from);
        builder.local_dir = value(LOCAL_DIR_ENV).map(PathBuf::from);
        Ok(builder)
    }

    /// Where sandboxes run (default local).
    pub fn kind(mut self, kind: ProviderKind) -> Self {
        self.kind = kind;
        self
    }

    /// How DigitalOcean is reached (default [`Driver::Auto`]).
    pub fn driver(mut self, driver: Driver) -> Self {
        self.driver = driver;
        self
    }

    /// The API's base URL (for example an emulator's); default `https://api.digitalocean.com`.
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(url.into());
        self
    }

    /// The doctl context whose token is used (default: `DIGITALOCEAN_CONTEXT`, else doctl's
    /// current one).
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// The API token (default: what the drivers find, `DIGITALOCEAN_TOKEN`,
    /// `DIGITALOCEAN_ACCESS_TOKEN`, else doctl's configuration file). With [`Driver::Auto`], a
    /// token given here means the REST API.
    pub fn token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// The doctl binary (default `DOCTL`, else `doctl` on `PATH`).
    pub fn doctl(mut self, binary: impl Into<PathBuf>) -> Self {
        self.doctl = Some(binary.into());
        self
    }

    /// The local provider's state folder (default: as `sandbox_local::LocalConfig::from_env`).
    pub fn local_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.local_dir = Some(dir.into());
        self
    }

    /// Builds the platform the settings ask for.
    ///
    /// With [`Driver::Auto`], the REST API is used when a token is at hand, else doctl.
    ///
    /// # Errors
    ///
    /// [`Error::ProviderSetup`] when the local state folder or the API client cannot be set
    /// up; [`Error::Platform`] with `NotAuthenticated` when `auto` finds neither a token nor
    /// doctl; [`Error::InvalidArgument`] for the local provider without the `local` feature.
    pub fn build(&self) -> Result<Provider> {
        let span = tracing::debug_span!("provider.build", kind = %self.kind, driver = %self.driver);
        let _entered = span.enter();
        match self.kind {
            ProviderKind::Local => self.local(),
            ProviderKind::DigitalOcean => self.digitalocean(),
        }
    }

    #[cfg(feature = "local")]
    fn local(&self) -> Result<Provider> {
        let config = match &self.local_dir {
            Some(dir) => sandbox_local::LocalConfig::new(dir),
            None => sandbox_local::LocalConfig::from_env(),
        };
        let platform =
            sandbox_local::LocalPlatform::new(config).map_err(|e| Error::ProviderSetup {
                action: "start the local provider".to_owned(),
                source: Box::new(e),
            })?;
        Ok(Provider {
            platform: Arc::new(platform),
            label: "local".to_owned(),
            kind: ProviderKind::Local,
            driver: None,
        })
    }

    #[cfg(not(feature = "local"))]
    fn local(&self) -> Result<Provider> {
        Err(Error::invalid(
            "provider",
            "the local provider needs sandbox-core's `local` feature",
        ))
    }

    fn api(&self) -> doctl_driver::Result<DoApi> {
        let mut config = DoApiConfig::new();
        if let Some(url) = &self.api_url {
            config = config.with_base_url(url.clone());
        }
        if let Some(token) = &self.token {
            config = config.with_token(token.clone());
        }
        if let Some(context) = &self.context {
            config = config.with_context(context.clone());
        }
        DoApi::new(config)
    }

    fn doctl_driver(&self) -> Doctl {
        let mut config = DoctlConfig::new();
        if let Some(url) = &self.api_url {
            config = config.with_api_url(url.clone());
        }
        if let Some(token) = &self.token {
            config = config.with_token(token.clone());
        }
        if let Some(context) = &self.context {
            config = config.with_context(context.clone());
        }
        if let Some(binary) = &self.doctl {
            config = config.with_binary(binary.clone());
        }
        Doctl::new(config)
    }

    fn digitalocean(&self) -> Result<Provider> {
        let setup = |e: doctl_driver::Error| Error::ProviderSetup {
            action: "use the DigitalOcean API".to_owned(),
            source: Box::new(e),
        };
        match self.driver {
            Driver::Api => Ok(Provider::digitalocean(
                Arc::new(self.api().map_err(setup)?),
                Driver::Api,
            )),
            Driver::Doctl => Ok(Provider::digitalocean(
                Arc::new(self.doctl_driver()),
                Driver::Doctl,
            )),
            Driver::Auto => match self.api() {
                Ok(api) => Ok(Provider::digitalocean(Arc::new(api), Driver::Api)),
                Err(doctl_driver::Error::NotAuthenticated { message }) => {
                    let doctl = self.doctl_driver();
                    if doctl.binary().is_none() {
                        return Err(Error::Platform(doctl_driver::Error::NotAuthenticated {
                            message: format!(
                                "{message}; and doctl, the other way in, is not installed (set `DOCTL` or put it on PATH)"
                            ),
                        }));
                    }
                    tracing::debug!("no API token at hand; using doctl");
                    Ok(Provider::digitalocean(Arc::new(doctl), Driver::Doctl))
                }
                Err(e) => Err(setup(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_environment_names_every_setting() {
        let builder = ProviderBuilder::from_lookup(lookup(&[
            ("SANDBOX_PROVIDER", "DO"),
            ("SANDBOX_DRIVER", "doctl"),
            ("DIGITALOCEAN_API_URL", "http://127.0.0.1:1"),
            ("DIGITALOCEAN_CONTEXT", "work"),
            ("DOCTL", "/opt/doctl"),
            ("SANDBOX_LOCAL_DIR", ""),
        ]))
        .unwrap();
        assert_eq!(
            builder,
            ProviderBuilder::new()
                .kind(ProviderKind::DigitalOcean)
                .driver(Driver::Doctl)
                .api_url("http://127.0.0.1:1")
                .context("work")
                .doctl("/opt/doctl")
        );
        assert_eq!(
            ProviderBuilder::from_lookup(lookup(&[])).unwrap(),
            ProviderBuilder::new()
        );
    }

    #[test]
    fn unknown_values_name_the_variable() {
        for (key, value) in [("SANDBOX_PROVIDER", "aws"), ("SANDBOX_DRIVER", "ssh")] {
            let err = ProviderBuilder::from_lookup(lookup(&[(key, value)])).unwrap_err();
            match &err {
                Error::InvalidArgument { name, reason } => {
                    assert_eq!(name, key);
                    assert!(reason.contains(value), "{err}");
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(
            "Local".parse::<ProviderKind>().unwrap(),
            ProviderKind::Local
        );
        assert_eq!("API".parse::<Driver>().unwrap(), Driver::Api);
    }

    #[test]
    fn drivers_are_chosen_as_asked() {
        // An explicit doctl needs nothing at build time.
        let doctl = Provider::builder()
            .kind(ProviderKind::DigitalOcean)
            .driver(Driver::Doctl)
            .doctl("/nonexistent/doctl")
            .build()
            .unwrap();
        assert_eq!(doctl.label(), "digitalocean (doctl)");
        assert_eq!(doctl.platform().kind(), "doctl");
        assert_eq!(doctl.driver(), Some(Driver::Doctl));
        assert_eq!(doctl.kind(), ProviderKind::DigitalOcean);
        // With a token at hand, `auto` is the REST API, at the URL given.
        let api = Provider::builder()
            .kind(ProviderKind::DigitalOcean)
            .api_url("http://127.0.0.1:9")
            .token(Token::new("dop_v1_test"))
            .build()
            .unwrap();
        assert_eq!(api.label(), "digitalocean (api)");
        assert_eq!(api.platform().kind(), "api");
        assert_eq!(api.driver(), Some(Driver::Api));
        assert!(!format!("{api:?}").contains("dop_v1_test"), "{api:?}");
    }

    #[cfg(feature = "local")]
    #[test]
    fn local_uses_the_state_folder_given() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let local = Provider::builder().local_dir(&state).build().unwrap();
        assert_eq!(local.label(), "local");
        assert_eq!(local.platform().kind(), "local");
        assert_eq!(local.driver(), None);
        assert!(state.is_dir(), "the state folder is created");
        // A state folder that cannot be made is a setup error with the cause as its source.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = Provider::builder()
            .local_dir(file.join("below"))
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::ProviderSetup { .. }), "{err}");
        assert_eq!(err.to_string(), "cannot start the local provider");
        assert!(std::error::Error::source(&err).is_some());
    }
}
