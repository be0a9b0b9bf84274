//! The App Spec model, in App Platform's own field names and order.
//!
//! Field order follows godo's structs (what doctl re-encodes), so rendered specs read like the
//! ones doctl and the API print. Every optional field is skipped when empty, and unknown fields
//! are ignored when parsing, so specs returned by the API never fail to parse.

use serde::{Deserialize, Serialize};

/// A whole App Spec: the desired state of an app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AppSpec {
    /// App name, unique per account (`^[a-z][a-z0-9-]{0,30}[a-z0-9]$`).
    pub name: String,
    /// Long-running components reachable over HTTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    /// Long-running components without ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerSpec>,
    /// Region slug (`atl`, `nyc`, ... or a data-centre slug such as `atl1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// App-level environment variables, shared by all components.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envs: Vec<EnvVar>,
    /// App-level alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertSpec>,
    /// HTTP routing rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
}

/// A container image from a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageSource {
    /// `DOCKER_HUB`, `DOCR` or `GHCR`.
    pub registry_type: String,
    /// Registry owner (GHCR: the owner; DOCKER_HUB: user or org; DOCR: empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registry: String,
    /// Repository name.
    pub repository: String,
    /// Tag (exclusive with `digest`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// Digest (exclusive with `tag`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

/// A service component: long-running, with an HTTP port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServiceSpec {
    /// Component name (same rule as app names).
    pub name: String,
    /// Container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSource>,
    /// Command that replaces the image's CMD.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_command: String,
    /// Component environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envs: Vec<EnvVar>,
    /// Instance size slug.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance_size_slug: String,
    /// Number of instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    /// Public HTTP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    /// Readiness check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Ports reachable only from inside the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub internal_ports: Vec<u16>,
    /// Component alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertSpec>,
}

/// A worker component: long-running, no ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerSpec {
    /// Component name.
    pub name: String,
    /// Container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSource>,
    /// Command that replaces the image's CMD.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_command: String,
    /// Component environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envs: Vec<EnvVar>,
    /// Instance size slug.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance_size_slug: String,
    /// Number of instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    /// Component alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertSpec>,
}

/// A readiness health check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthCheck {
    /// Seconds before the first check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<u32>,
    /// Seconds between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    /// Seconds before a check times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Successes needed to be ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    /// Failures before the instance is unready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// HTTP path; unset means a TCP check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    /// Port checked: `http_port` or one of `internal_ports`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// An environment variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EnvVar {
    /// Name (`^[_A-Za-z][_A-Za-z0-9]*$`).
    pub key: String,
    /// Value (for SECRET, the API returns ciphertext `EV[1:...]`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<IngressRule>,
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
}

/// A request matcher.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IngressMatch {
    /// Path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
}

/// A path prefix match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PathMatch {
    /// Path prefix, for example `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// The component a rule routes to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IngressComponent {
    /// Component name.
    pub name: String,
}
