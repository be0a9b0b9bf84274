//! App Platform's JSON, as the REST API returns it and `doctl -o json` re-prints it.
//!
//! These models are lenient on parse, because both sources add and drop fields over time:
//!
//! - unknown fields are ignored, missing fields take their default, and `null` reads as empty;
//! - Go's zero time `0001-01-01T00:00:00Z` (doctl prints it for every unset time), an empty
//!   string or a time that does not parse all read as `None`;
//! - `region` is an object on the app (`{"slug":"atl",...}`) and a bare slug in the spec; both
//!   shapes are accepted wherever a region appears.
//!
//! They serialize back to the API's shape (unset fields skipped), so a server emulating the API
//! can use them too. [`WireApp`], [`WireDeployment`] and [`WireInstance`] convert into the
//! crate's [`App`], [`Deployment`] and [`Instance`].
//!
//! ```
//! use doctl_driver::wire::WireApp;
//!
//! let json = r#"{"id":"6b3c","spec":{"name":"sandbox-7f3a","workers":[{"name":"sandbox"}]},
//!     "created_at":"0001-01-01T00:00:00Z","region":{"slug":"atl","label":"Atlanta"},
//!     "live_url":"https://ignored.example"}"#;
//! let wire: WireApp = serde_json::from_str(json)?;
//! let app = doctl_driver::App::try_from(wire)?;
//! assert_eq!(app.name(), "sandbox-7f3a");
//! assert_eq!(app.region.as_deref(), Some("atl"));
//! assert_eq!(app.created_at, None);
//! assert_eq!(app.live_url, None); // a worker has no URL, whatever the API says
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use appspec::AppSpec;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::Error;
use crate::types::{App, Deployment, DeploymentPhase, Instance, Progress, ProgressStep};

/// An app: the body of `{"app": ...}`, or one element of doctl's `apps get/list/create` array.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WireApp {
    /// App id.
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    /// Owner's UUID.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub owner_uuid: String,
    /// The app's spec (`None` only in malformed documents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<AppSpec>,
    /// When the last deployment became active.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub last_deployment_active_at: Option<OffsetDateTime>,
    /// Default ingress URL (apps with an HTTP component, once deployed).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub default_ingress: String,
    /// Creation time.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<OffsetDateTime>,
    /// Last change.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<OffsetDateTime>,
    /// The deployment now serving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deployment: Option<WireDeployment>,
    /// The deployment being rolled out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress_deployment: Option<WireDeployment>,
    /// The deployment waiting to start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_deployment: Option<WireDeployment>,
    /// When the last deployment was created.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub last_deployment_created_at: Option<OffsetDateTime>,
    /// Public URL.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub live_url: String,
    /// Region, as an object (or a bare slug, accepted on parse).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<WireRegion>,
    /// Pricing tier.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub tier_slug: String,
    /// Public URL base.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub live_url_base: String,
    /// Public domain.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub live_domain: String,
    /// Project the app belongs to.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub project_id: String,
}

/// A region: the API gives an object, a spec gives the slug alone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireRegion {
    /// Region slug, for example `atl`.
    pub slug: String,
    /// Human name, for example `Atlanta`.
    pub label: String,
    /// Continent.
    pub continent: String,
    /// Data-centre slugs, for example `atl1`.
    pub data_centers: Vec<String>,
    /// Whether it is the default region.
    pub default: bool,
}

