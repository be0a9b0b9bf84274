//! `sandbox-local`: see the crate README.
