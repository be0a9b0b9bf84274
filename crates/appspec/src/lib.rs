//! DigitalOcean App Platform app specs: a typed model, the sandbox templates, and validation.
//!
//! This is the bottom of the workspace: pure data, no I/O. `doctl-driver` sends these specs to
//! App Platform (through doctl or the REST API), `sandbox-local` and the emulator read them to
//! decide what to run, and `sandbox-core` builds them when it creates a sandbox.
//!
//! # Overview
//!
//! - [`AppSpec`] and its parts ([`ServiceSpec`], [`WorkerSpec`], [`ImageSource`],
//!   [`HealthCheck`], [`EnvVar`], [`AlertSpec`], [`IngressSpec`]) use App Platform's field names
//!   and order. [`AppSpec::to_yaml`] and [`AppSpec::to_json`] render them;
//!   [`AppSpec::from_yaml`] and [`AppSpec::from_json`] parse what doctl and the API return,
//!   keeping fields the model does not know in `extra` instead of failing.
//! - [`SandboxTemplate`] builds the spec of a sandbox: [`ImageKind`] python or node,
//!   [`ComponentType`] service or worker, with [`TemplateDefaults`] read from the environment
//!   (`from_env`) or from any lookup (`from_lookup`).
//! - [`sandbox_marker`] and [`detect_sandbox`] tell whether a spec is a sandbox and of what
//!   kind, through the app-level `DO_APP_SANDBOX` env var every template carries
//!   (see [`marker`]).
//! - [`AppSpec::validate`] checks App Platform's rules; a [`SpecError`] names the field in
//!   App Platform's dotted style (`services.health_check.port`) and the rule.
//!
//! # Example
//!
//! ```
//! use appspec::{AppSpec, ComponentType, ImageKind, SandboxTemplate, TemplateDefaults};
//!
//! let defaults = TemplateDefaults::from_lookup(|key| match key {
//!     "GHCR_OWNER" => Some("myorg".to_owned()),
//!     _ => None,
//! });
//! let spec = SandboxTemplate::new(ImageKind::Python, ComponentType::Service)
//!     .name("sandbox-0a1b2c3d")
//!     .defaults(defaults)
//!     .env("GREETING", "it's \"quoted\"\nand: multi-line # not a comment")
//!     .build()?;
//!
//! let yaml = spec.to_yaml()?;
//! assert!(yaml.contains("repository: sandbox-python"));
//! let back = AppSpec::from_yaml(&yaml)?;
//! assert_eq!(back, spec);
//!
//! let info = appspec::sandbox_marker(&back).expect("templates carry the marker");
//! assert_eq!(info.image, ImageKind::Python);
//!
//! let mut broken = spec.clone();
//! broken.services[0].internal_ports.clear();
//! let err = broken.validate().unwrap_err();
//! assert_eq!(err.field(), Some("services.health_check.port"));
//! # Ok::<(), appspec::SpecError>(())
//! ```

pub use error::{SpecError, SpecFormat};
pub use marker::{InfoSource, MARKER_ENV, SandboxInfo, detect_sandbox, sandbox_marker};
pub use model::*;
pub use template::{
    ComponentType, DEFAULT_INSTANCE_SIZE, DEFAULT_OWNER, DEFAULT_REGION, DEFAULT_TAG,
    ENV_GHCR_OWNER, ENV_NODE_TAG, ENV_PYTHON_TAG, ENV_REGION, ENV_REGISTRY, HEALTH_PATH,
    HEALTH_PORT, ImageKind, SANDBOX_COMPONENT, SERVICE_HTTP_PORT, SandboxTemplate,
    TemplateDefaults, random_name, sandbox_health_check,
};
pub use validate::{
    INSTANCE_SIZE_RESOURCES, INSTANCE_SIZES, InstanceSize, MAX_INSTANCE_COUNT, REGIONS,
    SINGLE_INSTANCE_SIZES, check_env_key, check_instance_size, check_name, check_region,
    instance_size, region_of,
};

mod error;
pub mod marker;
mod model;
mod template;
mod validate;
mod yaml;
