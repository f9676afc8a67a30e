//! Escape attempts from the probe build of the real jailed ray-gpu, one test per technique
//! and policy, each asserting the exact outcome: the signal that killed the process (SIGSYS:
//! the seccomp filter), the errno the probe saw (a wall of the jail: ENOENT from the empty
//! root, EAGAIN/ENOMEM/EMFILE from the rlimits, ENOSYS from `clone3: return ENOSYS`), or
//! `ok` where the policy allows the call. Needs `./scripts/test.sh`'s builds (rayvmm and
//! target/probe/debug/ray-gpu).

use integration::escape::{run_technique, run_technique_with, Policy, Renderer};

/// One `#[test]` per row: `test_name: "technique" under Policy => "outcome";`.
macro_rules! escape_tests {
    ($($test:ident: $technique:literal under $policy:ident => $outcome:literal;)*) => {
        $(
            #[test]
            fn $test() {
                let result = run_technique($technique, Policy::$policy);

                assert_eq!(result.outcome, $outcome, "{result:?}");
            }
        )*
    };
}

escape_tests! {
    // Host files: the root is an empty tmpfs with read-only binds; /proc shows only the
    // jail's own pid namespace; nothing may be opened for writing (the filter kills it).
    open_etc_shadow_fails_with_enoent: "open_etc_shadow" under Hardware => "ENOENT";
    open_proc1_root_shadow_fails_with_enoent: "open_proc1_root_shadow" under Hardware => "ENOENT";
    open_supervisor_mem_fails_with_enoent: "open_supervisor_mem" under Hardware => "ENOENT";
    open_supervisor_environ_fails_with_enoent: "open_supervisor_environ" under Hardware => "ENOENT";
    write_proc_sys_core_pattern_is_killed_by_sigsys: "write_proc_sys_core_pattern" under Hardware => "SIGSYS";
    write_sys_kernel_uevent_helper_is_killed_by_sigsys: "write_sys_kernel_uevent_helper" under Hardware => "SIGSYS";
    open_dev_mem_fails_with_enoent: "open_dev_mem" under Hardware => "ENOENT";
    open_dotdot_past_root_fails_with_enoent: "open_dotdot_past_root" under Hardware => "ENOENT";
    create_file_in_root_is_killed_by_sigsys: "create_file_in_root" under Hardware => "SIGSYS";
    mknod_dev_mem_is_killed_by_sigsys: "mknod_dev_mem" under Hardware => "SIGSYS";

    // Executing anything.
    execve_bin_sh_is_killed_by_sigsys: "execve_bin_sh" under Hardware => "SIGSYS";
    execveat_bin_sh_is_killed_by_sigsys: "execveat_bin_sh" under Hardware => "SIGSYS";
    memfd_create_is_killed_by_sigsys: "memfd_create" under Hardware => "SIGSYS";
    execveat_memfd_elf_is_killed_by_sigsys: "execveat_memfd_elf" under Hardware => "SIGSYS";

    // Network: no socket at all after the filter (the GPU process only uses inherited ones).
    socket_af_inet_is_killed_by_sigsys: "socket_af_inet" under Hardware => "SIGSYS";
    socket_af_inet6_is_killed_by_sigsys: "socket_af_inet6" under Hardware => "SIGSYS";
    socket_af_netlink_is_killed_by_sigsys: "socket_af_netlink" under Hardware => "SIGSYS";
    socket_af_packet_is_killed_by_sigsys: "socket_af_packet" under Hardware => "SIGSYS";
    socket_af_vsock_is_killed_by_sigsys: "socket_af_vsock" under Hardware => "SIGSYS";
    socket_af_unix_is_killed_by_sigsys: "socket_af_unix" under Hardware => "SIGSYS";
    connect_abstract_unix_is_killed_by_sigsys: "connect_abstract_unix" under Hardware => "SIGSYS";
    connect_nscd_socket_is_killed_by_sigsys: "connect_nscd_socket" under Hardware => "SIGSYS";

    // Other processes: the supervisor is outside the pid namespace and untouchable.
    ptrace_attach_supervisor_is_killed_by_sigsys: "ptrace_attach_supervisor" under Hardware => "SIGSYS";
    ptrace_traceme_is_killed_by_sigsys: "ptrace_traceme" under Hardware => "SIGSYS";
    process_vm_writev_supervisor_is_killed_by_sigsys: "process_vm_writev_supervisor" under Hardware => "SIGSYS";
    process_vm_readv_supervisor_is_killed_by_sigsys: "process_vm_readv_supervisor" under Hardware => "SIGSYS";
    kill_supervisor_is_killed_by_sigsys: "kill_supervisor" under Hardware => "SIGSYS";
    kill_all_is_killed_by_sigsys: "kill_all" under Hardware => "SIGSYS";
    pidfd_getfd_supervisor_is_killed_by_sigsys: "pidfd_getfd_supervisor" under Hardware => "SIGSYS";
    kcmp_supervisor_is_killed_by_sigsys: "kcmp_supervisor" under Hardware => "SIGSYS";

    // Privilege and leaving the jail.
    setuid_root_is_killed_by_sigsys: "setuid_root" under Hardware => "SIGSYS";
    setgid_root_is_killed_by_sigsys: "setgid_root" under Hardware => "SIGSYS";
    capset_all_is_killed_by_sigsys: "capset_all" under Hardware => "SIGSYS";
    unshare_user_is_killed_by_sigsys: "unshare_user" under Hardware => "SIGSYS";
    setns_fd0_is_killed_by_sigsys: "setns_fd0" under Hardware => "SIGSYS";
    mount_tmpfs_is_killed_by_sigsys: "mount_tmpfs" under Hardware => "SIGSYS";
    pivot_root_is_killed_by_sigsys: "pivot_root" under Hardware => "SIGSYS";
    chroot_fchdir_escape_is_killed_by_sigsys: "chroot_fchdir_escape" under Hardware => "SIGSYS";
    open_by_handle_at_is_killed_by_sigsys: "open_by_handle_at" under Hardware => "SIGSYS";
    prctl_set_dumpable_is_killed_by_sigsys: "prctl_set_dumpable" under Hardware => "SIGSYS";
    seccomp_set_filter_is_killed_by_sigsys: "seccomp_set_filter" under Hardware => "SIGSYS";
    raise_rlimit_nofile_is_killed_by_sigsys: "raise_rlimit_nofile" under Hardware => "SIGSYS";

    // Kernel attack surface.
    bpf_map_create_is_killed_by_sigsys: "bpf_map_create" under Hardware => "SIGSYS";
    perf_event_open_is_killed_by_sigsys: "perf_event_open" under Hardware => "SIGSYS";
    userfaultfd_is_killed_by_sigsys: "userfaultfd" under Hardware => "SIGSYS";
    io_uring_setup_is_killed_by_sigsys: "io_uring_setup" under Hardware => "SIGSYS";
    keyctl_is_killed_by_sigsys: "keyctl" under Hardware => "SIGSYS";
    add_key_is_killed_by_sigsys: "add_key" under Hardware => "SIGSYS";
    init_module_is_killed_by_sigsys: "init_module" under Hardware => "SIGSYS";
    finit_module_is_killed_by_sigsys: "finit_module" under Hardware => "SIGSYS";
    kexec_load_is_killed_by_sigsys: "kexec_load" under Hardware => "SIGSYS";
    reboot_is_killed_by_sigsys: "reboot" under Hardware => "SIGSYS";
    swapon_is_killed_by_sigsys: "swapon" under Hardware => "SIGSYS";
    syslog_is_killed_by_sigsys: "syslog" under Hardware => "SIGSYS";
    acct_is_killed_by_sigsys: "acct" under Hardware => "SIGSYS";
    iopl_is_killed_by_sigsys: "iopl" under Hardware => "SIGSYS";
    ioperm_is_killed_by_sigsys: "ioperm" under Hardware => "SIGSYS";

    // W^X: the hardware policy kills executable memory, the software policy (llvmpipe's JIT)
    // allows it; pkey_mprotect is in neither.
    mmap_exec_is_killed_by_sigsys_on_hardware: "mmap_exec" under Hardware => "SIGSYS";
    mmap_rwx_is_killed_by_sigsys_on_hardware: "mmap_rwx" under Hardware => "SIGSYS";
    mprotect_exec_is_killed_by_sigsys_on_hardware: "mprotect_exec" under Hardware => "SIGSYS";
    pkey_mprotect_exec_is_killed_by_sigsys_on_hardware: "pkey_mprotect_exec" under Hardware => "SIGSYS";
    mmap_exec_is_allowed_with_software_rendering: "mmap_exec" under Software => "ok";
    mmap_rwx_is_allowed_with_software_rendering: "mmap_rwx" under Software => "ok";
    mprotect_exec_is_allowed_with_software_rendering: "mprotect_exec" under Software => "ok";
    pkey_mprotect_exec_is_killed_by_sigsys_with_software_rendering: "pkey_mprotect_exec" under Software => "SIGSYS";

    // ioctl: exact request numbers only.
    tiocsti_fd0_is_killed_by_sigsys: "tiocsti_fd0" under Hardware => "SIGSYS";
    tiocsti_tube_is_killed_by_sigsys: "tiocsti_tube" under Hardware => "SIGSYS";
    kvm_create_vm_fails_with_enoent_as_dev_kvm_is_absent: "kvm_create_vm" under Hardware => "ENOENT";
    drm_set_master_is_killed_by_sigsys: "drm_set_master" under Hardware => "SIGSYS";
    drm_drop_master_is_killed_by_sigsys: "drm_drop_master" under Hardware => "SIGSYS";
    drm_auth_magic_is_killed_by_sigsys: "drm_auth_magic" under Hardware => "SIGSYS";
    ioctl_fionbio_is_allowed: "ioctl_fionbio" under Hardware => "ok";

    // New processes: threads only.
    clone3_fails_with_enosys: "clone3" under Hardware => "ENOSYS";
    clone_newuser_is_killed_by_sigsys: "clone_newuser" under Hardware => "SIGSYS";
    fork_is_killed_by_sigsys: "fork" under Hardware => "SIGSYS";
    vfork_is_killed_by_sigsys: "vfork" under Hardware => "SIGSYS";
    thread_is_allowed_on_hardware: "thread" under Hardware => "ok";
    thread_is_allowed_with_software_rendering: "thread" under Software => "ok";

    // Exhaustion stops at the jail's rlimits (RLIMIT_NPROC 128, RLIMIT_DATA 8 GiB,
    // RLIMIT_NOFILE 1024); no file can be opened for writing, so RLIMIT_FSIZE is never reached.
    thread_bomb_fails_with_eagain: "thread_bomb" under Hardware => "EAGAIN";
    memory_balloon_fails_with_enomem: "memory_balloon" under Hardware => "ENOMEM";
    fd_exhaustion_fails_with_emfile: "fd_exhaustion" under Hardware => "EMFILE";
    file_size_limit_is_killed_by_sigsys_opening_for_write: "file_size_limit" under Hardware => "SIGSYS";
    file_size_limit_sigxfsz_ignored_is_killed_by_sigsys_opening_for_write: "file_size_limit_sigxfsz_ignored" under Hardware => "SIGSYS";
}

