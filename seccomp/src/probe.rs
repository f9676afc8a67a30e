//! Probing a compiled program.
