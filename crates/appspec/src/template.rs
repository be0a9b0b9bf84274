//! Sandbox templates: the app specs this project creates, python or node, service or worker.
//!
//! The fields match what the Python SDK renders (one component named `sandbox`, a GHCR image
//! `<owner>/sandbox-<kind>:<tag>`, one instance; a service adds `http_port` 8080,
//! `internal_ports: [9090]` and a `/sandbox_health` check on 9090), plus the app-level marker
//! env var described in [`crate::marker`]. Defaults come from [`TemplateDefaults`], which reads
//! the same environment variables as the Python SDK through an injectable lookup.

use std::fmt;
use std::str::FromStr;

use crate::error::SpecError;
use crate::marker::SandboxInfo;
use crate::model::{AppSpec, EnvVar, HealthCheck, ImageSource, ServiceSpec, WorkerSpec};

/// The name of the one component of every sandbox app.
pub const SANDBOX_COMPONENT: &str = "sandbox";
/// GHCR owner of the sandbox images when neither `APP_SANDBOX_REGISTRY` nor `GHCR_OWNER` is set.
pub const DEFAULT_OWNER: &str = "bikramkgupta";
/// Region when `APP_SANDBOX_REGION` is not set.
pub const DEFAULT_REGION: &str = "atl1";
/// Instance size of a sandbox unless told otherwise.
pub const DEFAULT_INSTANCE_SIZE: &str = "apps-s-1vcpu-1gb";
/// Image tag when `APP_SANDBOX_PYTHON_TAG` / `APP_SANDBOX_NODE_TAG` is not set.
pub const DEFAULT_TAG: &str = "latest";
/// Public HTTP port of a service sandbox (free for the user's own server).
pub const SERVICE_HTTP_PORT: u16 = 8080;
/// Internal port of the images' health server.
pub const HEALTH_PORT: u16 = 9090;
/// Path the images' health server answers.
pub const HEALTH_PATH: &str = "/sandbox_health";

/// Environment variable: GHCR owner of the images (fallback after `APP_SANDBOX_REGISTRY`).
pub const ENV_GHCR_OWNER: &str = "GHCR_OWNER";
/// Environment variable: GHCR owner of the images, overriding `GHCR_OWNER`.
pub const ENV_REGISTRY: &str = "APP_SANDBOX_REGISTRY";
/// Environment variable: tag of the python image.
pub const ENV_PYTHON_TAG: &str = "APP_SANDBOX_PYTHON_TAG";
/// Environment variable: tag of the node image.
pub const ENV_NODE_TAG: &str = "APP_SANDBOX_NODE_TAG";
/// Environment variable: default region.
pub const ENV_REGION: &str = "APP_SANDBOX_REGION";

/// The language image a sandbox runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageKind {
    /// `sandbox-python`: Python 3 with uv.
    Python,
    /// `sandbox-node`: Node.js.
    Node,
}

impl ImageKind {
    /// Every kind, in the order error messages list them.
    pub const ALL: &'static [ImageKind] = &[ImageKind::Python, ImageKind::Node];

    /// The kind's name: `python` or `node`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Python => "python",
            ImageKind::Node => "node",
        }
    }

    /// The image repository: `sandbox-python` or `sandbox-node`.
    pub fn repository(self) -> &'static str {
        match self {
            ImageKind::Python => "sandbox-python",
            ImageKind::Node => "sandbox-node",
        }
    }

    /// The environment variable holding this image's tag.
    pub fn tag_env(self) -> &'static str {
        match self {
            ImageKind::Python => ENV_PYTHON_TAG,
            ImageKind::Node => ENV_NODE_TAG,
        }
    }

    fn supported() -> String {
        ImageKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageKind {
    type Err = SpecError;

    /// Parses `python` or `node` (any case, surrounding blanks ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        ImageKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                SpecError::invalid(
                    "image",
                    format!(
                        "unknown image kind {s:?}; supported kinds: {}",
                        ImageKind::supported()
                    ),
                )
            })
    }
}

/// Whether a sandbox runs as a service (public URL, health check) or a worker (no ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ComponentType {
    /// A service: `http_port` 8080, `internal_ports: [9090]`, health check on 9090.
    Service,
    /// A worker: no ports, no URL.
    Worker,
}

