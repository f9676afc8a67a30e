//! `--gpu` names the GPU to render on, and nothing else will do: a node the host lacks, or of
//! no known kind, is refused before anything starts (a GL that comes up elsewhere is refused
//! after Ready: `check_renderer`'s unit tests here, scripts/nvidia-run.sh on the H200).

mod guest_support;

use std::process::Command;
use std::time::Duration;

use guest_support::{rayvmm_binary, run_tool};

#[test]
fn sandbox_report_refuses_an_nvidia_gpu_this_host_lacks() {
    let run = run_tool(
        Command::new(rayvmm_binary()).args(["sandbox-report", "--gpu", "/dev/nvidia99"]),
        Duration::from_secs(60),
    );

    assert_eq!(run.code, Some(2), "{}", run.output);
    assert!(
        run.output
            .contains("the GPU /dev/nvidia99 does not exist on this host"),
        "{}",
        run.output
    );
}

#[test]
fn run_refuses_a_gpu_that_is_neither_nvidia_nor_a_render_node() {
    let run = run_tool(
        Command::new(rayvmm_binary()).args(["run", "--kernel", "/dev/null", "--gpu", "/dev/null"]),
        Duration::from_secs(60),
    );

    assert_eq!(run.code, Some(2), "{}", run.output);
    assert!(
        run.output.contains(
            "--gpu /dev/null: neither an NVIDIA node (/dev/nvidiaN) nor a DRM render node"
        ),
        "{}",
        run.output
    );
}
