//! minijail's seccomp policy language for x86_64.
