//! Linux guest under real libvirt: libvirt starts ray-gpu-backend (the jailed GPU as a
//! vhost-user GPU backend) for `<video><driver name='vhostuser'/>` with accel3d, the guest
//! renders kmscube through virgl, QEMU's display (`virsh screenshot`) shows the guest's picture
//! through the backend's frame pump, the GPU process libvirt started is jailed, and destroying
//! the domain leaves no process behind.
//!
//! It installs and starts what it needs (scripts/setup-libvirt.sh: libvirt 11.3, virtlogd,
//! libvirtd; scripts/install-libvirt-backend.sh: the backend and its descriptor), so it needs
//! root; run by anyone else it says why it skips. The backend is installed from the debug
//! build in target/debug, which scripts/test.sh builds first.

mod guest_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use guest_support::{
    guest_results, linux_image, repo_root, rgb_image, run_tool, scratch_dir, GUEST_TIMEOUT,
    KERNEL_ARGS,
};

/// The libvirt connection the test uses.
const URI: &str = "qemu:///system";
/// Where libvirt keeps the pid files of a domain and its external devices.
const LIBVIRT_RUN_DIR: &str = "/run/libvirt/qemu";
/// How long installing and starting libvirt may take (apt on a fresh machine).
const SETUP_TIMEOUT: Duration = Duration::from_secs(900);
/// How long every process of a destroyed domain may take to go away.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(15);
/// The namespaces the jail gives ray-gpu of its own.
const NAMESPACES: [&str; 7] = ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup"];

#[test]
fn libvirt_starts_the_jailed_gpu_and_the_guest_renders_kmscube_on_virgl() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED guest_libvirt: needs root (it installs libvirt, starts libvirtd and \
             writes /etc/qemu/vhost-user)"
        );
        return;
    }
    script(&["scripts/setup-libvirt.sh"]);
    script(&[
        "scripts/install-libvirt-backend.sh",
        "--debug",
        "--no-build",
    ]);

    let dir = scratch_dir("libvirt-kmscube");
    let name = unique_domain_name();
    let serial = dir.join("serial.log");
    let xml = dir.join("domain.xml");
    std::fs::write(&xml, domain_xml(&name, &dir, &serial)).expect("write the domain XML");
    let domain = Domain::define(&name, &xml);
    domain.start();

    let text = wait_for_serial(&serial, "RAYOS-DONE", GUEST_TIMEOUT);
    let results = guest_results(&text);
    // QEMU's display shows what the backend's frame pump gave it: the guest's last picture.
    let shot_path = dir.join("screenshot.png");
    virsh(&["screenshot", &name, &shot_path.display().to_string()]);
    let shot = rgb_image(&shot_path);
    let backend = Proc::from_pid_file(&backend_pid_file(&name));
    let gpu = backend.child_named("ray-gpu");
    let qemu = Proc::from_pid_file(&Path::new(LIBVIRT_RUN_DIR).join(format!("{name}.pid")));
    eprintln!(
        "libvirt domain {name}: renderer {:?}, kmscube {} fps; backend pid {}, ray-gpu pid {}, \
         QEMU pid {}",
        results.get("gl_renderer"),
        results.get("kmscube_fps").map_or("?", String::as_str),
        backend.pid,
        gpu.pid,
        qemu.pid
    );

    assert!(text.contains("RAYOS-DONE status=ok"), "serial:\n{text}");
    assert!(
        results
            .get("gl_renderer")
            .is_some_and(|r| r.starts_with("virgl (")),
        "{results:?}"
    );
    assert_eq!(
        results.get("kmscube_frames").map(String::as_str),
        Some("120")
    );
    assert_eq!(
        results.get("fb_pattern").map(String::as_str),
        Some("bands red,green,blue,white")
    );
    assert_eq!((shot.width, shot.height), (1024, 768));
    let bands = [0, 1, 2, 3].map(|band| shot.at(512, 96 + band * 192));
    assert_eq!(
        bands,
        [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]],
        "virsh screenshot {}",
        shot_path.display()
    );
    let status = gpu.status();
    assert_eq!(field(&status, "Seccomp"), "2", "{status}");
    assert_eq!(field(&status, "NoNewPrivs"), "1", "{status}");
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&status, caps), "0000000000000000", "{caps}: {status}");
    }
    let qemu_uid = field(&qemu.status(), "Uid").to_string();
    assert_eq!(
        field(&status, "Uid"),
        qemu_uid,
        "ray-gpu runs as the QEMU user"
    );
    assert_ne!(qemu_uid.split_whitespace().next(), Some("0"));
    assert_eq!(
        field(&backend.status(), "CapEff"),
        "0000000000000000",
        "libvirt runs the backend without capabilities"
    );
    for ns in NAMESPACES {
        assert_ne!(gpu.namespace(ns), backend.namespace(ns), "{ns} namespace");
        assert_ne!(gpu.namespace(ns), Proc::own_namespace(ns), "{ns} namespace");
    }

    domain.destroy_and_undefine();
    let deadline = Instant::now() + CLEANUP_TIMEOUT;
    for process in [&backend, &gpu, &qemu] {
        while process.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !process.alive(),
            "{} outlived the domain",
            process.describe()
        );
    }
    assert_eq!(processes_naming(&name), Vec::<String>::new());
    assert!(!backend_pid_file(&name).exists());
}

/// Runs a project script (bash, from the repository root); fails the test with its output.
fn script(args: &[&str]) {
    let run = run_tool(
        Command::new("bash").args(args).current_dir(repo_root()),
        SETUP_TIMEOUT,
    );
    assert_eq!(run.code, Some(0), "{} failed:\n{}", args[0], run.output);
}

