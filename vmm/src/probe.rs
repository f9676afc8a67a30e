//! Escape probes: spawn a jailed probe build of ray-gpu, have it attempt a technique or a list
//! of raw system calls, and report what happened.
