//! Integration tests of the emulator and the doctl stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod console;
mod doapi_console;
mod faults;
mod local;
mod rest;
mod standin;
mod standin_console;
