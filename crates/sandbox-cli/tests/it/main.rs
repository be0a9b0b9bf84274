//! End-to-end tests of the `sandbox` binary: help and output snapshots, the local provider,
//! and the DigitalOcean provider against the App Platform emulator (both drivers).
//!
//! Every test gets its own temp folder (HOME, XDG dirs, the local provider's state) and a
//! scrubbed environment; sandboxes it leaves behind are deleted when its context drops.

mod common;
mod emulator;
mod help;
mod local;
mod mcp;
mod smoke;
mod snapshot_cli;
mod usability;