impl WireRegion {
    /// A region known only by its slug.
    #[must_use]
    pub fn from_slug(slug: impl Into<String>) -> Self {
        WireRegion {
            slug: slug.into(),
            label: String::new(),
            continent: String::new(),
            data_centers: Vec::new(),
            default: false,
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct RegionObject {
    #[serde(deserialize_with = "null_default")]
    slug: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    label: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    continent: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    data_centers: Vec<String>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_false")]
    default: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RegionShape {
    Slug(String),
    Object(RegionObject),
}

impl<'de> Deserialize<'de> for WireRegion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match RegionShape::deserialize(deserializer)? {
            RegionShape::Slug(slug) => WireRegion::from_slug(slug),
            RegionShape::Object(o) => WireRegion {
                slug: o.slug,
                label: o.label,
                continent: o.continent,
                data_centers: o.data_centers,
                default: o.default,
            },
        })
    }
}

impl Serialize for WireRegion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RegionObject {
            slug: self.slug.clone(),
            label: self.label.clone(),
            continent: self.continent.clone(),
            data_centers: self.data_centers.clone(),
            default: self.default,
        }
        .serialize(serializer)
    }
}

/// A deployment: the body of `{"deployment": ...}`, an element of `{"deployments": [...]}` or of
/// doctl's `apps list-deployments` array, or an app's `*_deployment` field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WireDeployment {
    /// Deployment id.
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    /// The spec it deploys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<AppSpec>,
    /// Services it deploys (names only).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub services: Vec<WireComponentRef>,
    /// Workers it deploys (names only).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub workers: Vec<WireComponentRef>,
    /// When its phase last changed.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub phase_last_updated_at: Option<OffsetDateTime>,
    /// Creation time.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<OffsetDateTime>,
    /// Last change.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<OffsetDateTime>,
    /// What caused it.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub cause: String,
    /// Step counts and steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<WireProgress>,
    /// Phase name (`PENDING_BUILD`, ..., `ACTIVE`, `ERROR`); empty when not reported.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub phase: String,
    /// Pricing tier.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub tier_slug: String,
}

/// A component named by a deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WireComponentRef {
    /// Component name.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
}

/// A deployment's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WireProgress {
    /// Steps pending.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero")]
    pub pending_steps: u32,
    /// Steps running.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero")]
    pub running_steps: u32,
    /// Steps done.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero")]
    pub success_steps: u32,
    /// Steps failed.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero")]
    pub error_steps: u32,
    /// All steps.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero")]
    pub total_steps: u32,
    /// The step tree.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub steps: Vec<WireStep>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// One step of a deployment; steps nest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WireStep {
    /// Step name.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// `UNKNOWN`, `PENDING`, `RUNNING`, `ERROR` or `SUCCESS`.
    #[serde(deserialize_with = "null_default")]
    pub status: String,
    /// Sub-steps.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub steps: Vec<WireStep>,
    /// Start time.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<OffsetDateTime>,
    /// End time.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<OffsetDateTime>,
    /// Why the step is in its state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<WireStepReason>,
    /// The component it concerns.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub component_name: String,
    /// Message prefix (`Deploying worker`).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub message_base: String,
}

/// The reason attached to a step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WireStepReason {
    /// Machine code, for example `DeployContainerExitNonZero`.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub code: String,
    /// Human message.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
}

/// A running instance of a component.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WireInstance {
    /// Component name.
    #[serde(deserialize_with = "null_default")]
    pub component_name: String,
    /// Instance name (what a console takes).
    #[serde(deserialize_with = "null_default")]
    pub instance_name: String,
    /// `SERVICE`, `WORKER` or `JOB`.
    #[serde(deserialize_with = "null_default")]
    pub component_type: String,
    /// Short alias.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub instance_alias: String,
}

/// `{"app": {...}}`: the answer to get, create and update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AppResponse {
    /// The app.
    pub app: WireApp,
}

/// `{"apps": [...], "links": ..., "meta": ...}`: one page of apps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AppsPage {
    /// The apps on this page.
    #[serde(deserialize_with = "null_default")]
    pub apps: Vec<WireApp>,
    /// Links to other pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
    /// Totals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

/// `{"deployment": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DeploymentResponse {
    /// The deployment.
    pub deployment: WireDeployment,
}

