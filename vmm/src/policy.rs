//! Finding and compiling the GPU process's seccomp policy.

use std::path::{Path, PathBuf};

use seccomp::DefaultAction;
use thiserror::Error;

/// Environment variable naming the policy directory (the repository's `policies/`).
pub const POLICY_DIR_ENV: &str = "RAYOS_POLICY_DIR";
/// The software-rendering policy (llvmpipe: executable memory), relative to the policy
/// directory; the default until a hardware GPU is configured.
pub const SOFTWARE_POLICY: &str = "x86_64/gpu_device_software.policy";

/// The policy for NVIDIA's driver (no executable memory, NVIDIA's ioctls by exact number).
pub const NVIDIA_POLICY: &str = "x86_64/gpu_nvidia.policy";
/// The policy for a DRM render node (no executable memory).
pub const RENDER_NODE_POLICY: &str = "x86_64/gpu_device.policy";

/// Why a policy could not be found or compiled.
#[derive(Debug, Error)]
pub enum PolicyError {
    #[error(
        "no policy directory: set {POLICY_DIR_ENV} or pass a policy file \
         (looked for ../../policies beside the executable)"
    )]
    NoPolicyDir,
    #[error("policy file {0} does not exist")]
    Missing(PathBuf),
    #[error(
        "{0} is neither an NVIDIA node (/dev/nvidiaN) nor a DRM render node (/dev/dri/renderDN)"
    )]
    UnknownGpu(PathBuf),
    #[error("reading policy {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<seccomp::PolicyError>,
    },
    #[error("compiling policy {path}: {source}")]
    Compile {
        path: PathBuf,
        #[source]
        source: Box<seccomp::CompileError>,
    },
}

/// A policy compiled for the GPU process, with what reports say about it.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// The policy's name: its file name.
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// How many system calls it names.
    pub syscall_count: usize,
    /// What happens to any other call.
    pub action: DefaultAction,
    /// The BPF program, packed for the tube (`seccomp::bpf_to_words`).
    pub filter: Vec<u64>,
}

/// Reads `path` (with `@include`s looked up beside it) and compiles it with `action`.
pub fn compile(path: &Path, action: DefaultAction) -> Result<CompiledPolicy, PolicyError> {
    if !path.is_file() {
        return Err(PolicyError::Missing(path.to_path_buf()));
    }
    let include_dirs: Vec<PathBuf> = path.parent().map(Path::to_path_buf).into_iter().collect();
    let policy =
        seccomp::Policy::from_file(path, &include_dirs).map_err(|source| PolicyError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
    let program = policy
        .compile(action)
        .map_err(|source| PolicyError::Compile {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
    Ok(CompiledPolicy {
        name: path.file_name().map_or_else(
            || policy.name().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        path: path.to_path_buf(),
        syscall_count: policy.syscalls().len(),
        action,
        filter: seccomp::bpf_to_words(&program),
    })
}

/// The policy directory: `$RAYOS_POLICY_DIR`, else `policies/` two levels above the
/// executable (`target/<profile>/rayvmm` in a checkout).
pub fn policy_dir() -> Result<PathBuf, PolicyError> {
    if let Some(dir) = std::env::var_os(POLICY_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(|_| PolicyError::NoPolicyDir)?;
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|root| root.join("policies"))
        .filter(|dir| dir.is_dir())
        .ok_or(PolicyError::NoPolicyDir)
}

/// The default policy file: the software-rendering policy in [`policy_dir`].
pub fn default_policy() -> Result<PathBuf, PolicyError> {
    let path = policy_dir()?.join(SOFTWARE_POLICY);
    if path.is_file() {
        Ok(path)
    } else {
        Err(PolicyError::Missing(path))
    }
}

/// The policy for rendering on `gpu` (see [`crate::gpu_process::GpuKind`]); the software
/// policy without one. A node of no known kind is refused.
pub fn policy_for_gpu(gpu: Option<&Path>) -> Result<PathBuf, PolicyError> {
    use crate::gpu_process::GpuKind;
    let relative = match gpu.map(|g| (g, GpuKind::of(g))) {
        None => SOFTWARE_POLICY,
        Some((_, Some(GpuKind::Nvidia))) => NVIDIA_POLICY,
        Some((_, Some(GpuKind::RenderNode))) => RENDER_NODE_POLICY,
        Some((g, None)) => return Err(PolicyError::UnknownGpu(g.to_path_buf())),
    };
    let path = policy_dir()?.join(relative);
    match path.is_file() {
        true => Ok(path),
        false => Err(PolicyError::Missing(path)),
    }
}

/// The name of a DefaultAction as the CLI and reports spell it.
pub fn action_name(action: DefaultAction) -> &'static str {
    match action {
        DefaultAction::KillProcess => "kill",
        DefaultAction::Trap => "trap",
        DefaultAction::Log => "log",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ray_gpu_none.policy")
    }

    #[test]
    fn compiles_the_fixture_policy_with_its_syscall_count() {
        let policy = compile(&fixture(), DefaultAction::KillProcess).unwrap();

        assert_eq!(policy.name, "ray_gpu_none.policy");
        assert_eq!(policy.syscall_count, 28);
        assert!(!policy.filter.is_empty());
    }

    #[test]
    fn missing_policy_file_is_named() {
        let err = compile(Path::new("/nonexistent.policy"), DefaultAction::Trap).unwrap_err();

        assert_eq!(
            err.to_string(),
            "policy file /nonexistent.policy does not exist"
        );
    }
}