/// A domain name no other run uses (pid and time), within the 20 characters libvirt keeps of
/// a name in its file names (its "short name").
fn unique_domain_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("rayos-{}-{:04x}", std::process::id(), nanos & 0xffff)
}

/// The domain: the project's Linux guest running kmscube (120 frames, then holding so the
/// test can look at it), TCG, 1 GiB of shared memfd RAM, the vhost-user GPU with 3D, serial to
/// a file, no graphics. Kernel and initrd are copies in `dir`: libvirt relabels (chowns) them
/// for the QEMU user while the domain runs.
fn domain_xml(name: &str, dir: &Path, serial: &Path) -> String {
    let image = linux_image();
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initrd.img");
    std::fs::copy(&image.kernel, &kernel).expect("copy the guest kernel");
    std::fs::copy(&image.initrd, &initrd).expect("copy the guest initrd");
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>2</vcpu>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{KERNEL_ARGS} rayos.workload=kmscube rayos.frames=120 rayos.hold=600</cmdline>
  </os>
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>Haswell-v4</model>
    <feature policy='disable' name='pcid'/>
    <feature policy='disable' name='tsc-deadline'/>
    <feature policy='disable' name='invpcid'/>
    <feature policy='disable' name='spec-ctrl'/>
  </cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='{serial}'/>
      <target port='0'/>
    </serial>
    <video>
      <model type='virtio' heads='1'>
        <acceleration accel3d='yes'/>
      </model>
      <driver name='vhostuser'/>
    </video>
    <memballoon model='none'/>
  </devices>
</domain>
",
        kernel = kernel.display(),
        initrd = initrd.display(),
        serial = serial.display(),
    )
}

/// The pid file libvirt writes for the domain's vhost-user GPU backend
/// (`<id>-<name>-video0-vhost-user-gpu.pid`).
fn backend_pid_file(name: &str) -> PathBuf {
    let suffix = format!("-{name}-video0-vhost-user-gpu.pid");
    std::fs::read_dir(LIBVIRT_RUN_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(&suffix))
        .unwrap_or_else(|| Path::new(LIBVIRT_RUN_DIR).join(format!("?{suffix}")))
}

/// Waits until the serial log contains `needle`; returns the log (fails at the deadline).
fn wait_for_serial(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle} on the serial console within {timeout:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The command lines of the host's processes that mention `name`.
fn processes_naming(name: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(name))
        .collect()
}

/// A libvirt domain, destroyed and undefined when dropped (if the test did not already).
struct Domain {
    name: String,
    defined: std::cell::Cell<bool>,
}

impl Domain {
    fn define(name: &str, xml: &Path) -> Domain {
        virsh(&["define", &xml.display().to_string()]);
        Domain {
            name: name.to_string(),
            defined: std::cell::Cell::new(true),
        }
    }

    fn start(&self) {
        virsh(&["start", &self.name]);
    }

    fn destroy_and_undefine(&self) {
        virsh(&["destroy", &self.name]);
        virsh(&["undefine", &self.name]);
        self.defined.set(false);
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        if self.defined.get() {
            for verb in ["destroy", "undefine"] {
                let _ = Command::new("virsh")
                    .args(["-q", "-c", URI, verb, &self.name])
                    .output();
            }
        }
    }
}

/// Runs `virsh -c qemu:///system ARGS`; fails the test with its output.
fn virsh(args: &[&str]) {
    let run = run_tool(
        Command::new("virsh").args(["-q", "-c", URI]).args(args),
        Duration::from_secs(120),
    );
    assert_eq!(run.code, Some(0), "virsh {args:?} failed:\n{}", run.output);
}

/// One of the domain's processes, known by pid and start time (so a reused pid is not it).
struct Proc {
    pid: u32,
    start_time: String,
}

impl Proc {
    fn from_pid(pid: u32) -> Proc {
        let start_time = start_time(pid).unwrap_or_else(|| panic!("process {pid} is gone"));
        Proc { pid, start_time }
    }

    fn from_pid_file(path: &Path) -> Proc {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading pid file {}: {e}", path.display()));
        let pid = text.trim().parse().expect("a pid in the pid file");
        Proc::from_pid(pid)
    }

    /// Its child whose command name is `comm`.
    fn child_named(&self, comm: &str) -> Proc {
        let children: Vec<u32> = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|c| {
                c.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        let pid = children
            .into_iter()
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
            })
            .unwrap_or_else(|| panic!("{} has no child named {comm}", self.describe()));
        Proc::from_pid(pid)
    }

    fn status(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_else(|e| panic!("reading the status of {}: {e}", self.describe()))
    }

    fn namespace(&self, ns: &str) -> String {
        std::fs::read_link(format!("/proc/{}/ns/{ns}", self.pid))
            .unwrap_or_else(|e| panic!("reading the {ns} namespace of {}: {e}", self.describe()))
            .display()
            .to_string()
    }

    fn own_namespace(ns: &str) -> String {
        std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .expect("reading the test's own namespace")
            .display()
            .to_string()
    }

    fn alive(&self) -> bool {
        start_time(self.pid).is_some_and(|t| t == self.start_time)
    }

    fn describe(&self) -> String {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.pid)).unwrap_or_default();
        format!("process {} ({})", self.pid, comm.trim())
    }
}

/// Field 22 of /proc/PID/stat (start time in clock ticks), or `None` once the process is
/// gone. A zombie counts as gone: it runs nothing and holds no resources but its pid.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are split after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19).map(|s| s.to_string())
}

/// The value of `name:` in a /proc status text.
fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map_or("", str::trim)
}