/// `{"deployments": [...], "links": ..., "meta": ...}`: one page of deployments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DeploymentsPage {
    /// The deployments on this page, newest first.
    #[serde(deserialize_with = "null_default")]
    pub deployments: Vec<WireDeployment>,
    /// Links to other pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
    /// Totals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

/// `{"instances": [...]}` (the field may be missing when there are none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct InstancesResponse {
    /// The instances.
    #[serde(deserialize_with = "null_default")]
    pub instances: Vec<WireInstance>,
}

/// `{"url": "wss://...?token=..."}`: where a console's WebSocket is.
///
/// `Debug` hides the URL's query, which carries a token.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ExecUrlResponse {
    /// The WebSocket URL, token in its query. Never log it whole.
    #[serde(deserialize_with = "null_default")]
    pub url: String,
}

/// `{"live_url": "...", "historic_urls": [...]}`: where a component's logs are.
///
/// `Debug` hides the URLs' queries, which carry tokens or signatures.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LogsUrlResponse {
    /// The live stream (a WebSocket; `http` means `ws`, anything else `wss`).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub live_url: String,
    /// Archived log files, fetched with a plain GET.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub historic_urls: Vec<String>,
}

impl fmt::Debug for ExecUrlResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecUrlResponse")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl fmt::Debug for LogsUrlResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let historic: Vec<String> = self.historic_urls.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("LogsUrlResponse")
            .field("live_url", &redact_url(&self.live_url))
            .field("historic_urls", &historic)
            .finish()
    }
}

/// A URL safe to log: its query (tokens, signatures) and any user info replaced by
/// `[REDACTED]`.
///
/// ```
/// assert_eq!(
///     doctl_driver::wire::redact_url("wss://exec.example/s?token=abc"),
///     "wss://exec.example/s?[REDACTED]"
/// );
/// ```
#[must_use]
pub fn redact_url(url: &str) -> String {
    let (base, had_query) = match url.split_once('?') {
        Some((base, _)) => (base, true),
        None => (url, false),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://[REDACTED]@{host}{path}"),
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if had_query {
        format!("{base}?[REDACTED]")
    } else {
        base
    }
}

/// `{"spec": {...}}`: the body of create (and, with more fields, update).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreateAppRequest {
    /// The spec.
    pub spec: AppSpec,
    /// Project to put the app in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

impl CreateAppRequest {
    /// A create request for `spec`, default project.
    #[must_use]
    pub fn new(spec: AppSpec) -> Self {
        CreateAppRequest {
            spec,
            project_id: None,
        }
    }
}

/// The `links` of a list answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Links {
    /// Page links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<PageLinks>,
}

impl Links {
    /// The URL of the next page, when there is one.
    #[must_use]
    pub fn next(&self) -> Option<&str> {
        self.pages
            .as_ref()
            .and_then(|p| p.next.as_deref())
            .filter(|s| !s.is_empty())
    }
}

/// `links.pages`: absolute URLs of neighbouring pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PageLinks {
    /// First page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    /// Previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// Next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
}

/// The `meta` of a list answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Meta {
    /// Items across all pages.
    #[serde(deserialize_with = "null_default")]
    pub total: u64,
}

/// The API's error body: `{"id": "not_found", "message": "...", "request_id": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ApiErrorBody {
    /// Error id (`not_found`, `unauthorized`, `too_many_requests`, ...).
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    /// Human message.
    #[serde(deserialize_with = "null_default")]
    pub message: String,
    /// Request id, for support.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub request_id: String,
}

impl ApiErrorBody {
    /// An error body.
    #[must_use]
    pub fn new(id: impl Into<String>, message: impl Into<String>) -> Self {
        ApiErrorBody {
            id: id.into(),
            message: message.into(),
            request_id: String::new(),
        }
    }
}

/// Reads `null` as the type's default (serde's `default` only covers a missing field).
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Parses an RFC 3339 time; Go's zero time, an empty string or anything unparsable is `None`.
#[must_use]
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    (time.year() > 1).then_some(time)
}

