//! Where ray-gpu and its seccomp policy are.
//!
//! libvirt starts this program with an empty environment, so an installed backend finds both
//! beside itself: `ray-gpu` in the same directory, the policies in `policies/` there
//! (`scripts/install-libvirt-backend.sh` lays them out so). In a checkout the policies are
//! found as rayvmm finds them (`$RAYOS_POLICY_DIR`, else `policies/` of the workspace).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;
use vmm::policy::{PolicyError, POLICY_DIR_ENV, SOFTWARE_POLICY};

/// Environment variable naming the ray-gpu binary (below `--ray-gpu`, above the default).
pub const RAY_GPU_ENV: &str = "RAYOS_RAY_GPU";

/// Why ray-gpu or its policy cannot be used.
#[derive(Debug, Error)]
pub enum LocateError {
    #[error("ray-gpu {} not found (pass --ray-gpu=PATH or set {RAY_GPU_ENV})", .0.display())]
    RayGpuMissing(PathBuf),
    #[error("ray-gpu {} is not an executable file", .0.display())]
    RayGpuNotExecutable(PathBuf),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// The ray-gpu binary: `flag` (`--ray-gpu`), else `env` ([`RAY_GPU_ENV`]), else `ray-gpu` in
/// the directory of `exe` (this program). Checked to be an executable file.
pub fn ray_gpu(
    flag: Option<&Path>,
    env: Option<&OsStr>,
    exe: &Path,
) -> Result<PathBuf, LocateError> {
    let path = match (flag, env) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(env)) if !env.is_empty() => PathBuf::from(env),
        _ => exe.with_file_name("ray-gpu"),
    };
    let meta = std::fs::metadata(&path).map_err(|_| LocateError::RayGpuMissing(path.clone()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(LocateError::RayGpuNotExecutable(path));
    }
    Ok(path)
}

/// The seccomp policy ray-gpu runs under (the software-rendering one, as rayvmm's default):
/// from `$RAYOS_POLICY_DIR` when `policy_dir_env` is set, else from `policies/` beside `exe`
/// when it is there, else where rayvmm looks.
pub fn policy(exe: &Path, policy_dir_env: bool) -> Result<PathBuf, LocateError> {
    if !policy_dir_env {
        if let Some(dir) = exe.parent() {
            let beside = dir.join("policies").join(SOFTWARE_POLICY);
            if beside.is_file() {
                return Ok(beside);
            }
        }
    }
    Ok(vmm::policy::default_policy()?)
}

/// Whether `$RAYOS_POLICY_DIR` names a directory to use.
pub fn policy_dir_env_set() -> bool {
    std::env::var_os(POLICY_DIR_ENV).is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(path: &Path) {
        std::fs::write(path, b"#!/bin/true\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn ray_gpu_defaults_to_the_one_beside_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        executable(&dir.path().join("ray-gpu"));

        let found = ray_gpu(None, None, &dir.path().join("ray-gpu-backend")).unwrap();

        assert_eq!(found, dir.path().join("ray-gpu"));
    }

    #[test]
    fn the_flag_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("flagged");
        executable(&flag);

        let found = ray_gpu(
            Some(&flag),
            Some(OsStr::new("/nonexistent/env")),
            Path::new("/nonexistent/ray-gpu-backend"),
        )
        .unwrap();

        assert_eq!(found, flag);
    }

    #[test]
    fn the_environment_wins_over_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("from-env");
        executable(&env);

        let found = ray_gpu(None, Some(env.as_os_str()), Path::new("/nonexistent/x")).unwrap();

        assert_eq!(found, env);
    }

    #[test]
    fn a_missing_ray_gpu_is_named_with_how_to_point_at_it() {
        let err = ray_gpu(None, None, Path::new("/nonexistent/ray-gpu-backend")).unwrap_err();

        assert_eq!(
            err.to_string(),
            "ray-gpu /nonexistent/ray-gpu not found (pass --ray-gpu=PATH or set RAYOS_RAY_GPU)"
        );
    }

    #[test]
    fn a_non_executable_ray_gpu_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ray-gpu");
        std::fs::write(&path, b"").unwrap();

        let err = ray_gpu(Some(&path), None, Path::new("/x")).unwrap_err();

        assert!(matches!(err, LocateError::RayGpuNotExecutable(_)), "{err}");
    }

    #[test]
    fn an_installed_backend_finds_the_policy_beside_itself() {
        let dir = tempfile::tempdir().unwrap();
        let policy_path = dir.path().join("policies").join(SOFTWARE_POLICY);
        std::fs::create_dir_all(policy_path.parent().unwrap()).unwrap();
        std::fs::write(&policy_path, b"").unwrap();

        let found = policy(&dir.path().join("ray-gpu-backend"), false).unwrap();

        assert_eq!(found, policy_path);
    }
}
