//! `sandbox-core`: see the crate README.
