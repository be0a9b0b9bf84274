//! `appplatform-emulator`: serves App Platform on localhost.
fn main() {}
