//! App Platform app specs.
pub use model::*;
mod model;
