//! Probe mode: escape techniques attempted from inside the finished sandbox. Built only with
//! the `probe` feature, which release builds refuse.