/// Times in and out: lenient on parse, RFC 3339 on output.
mod opt_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        Ok(text.as_deref().and_then(super::parse_time))
    }

    pub(super) fn serialize<S: Serializer>(
        value: &Option<OffsetDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(time) => {
                let text = time.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
                serializer.serialize_str(&text)
            }
            None => serializer.serialize_none(),
        }
    }
}

fn non_empty(text: String) -> Option<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        None
    } else {
        Some(trimmed.to_owned())
    }
}

impl TryFrom<WireApp> for App {
    type Error = Error;

    /// Fails only when the document has no id or no spec.
    fn try_from(wire: WireApp) -> Result<Self, Error> {
        if wire.id.is_empty() {
            return Err(Error::other("app JSON has no `id`"));
        }
        let Some(spec) = wire.spec else {
            return Err(Error::other(format!(
                "app `{}` JSON has no `spec`",
                wire.id
            )));
        };
        // Only an app with an HTTP component can have a URL; a worker never gets one, whatever
        // a field says.
        let live_url = if spec.services.is_empty() {
            None
        } else {
            non_empty(wire.live_url).or_else(|| non_empty(wire.default_ingress))
        };
        let region = wire
            .region
            .map(|r| r.slug)
            .and_then(non_empty)
            .or_else(|| spec.region.clone().and_then(non_empty));
        Ok(App {
            id: wire.id,
            spec,
            live_url,
            region,
            active_deployment: wire.active_deployment.map(Deployment::from),
            in_progress_deployment: wire.in_progress_deployment.map(Deployment::from),
            pending_deployment: wire.pending_deployment.map(Deployment::from),
            created_at: wire.created_at,
            updated_at: wire.updated_at,
        })
    }
}

impl From<WireDeployment> for Deployment {
    fn from(wire: WireDeployment) -> Self {
        Deployment {
            id: wire.id,
            phase: DeploymentPhase::parse(&wire.phase),
            progress: wire.progress.map(Progress::from),
            cause: non_empty(wire.cause),
            created_at: wire.created_at,
            updated_at: wire.updated_at,
        }
    }
}

impl From<WireProgress> for Progress {
    fn from(wire: WireProgress) -> Self {
        let mut steps = Vec::new();
        flatten_steps(wire.steps, "", &mut steps);
        Progress {
            pending_steps: wire.pending_steps,
            running_steps: wire.running_steps,
            success_steps: wire.success_steps,
            error_steps: wire.error_steps,
            total_steps: wire.total_steps,
            steps,
        }
    }
}

/// Flattens the step tree depth-first, naming each step by its path (`deploy/components/sandbox`).
fn flatten_steps(steps: Vec<WireStep>, prefix: &str, out: &mut Vec<ProgressStep>) {
    for step in steps {
        let name = if prefix.is_empty() {
            step.name.clone()
        } else {
            format!("{prefix}/{}", step.name)
        };
        let reason = step
            .reason
            .and_then(|r| non_empty(r.message).or_else(|| non_empty(r.code)));
        out.push(ProgressStep {
            name: name.clone(),
            status: step.status,
            reason,
        });
        flatten_steps(step.steps, &name, out);
    }
}

