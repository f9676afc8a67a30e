//! Semantic comparison of two policies.