#[test]
fn open_descriptors_are_exactly_dev_null_stdio_and_the_tube_under_both_policies() {
    let seen: Vec<(String, Option<String>)> = [Policy::Hardware, Policy::Software]
        .into_iter()
        .map(|policy| run_technique("list_fds", policy))
        .map(|result| (result.outcome, result.detail))
        .collect();

    let expected = (
        "ok".to_string(),
        Some("0:chr 1:chr 2:chr 3:sock".to_string()),
    );
    assert_eq!(seen, [expected.clone(), expected]);
}

#[test]
fn proc_self_root_points_at_the_jails_own_root() {
    let result = run_technique("readlink_proc_self_root", Policy::Hardware);

    assert_eq!(
        (result.outcome.as_str(), result.detail.as_deref()),
        ("ok", Some("/"))
    );
}

#[test]
fn started_thread_runs_and_returns_its_value() {
    let result = run_technique("thread", Policy::Hardware);

    assert_eq!(result.detail.as_deref(), Some("thread returned 7"));
}

#[test]
fn renderer_adds_only_its_own_eventfds_to_the_descriptors() {
    let result = run_technique_with("list_fds", Policy::Software, Renderer::Virgl);

    assert_eq!(
        (result.outcome.as_str(), result.detail.as_deref()),
        (
            "ok",
            Some("0:chr 1:chr 2:chr 3:sock 4:anon_inode:[eventfd] 5:anon_inode:[eventfd]")
        )
    );
}

#[test]
fn executable_memory_is_killed_on_hardware_even_with_the_renderer_up() {
    let result = run_technique_with("mmap_exec", Policy::Hardware, Renderer::Virgl);

    assert_eq!(result.outcome, "SIGSYS", "{result:?}");
}

#[test]
fn executable_memory_is_allowed_for_the_software_renderer_it_serves() {
    let result = run_technique_with("mmap_exec", Policy::Software, Renderer::Virgl);

    assert_eq!(result.outcome, "ok", "{result:?}");
}

#[test]
fn threads_start_with_the_renderer_up() {
    let result = run_technique_with("thread", Policy::Hardware, Renderer::Virgl);

    assert_eq!(result.outcome, "ok", "{result:?}");
}
