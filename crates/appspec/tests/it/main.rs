//! Integration tests of the `appspec` crate (one binary).

mod escaping;
mod fixtures;
mod marker;
mod templates;
mod validation;

use appspec::{AppSpec, ComponentType, ImageKind, SandboxTemplate, TemplateDefaults};

/// A valid sandbox spec with a fixed name and built-in defaults.
pub fn sandbox(image: ImageKind, component: ComponentType) -> AppSpec {
    SandboxTemplate::new(image, component)
        .name("sandbox-0a1b2c3d")
        .defaults(TemplateDefaults::default())
        .build()
        .expect("the template builds")
}

/// Reads a file copied from the doctl fixtures into `tests/data`.
pub fn data(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
