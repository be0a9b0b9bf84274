//! The App Spec model, in App Platform's own field names and order.
//!
//! Field order follows godo's structs (what doctl re-encodes), so rendered specs read like the
//! ones doctl and the API print. Every optional field is skipped when empty.
//!
//! Parsing never fails on a field this model does not know: such fields land in the `extra`
//! map of the struct they appear in and are rendered again (after the known fields), so a spec
//! read from the API and written back loses nothing. [`AppSpec::validate`] looks into `extra`
//! where App Platform has a rule about a field the model leaves out (ports on a worker).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{SpecError, SpecFormat};

/// Fields of a spec object that this model does not know, in the order they were read.
pub type Extra = Map<String, Value>;

/// A whole App Spec: the desired state of an app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AppSpec {
    /// App name, unique per account (`^[a-z][a-z0-9-]{0,30}[a-z0-9]$`).
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Long-running components reachable over HTTP.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub services: Vec<ServiceSpec>,
    /// Long-running components without ports.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub workers: Vec<WorkerSpec>,
    /// Region slug (`atl`, `nyc`, ... or a data-centre slug such as `atl1`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar_string"
    )]
    pub region: Option<String>,
    /// App-level environment variables, shared by all components.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub envs: Vec<EnvVar>,
    /// App-level alerts.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub alerts: Vec<AlertSpec>,
    /// HTTP routing rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// Fields this model does not know (static sites, jobs, domains, ...), kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A container image from a registry.
///
/// `Debug` hides `registry_credentials` (kept in `extra` when a spec carries one).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageSource {
    /// `DOCKER_HUB`, `DOCR` or `GHCR`.
    #[serde(default, deserialize_with = "null_default")]
    pub registry_type: String,
    /// Registry owner (GHCR: the owner; DOCKER_HUB: user or org; DOCR: empty).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub registry: String,
    /// Repository name.
    #[serde(default, deserialize_with = "null_default")]
    pub repository: String,
    /// Tag (exclusive with `digest`).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "scalar_string"
    )]
    pub tag: String,
    /// Digest (exclusive with `tag`).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub digest: String,
    /// Fields this model does not know (`registry_credentials`, `deploy_on_push`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A service component: long-running, with an HTTP port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServiceSpec {
    /// Component name (same rule as app names).
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSource>,
    /// Command that replaces the image's CMD.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "scalar_string"
    )]
    pub run_command: String,
    /// Component environment variables.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub envs: Vec<EnvVar>,
    /// Instance size slug.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub instance_size_slug: String,
    /// Number of instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    /// Public HTTP port (App Platform's default is 8080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    /// Readiness check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Ports reachable only from inside the app.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub internal_ports: Vec<u16>,
    /// Component alerts.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub alerts: Vec<AlertSpec>,
    /// Fields this model does not know (`autoscaling`, `liveness_health_check`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A worker component: long-running, no ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerSpec {
    /// Component name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSource>,
    /// Command that replaces the image's CMD.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "scalar_string"
    )]
    pub run_command: String,
    /// Component environment variables.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub envs: Vec<EnvVar>,
    /// Instance size slug.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub instance_size_slug: String,
    /// Number of instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    /// Component alerts.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub alerts: Vec<AlertSpec>,
    /// Fields this model does not know. Ports (`http_port`, `internal_ports`, `health_check`)
    /// end up here when a spec gives them to a worker; [`AppSpec::validate`] rejects them.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A readiness health check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthCheck {
    /// Seconds before the first check (0 to 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<u32>,
    /// Seconds between checks (1 to 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    /// Seconds before a check times out (1 to 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Successes needed to be ready (1 to 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    /// Failures before the instance is unready (1 to 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// HTTP path; unset means a TCP check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    /// Port checked: `http_port` or one of `internal_ports`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Fields this model does not know (the deprecated `path`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// An environment variable.
