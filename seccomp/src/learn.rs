//! Policy from an strace log.
