//! Tables generated from the system headers by `gen/generate_constants.py`.

pub(crate) mod x86_64;