///
/// `Debug` hides the value of a `SECRET`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EnvVar {
    /// Name (`^[_A-Za-z][_A-Za-z0-9]*$`).
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    /// Value (for SECRET, the API returns ciphertext `EV[1:...]`).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "scalar_string"
    )]
    pub value: String,
    /// `UNSET`, `RUN_TIME`, `BUILD_TIME` or `RUN_AND_BUILD_TIME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `GENERAL` or `SECRET`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An alert rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AlertSpec {
    /// Rule, for example `DEPLOYMENT_FAILED`.
    #[serde(default, deserialize_with = "null_default")]
    pub rule: String,
    /// Whether the alert is off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// `GREATER_THAN` or `LESS_THAN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// `FIVE_MINUTES`, `TEN_MINUTES`, `THIRTY_MINUTES` or `ONE_HOUR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// HTTP routing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IngressSpec {
    /// Rules, first match wins.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub rules: Vec<IngressRule>,
    /// Fields this model does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One routing rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IngressRule {
    /// What requests match.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matcher: Option<IngressMatch>,
    /// The component that serves them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<IngressComponent>,
    /// Fields this model does not know (`redirect`, `cors`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A request matcher.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IngressMatch {
    /// Path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// Fields this model does not know (`authority`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A path prefix match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PathMatch {
    /// Path prefix, for example `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Fields this model does not know (`exact`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The component a rule routes to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IngressComponent {
    /// Component name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Fields this model does not know (`preserve_path_prefix`, `rewrite`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A borrowed service or worker, for code that treats both alike.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ComponentRef<'a> {
    /// An entry of `services`.
    Service(&'a ServiceSpec),
    /// An entry of `workers`.
    Worker(&'a WorkerSpec),
}

impl<'a> ComponentRef<'a> {
    /// The component's name.
    pub fn name(&self) -> &'a str {
        match self {
            ComponentRef::Service(s) => &s.name,
            ComponentRef::Worker(w) => &w.name,
        }
    }

    /// The component's image, when it runs one.
    pub fn image(&self) -> Option<&'a ImageSource> {
        match self {
            ComponentRef::Service(s) => s.image.as_ref(),
            ComponentRef::Worker(w) => w.image.as_ref(),
        }
    }

    /// The component's environment variables.
    pub fn envs(&self) -> &'a [EnvVar] {
        match self {
            ComponentRef::Service(s) => &s.envs,
            ComponentRef::Worker(w) => &w.envs,
        }
    }
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value: &dyn fmt::Debug = if self.is_secret() {
            &Redacted
        } else {
            &self.value
        };
        f.debug_struct("EnvVar")
            .field("key", &self.key)
            .field("value", value)
            .field("scope", &self.scope)
            .field("kind", &self.kind)
            .finish()
    }
}

impl fmt::Debug for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut extra = self.extra.clone();
        if let Some(credentials) = extra.get_mut("registry_credentials") {
            *credentials = Value::String("<redacted>".to_owned());
        }
        f.debug_struct("ImageSource")
            .field("registry_type", &self.registry_type)
            .field("registry", &self.registry)
            .field("repository", &self.repository)
            .field("tag", &self.tag)
            .field("digest", &self.digest)
            .field("extra", &extra)
            .finish()
    }
}

impl AppSpec {
    /// An empty spec with this name.
    pub fn new(name: impl Into<String>) -> Self {
        AppSpec {
            name: name.into(),
            ..AppSpec::default()
        }
    }

    /// Services, then workers.
    pub fn components(&self) -> impl Iterator<Item = ComponentRef<'_>> {
        self.services
            .iter()
            .map(ComponentRef::Service)
            .chain(self.workers.iter().map(ComponentRef::Worker))
    }

    /// The service or worker with this name.
    pub fn component(&self, name: &str) -> Option<ComponentRef<'_>> {
        self.components().find(|c| c.name() == name)
    }

    /// The app-level environment variable with this key.
    pub fn env(&self, key: &str) -> Option<&EnvVar> {
        self.envs.iter().find(|e| e.key == key)
    }

    /// Renders the spec as YAML, the format `doctl apps create --spec` reads.
    ///
    /// Strings are written bare only when they are plain words or paths; anything a YAML 1.1
    /// reader such as doctl's could take for another type (`no`, `on`, `1_000`, `24.04`) or
    /// that needs escaping (quotes, backslashes, newlines, `: `, `#`, leading spaces) is
    /// double-quoted, so every value reads back exactly.
    ///
    /// # Errors
    ///
    /// [`SpecError::Render`] if the serializer fails (in practice it does not for this model).
    pub fn to_yaml(&self) -> Result<String, SpecError> {
        let value =
            serde_json::to_value(self).map_err(|e| SpecError::render(SpecFormat::Yaml, e))?;
        Ok(crate::yaml::render(&value))
    }

    /// Renders the spec as pretty-printed JSON (two-space indents, no trailing newline).
    ///
    /// # Errors
    ///
    /// [`SpecError::Render`] if the serializer fails (in practice it does not for this model).
    pub fn to_json(&self) -> Result<String, SpecError> {
        serde_json::to_string_pretty(self).map_err(|e| SpecError::render(SpecFormat::Json, e))
    }

    /// Renders the spec as compact JSON, the shape of the API request body's `spec`.
    ///
    /// # Errors
    ///
    /// [`SpecError::Render`] if the serializer fails (in practice it does not for this model).
    pub fn to_json_compact(&self) -> Result<String, SpecError> {
        serde_json::to_string(self).map_err(|e| SpecError::render(SpecFormat::Json, e))
    }

    /// Parses a YAML spec. Unknown fields are kept in `extra`, never rejected. The result is
    /// not validated: call [`AppSpec::validate`].
    ///
    /// # Errors
    ///
    /// [`SpecError::Parse`] when the text is not YAML or a field has the wrong type.
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        serde_yaml::from_str(text).map_err(|e| SpecError::parse(SpecFormat::Yaml, e))
    }

    /// Parses a JSON spec. Unknown fields are kept in `extra`, never rejected. The result is
    /// not validated: call [`AppSpec::validate`].
    ///
    /// # Errors
    ///
    /// [`SpecError::Parse`] when the text is not JSON or a field has the wrong type.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        serde_json::from_str(text).map_err(|e| SpecError::parse(SpecFormat::Json, e))
    }

    /// Parses a spec from an already decoded JSON value (for example the `spec` of an app
    /// returned by the API).
    ///
    /// # Errors
    ///
    /// [`SpecError::Parse`] when a field has the wrong type.
    pub fn from_value(value: Value) -> Result<Self, SpecError> {
        serde_json::from_value(value).map_err(|e| SpecError::parse(SpecFormat::Json, e))
    }
}