impl ComponentType {
    /// `service` or `worker`.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentType::Service => "service",
            ComponentType::Worker => "worker",
        }
    }
}

impl fmt::Display for ComponentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ComponentType {
    type Err = SpecError;

    /// Parses `service` or `worker` (any case, surrounding blanks ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "service" => Ok(ComponentType::Service),
            "worker" => Ok(ComponentType::Worker),
            _ => Err(SpecError::invalid(
                "component_type",
                format!("unknown component type {s:?}; supported types: service, worker"),
            )),
        }
    }
}

/// Template defaults, usually read from the environment.
///
/// | field | variable | fallback |
/// | --- | --- | --- |
/// | `owner` | `APP_SANDBOX_REGISTRY`, then `GHCR_OWNER` | `bikramkgupta` |
/// | `python_tag` | `APP_SANDBOX_PYTHON_TAG` | `latest` |
/// | `node_tag` | `APP_SANDBOX_NODE_TAG` | `latest` |
/// | `region` | `APP_SANDBOX_REGION` (lower-cased) | `atl1` |
/// | `instance_size` | none | `apps-s-1vcpu-1gb` |
///
/// A variable set to an empty (or blank) string counts as unset.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TemplateDefaults {
    /// GHCR owner of the images.
    pub owner: String,
    /// Tag of `sandbox-python`.
    pub python_tag: String,
    /// Tag of `sandbox-node`.
    pub node_tag: String,
    /// Region slug.
    pub region: String,
    /// Instance size slug.
    pub instance_size: String,
}

impl Default for TemplateDefaults {
    /// The built-in defaults, ignoring the environment.
    fn default() -> Self {
        TemplateDefaults {
            owner: DEFAULT_OWNER.to_owned(),
            python_tag: DEFAULT_TAG.to_owned(),
            node_tag: DEFAULT_TAG.to_owned(),
            region: DEFAULT_REGION.to_owned(),
            instance_size: DEFAULT_INSTANCE_SIZE.to_owned(),
        }
    }
}

impl TemplateDefaults {
    /// Reads the defaults from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the defaults through `lookup` (a key to its value, `None` when unset), so tests
    /// need not touch the process environment.
    ///
    /// ```
    /// use appspec::TemplateDefaults;
    ///
    /// let defaults = TemplateDefaults::from_lookup(|key| match key {
    ///     "GHCR_OWNER" => Some("myorg".to_owned()),
    ///     "APP_SANDBOX_REGION" => Some("NYC".to_owned()),
    ///     _ => None,
    /// });
    /// assert_eq!(defaults.owner, "myorg");
    /// assert_eq!(defaults.region, "nyc");
    /// assert_eq!(defaults.python_tag, "latest");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let builtin = TemplateDefaults::default();
        TemplateDefaults {
            owner: get(ENV_REGISTRY)
                .or_else(|| get(ENV_GHCR_OWNER))
                .unwrap_or(builtin.owner),
            python_tag: get(ENV_PYTHON_TAG).unwrap_or(builtin.python_tag),
            node_tag: get(ENV_NODE_TAG).unwrap_or(builtin.node_tag),
            region: get(ENV_REGION)
                .map(|r| r.to_ascii_lowercase())
                .unwrap_or(builtin.region),
            instance_size: builtin.instance_size,
        }
    }

    /// The tag for an image kind.
    pub fn tag(&self, kind: ImageKind) -> &str {
        match kind {
            ImageKind::Python => &self.python_tag,
            ImageKind::Node => &self.node_tag,
        }
    }
}

/// A builder for a sandbox app spec.
///
/// Unset fields come from the [`TemplateDefaults`] given with [`SandboxTemplate::defaults`]
/// (the built-in ones otherwise, never the process environment unless you pass
/// [`TemplateDefaults::from_env`]). [`SandboxTemplate::build`] validates the result.
///
/// ```
/// use appspec::{ComponentType, ImageKind, SandboxTemplate, TemplateDefaults};
///
/// let spec = SandboxTemplate::new(ImageKind::Node, ComponentType::Worker)
///     .name("sandbox-demo")
///     .defaults(TemplateDefaults::default())
///     .env("GREETING", "hello: \"world\"")
///     .build()?;
/// assert_eq!(spec.workers[0].name, "sandbox");
/// assert_eq!(spec.region.as_deref(), Some("atl1"));
/// # Ok::<(), appspec::SpecError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SandboxTemplate {
    image: ImageKind,
    component: ComponentType,
    name: Option<String>,
    region: Option<String>,
    instance_size: Option<String>,
    owner: Option<String>,
    tag: Option<String>,
    envs: Vec<EnvVar>,
    defaults: TemplateDefaults,
}

