//! Helpers for the tests that run the real binaries.

pub mod binaries;
pub mod escape;