impl ImageSource {
    /// An image on the GitHub Container Registry: `ghcr.io/<owner>/<repository>:<tag>`.
    pub fn ghcr(
        owner: impl Into<String>,
        repository: impl Into<String>,
        tag: impl Into<String>,
    ) -> Self {
        ImageSource {
            registry_type: "GHCR".to_owned(),
            registry: owner.into(),
            repository: repository.into(),
            tag: tag.into(),
            ..ImageSource::default()
        }
    }

    /// The last path segment of the repository (`sandbox-python` for `org/sandbox-python`).
    pub fn repository_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(self.repository.as_str())
    }
}

impl ServiceSpec {
    /// A service with this name and nothing else set.
    pub fn new(name: impl Into<String>) -> Self {
        ServiceSpec {
            name: name.into(),
            ..ServiceSpec::default()
        }
    }
}

impl WorkerSpec {
    /// A worker with this name and nothing else set.
    pub fn new(name: impl Into<String>) -> Self {
        WorkerSpec {
            name: name.into(),
            ..WorkerSpec::default()
        }
    }
}

impl EnvVar {
    /// A plain variable with no scope or type set (App Platform then uses
    /// `RUN_AND_BUILD_TIME` and `GENERAL`).
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        EnvVar {
            key: key.into(),
            value: value.into(),
            scope: None,
            kind: None,
        }
    }

    /// A `GENERAL` variable visible at run time only.
    pub fn run_time(key: impl Into<String>, value: impl Into<String>) -> Self {
        EnvVar {
            scope: Some("RUN_TIME".to_owned()),
            kind: Some("GENERAL".to_owned()),
            ..EnvVar::new(key, value)
        }
    }

    /// A `SECRET` variable visible at run time only (App Platform encrypts it on submit and
    /// returns ciphertext afterwards).
    pub fn secret(key: impl Into<String>, value: impl Into<String>) -> Self {
        EnvVar {
            scope: Some("RUN_TIME".to_owned()),
            kind: Some("SECRET".to_owned()),
            ..EnvVar::new(key, value)
        }
    }

    /// Whether the variable is a secret.
    pub fn is_secret(&self) -> bool {
        self.kind.as_deref() == Some("SECRET")
    }
}

impl IngressSpec {
    /// Routing with these rules.
    pub fn new(rules: Vec<IngressRule>) -> Self {
        IngressSpec {
            rules,
            extra: Extra::new(),
        }
    }
}

impl AlertSpec {
    /// An enabled alert on this rule (for example `DEPLOYMENT_FAILED`), with no threshold.
    pub fn new(rule: impl Into<String>) -> Self {
        AlertSpec {
            rule: rule.into(),
            ..AlertSpec::default()
        }
    }
}

impl IngressRule {
    /// A rule sending every path under `prefix` to `component`.
    pub fn prefix(prefix: impl Into<String>, component: impl Into<String>) -> Self {
        IngressRule {
            matcher: Some(IngressMatch {
                path: Some(PathMatch {
                    prefix: Some(prefix.into()),
                    extra: Extra::new(),
                }),
                extra: Extra::new(),
            }),
            component: Some(IngressComponent {
                name: component.into(),
                extra: Extra::new(),
            }),
            extra: Extra::new(),
        }
    }
}

/// Reads `null` (or an empty YAML value) as the field's default instead of failing.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads a string field that a hand-written YAML spec may give as a bare number or boolean
/// (`tag: 24.04`, `value: 1`): the scalar is kept as text instead of failing the parse.
fn scalar_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(opt_scalar_string(deserializer)?.unwrap_or_default())
}

fn opt_scalar_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct ScalarVisitor;

    impl<'de> Visitor<'de> for ScalarVisitor {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(ScalarVisitor)
        }
    }

    deserializer.deserialize_any(ScalarVisitor)
}
