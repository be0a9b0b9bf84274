//! The sandbox marker: how a spec says "this app is a sandbox made by this project".
//!
//! Every template spec carries an app-level environment variable
//!
//! ```yaml
//! envs:
//!   - key: DO_APP_SANDBOX
//!     value: python/service      # <image kind>/<component type>
//!     scope: RUN_TIME
//!     type: GENERAL
//! ```
//!
//! App Platform has no labels or tags on apps, and returns app-level `GENERAL` env vars exactly
//! as given, so the marker survives the round trip through the API and `doctl apps list`, and
//! `list` can find every sandbox whatever its image, owner, tag or mode. (The Python SDK instead
//! matched image repository names and missed service-mode and custom images.) The value also
//! tells the local runtime which interpreter a sandbox needs. Being `RUN_TIME`, the variable is
//! visible inside the container too, which is harmless and lets code there know what it runs in.
//!
//! The value is `<image kind>/<component type>`; anything after a `;` is reserved for future
//! attributes and ignored when read, so newer markers stay readable by this version.

use crate::error::SpecError;
use crate::model::{AppSpec, EnvVar};
use crate::template::{ComponentType, ImageKind, SANDBOX_COMPONENT};

/// Key of the app-level env var that marks a sandbox.
pub const MARKER_ENV: &str = "DO_APP_SANDBOX";

/// Where a [`SandboxInfo`] was learnt from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InfoSource {
    /// The `DO_APP_SANDBOX` marker.
    Marker,
    /// The image repository (`sandbox-python`, `sandbox-node` and their `-service` variants),
    /// for sandboxes made by the Python SDK, which carry no marker.
    ImageRepository,
}

/// What kind of sandbox a spec describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SandboxInfo {
    /// The language image.
    pub image: ImageKind,
    /// Service or worker.
    pub component: ComponentType,
    /// Where this was read from.
    pub source: InfoSource,
}

impl SandboxInfo {
    /// Info for a sandbox of this image kind and component type, as the marker states it.
    pub fn new(image: ImageKind, component: ComponentType) -> Self {
        SandboxInfo {
            image,
            component,
            source: InfoSource::Marker,
        }
    }

    /// The marker's value: `<image kind>/<component type>`, e.g. `node/worker`.
    pub fn marker_value(&self) -> String {
        format!("{}/{}", self.image, self.component)
    }

    /// The marker env var for this sandbox (app-level, `RUN_TIME`, `GENERAL`).
    pub fn marker_env(&self) -> EnvVar {
        EnvVar::run_time(MARKER_ENV, self.marker_value())
    }

    /// Parses a marker value (`python/service`; a `;` and what follows are ignored).
    ///
    /// # Errors
    ///
    /// [`SpecError::Invalid`] on `envs.value` naming the expected shape or the unknown kind.
    pub fn parse_marker(value: &str) -> Result<Self, SpecError> {
        let field = "envs.value";
        let head = value.split(';').next().unwrap_or_default();
        let Some((image, component)) = head.split_once('/') else {
            return Err(SpecError::invalid(
                field,
                format!(
                    "{MARKER_ENV} value {value:?} is not <image kind>/<component type>, \
                     e.g. python/service"
                ),
            ));
        };
        let image: ImageKind = image
            .parse()
            .map_err(|e: SpecError| SpecError::invalid(field, e.reason()))?;
        let component: ComponentType = component
            .parse()
            .map_err(|e: SpecError| SpecError::invalid(field, e.reason()))?;
        Ok(SandboxInfo::new(image, component))
    }
}

/// Reads the sandbox marker of a spec: `Some` when the app-level `DO_APP_SANDBOX` env var is
/// present and well formed. Apps without it are not sandboxes made by this project.
///
/// ```
/// use appspec::{sandbox_marker, ComponentType, ImageKind, SandboxTemplate};
///
/// let spec = SandboxTemplate::new(ImageKind::Python, ComponentType::Service)
///     .name("sandbox-0a1b2c3d")
///     .build()?;
/// let info = sandbox_marker(&spec).expect("templates carry the marker");
/// assert_eq!((info.image, info.component), (ImageKind::Python, ComponentType::Service));
/// # Ok::<(), appspec::SpecError>(())
/// ```
pub fn sandbox_marker(spec: &AppSpec) -> Option<SandboxInfo> {
    let env = spec.env(MARKER_ENV)?;
    SandboxInfo::parse_marker(&env.value).ok()
}

/// Tells what sandbox a spec is: the marker when present, otherwise the image repository of
/// the `sandbox` component (or the first component), so sandboxes created by the Python SDK
/// are recognised too. `None` for apps that are neither.
pub fn detect_sandbox(spec: &AppSpec) -> Option<SandboxInfo> {
    if let Some(info) = sandbox_marker(spec) {
        return Some(info);
    }
    let component = spec
        .component(SANDBOX_COMPONENT)
        .or_else(|| spec.components().next())?;
    let repository = component.image()?.repository_name();
    let kind = repository
        .strip_prefix("sandbox-")
        .map(|rest| rest.strip_suffix("-service").unwrap_or(rest))?;
    let image = ImageKind::ALL
        .iter()
        .copied()
        .find(|k| k.as_str() == kind)?;
    let component_type = match component {
        crate::model::ComponentRef::Service(_) => ComponentType::Service,
        crate::model::ComponentRef::Worker(_) => ComponentType::Worker,
    };
    Some(SandboxInfo {
        image,
        component: component_type,
        source: InfoSource::ImageRepository,
    })
}

/// Validation of the marker, if present: well-formed value, and `GENERAL` (a `SECRET` would
/// read back as ciphertext and the sandbox would vanish from `list`).
pub(crate) fn check_marker(spec: &AppSpec) -> Result<(), SpecError> {
    let Some(env) = spec.env(MARKER_ENV) else {
        return Ok(());
    };
    if env.is_secret() {
        return Err(SpecError::invalid(
            "envs.type",
            format!(
                "{MARKER_ENV} must be GENERAL: App Platform returns SECRET values as \
                 ciphertext, so the marker would be unreadable"
            ),
        ));
    }
    SandboxInfo::parse_marker(&env.value).map(|_| ())
}