impl SandboxTemplate {
    /// A template for this image kind and component type, with built-in defaults.
    pub fn new(image: ImageKind, component: ComponentType) -> Self {
        SandboxTemplate {
            image,
            component,
            name: None,
            region: None,
            instance_size: None,
            owner: None,
            tag: None,
            envs: Vec::new(),
            defaults: TemplateDefaults::default(),
        }
    }

    /// Uses these defaults for everything not set explicitly.
    pub fn defaults(mut self, defaults: TemplateDefaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// The app name (default `sandbox-<8 hex digits>`, random).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The region slug (lower-cased).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The instance size slug.
    pub fn instance_size(mut self, slug: impl Into<String>) -> Self {
        self.instance_size = Some(slug.into());
        self
    }

    /// The GHCR owner of the image, overriding the defaults.
    pub fn registry_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// The image tag, overriding the defaults.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Adds a run-time environment variable to the component. Any value is fine: rendering
    /// escapes quotes, backslashes, newlines and the rest.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push(EnvVar {
            scope: Some("RUN_TIME".to_owned()),
            ..EnvVar::new(key, value)
        });
        self
    }

    /// Adds a run-time `SECRET` environment variable to the component.
    pub fn secret_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push(EnvVar::secret(key, value));
        self
    }

    /// Builds and validates the spec.
    ///
    /// # Errors
    ///
    /// [`SpecError::Invalid`] naming the field when a name, region, instance size, env key or
    /// anything else breaks a rule of [`AppSpec::validate`].
    pub fn build(self) -> Result<AppSpec, SpecError> {
        let name = self.name.unwrap_or_else(random_name);
        let region = self
            .region
            .map(|r| r.trim().to_ascii_lowercase())
            .unwrap_or(self.defaults.region.clone());
        let owner = self.owner.unwrap_or(self.defaults.owner.clone());
        let tag = self
            .tag
            .unwrap_or_else(|| self.defaults.tag(self.image).to_owned());
        let instance_size = self
            .instance_size
            .unwrap_or(self.defaults.instance_size.clone());
        let image = ImageSource::ghcr(owner, self.image.repository(), tag);
        let info = SandboxInfo::new(self.image, self.component);

        let mut spec = AppSpec::new(name);
        spec.region = Some(region);
        spec.envs.push(info.marker_env());
        match self.component {
            ComponentType::Service => {
                let mut service = ServiceSpec::new(SANDBOX_COMPONENT);
                service.image = Some(image);
                service.envs = self.envs;
                service.instance_size_slug = instance_size;
                service.instance_count = Some(1);
                service.http_port = Some(SERVICE_HTTP_PORT);
                service.health_check = Some(sandbox_health_check());
                service.internal_ports = vec![HEALTH_PORT];
                spec.services.push(service);
            }
            ComponentType::Worker => {
                let mut worker = WorkerSpec::new(SANDBOX_COMPONENT);
                worker.image = Some(image);
                worker.envs = self.envs;
                worker.instance_size_slug = instance_size;
                worker.instance_count = Some(1);
                spec.workers.push(worker);
            }
        }
        spec.validate()?;
        Ok(spec)
    }
}

/// The health check of a service sandbox: `GET /sandbox_health` on 9090, first after 10 s,
/// every 10 s, 5 s timeout, ready after 1 success, unready after 3 failures.
pub fn sandbox_health_check() -> HealthCheck {
    HealthCheck {
        initial_delay_seconds: Some(10),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        success_threshold: Some(1),
        failure_threshold: Some(3),
        http_path: Some(HEALTH_PATH.to_owned()),
        port: Some(HEALTH_PORT),
        ..HealthCheck::default()
    }
}

/// A fresh sandbox name: `sandbox-` and 8 random hex digits.
pub fn random_name() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("sandbox-{}", &hex[..8])
}
