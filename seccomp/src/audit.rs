//! Risk review of a policy.
