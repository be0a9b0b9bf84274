//! `sandbox-fs`: see the crate README.