impl From<WireInstance> for Instance {
    fn from(wire: WireInstance) -> Self {
        Instance {
            component_name: wire.component_name,
            instance_name: wire.instance_name,
            component_type: wire.component_type,
            instance_alias: non_empty(wire.instance_alias),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_bad_times_read_as_none() {
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("yesterday"), None);
        let t = parse_time("2026-08-10T12:00:03.91234567Z").unwrap();
        assert_eq!(t.nanosecond(), 912_345_670);
    }

    #[test]
    fn nulls_and_missing_fields_default() {
        let wire: WireApp =
            serde_json::from_str(r#"{"id":"a","spec":{"name":"n"},"live_url":null,"region":null}"#)
                .unwrap();
        let app = App::try_from(wire).unwrap();
        assert_eq!(app.live_url, None);
        assert_eq!(app.region, None);
        let page: AppsPage = serde_json::from_str(r#"{"apps":null}"#).unwrap();
        assert!(page.apps.is_empty());
        let inst: InstancesResponse = serde_json::from_str("{}").unwrap();
        assert!(inst.instances.is_empty());
    }

    #[test]
    fn region_slug_and_object_both_parse() {
        let a: WireRegion = serde_json::from_str(r#""nyc""#).unwrap();
        let b: WireRegion =
            serde_json::from_str(r#"{"slug":"nyc","label":"New York","data_centers":["nyc1"]}"#)
                .unwrap();
        assert_eq!(a.slug, "nyc");
        assert_eq!(b.slug, "nyc");
        assert_eq!(b.data_centers, vec!["nyc1".to_owned()]);
        let back = serde_json::to_value(&b).unwrap();
        assert_eq!(back["label"], "New York");
    }

    #[test]
    fn region_falls_back_to_spec() {
        let wire: WireApp =
            serde_json::from_str(r#"{"id":"a","spec":{"name":"n","region":"fra"}}"#).unwrap();
        assert_eq!(App::try_from(wire).unwrap().region.as_deref(), Some("fra"));
    }

    #[test]
    fn service_url_from_live_url_or_default_ingress() {
        let wire: WireApp = serde_json::from_str(
            r#"{"id":"a","spec":{"name":"n","services":[{"name":"s"}]},"default_ingress":"https://x"}"#,
        )
        .unwrap();
        assert_eq!(
            App::try_from(wire).unwrap().live_url.as_deref(),
            Some("https://x")
        );
    }

    #[test]
    fn app_without_spec_or_id_is_an_error() {
        let wire: WireApp = serde_json::from_str(r#"{"id":"a"}"#).unwrap();
        assert!(
            App::try_from(wire)
                .unwrap_err()
                .to_string()
                .contains("spec")
        );
        let wire: WireApp = serde_json::from_str(r#"{"spec":{"name":"n"}}"#).unwrap();
        assert!(App::try_from(wire).unwrap_err().to_string().contains("id"));
    }

    #[test]
    fn times_serialize_as_rfc3339_and_unset_is_skipped() {
        let mut wire = WireDeployment {
            id: "d".into(),
            phase: "ACTIVE".into(),
            ..Default::default()
        };
        wire.created_at = parse_time("2026-08-10T12:00:01Z");
        let json = serde_json::to_string(&wire).unwrap();
        assert_eq!(
            json,
            r#"{"id":"d","created_at":"2026-08-10T12:00:01Z","phase":"ACTIVE"}"#
        );
    }

    #[test]
    fn urls_with_tokens_are_redacted_in_debug() {
        let exec = ExecUrlResponse {
            url: "wss://h/exec?token=secret".into(),
        };
        assert!(!format!("{exec:?}").contains("secret"));
        let logs = LogsUrlResponse {
            live_url: "https://h/live?token=secret".into(),
            historic_urls: vec!["https://s/x?X-Amz-Signature=secret".into()],
        };
        assert!(!format!("{logs:?}").contains("secret"));
        assert_eq!(redact_url("https://u:p@h/x"), "https://[REDACTED]@h/x");
        assert_eq!(redact_url("https://h/x"), "https://h/x");
    }

    #[test]
    fn next_page_link() {
        let page: AppsPage = serde_json::from_str(
            r#"{"apps":[],"links":{"pages":{"next":"https://h/v2/apps?page=2"}},"meta":{"total":3}}"#,
        )
        .unwrap();
        assert_eq!(page.links.unwrap().next(), Some("https://h/v2/apps?page=2"));
        assert_eq!(page.meta.unwrap().total, 3);
    }
}
