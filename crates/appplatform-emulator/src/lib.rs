//! `appplatform-emulator`: see the crate README.
