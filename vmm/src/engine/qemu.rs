//! QEMU as the machine engine.
//!
//! QEMU runs the vCPUs (TCG here, KVM where hardware virtualization works) on rayvmm's guest
//! RAM memfd, with `vhost-user-gpu-pci` connected to the GPU process over an inherited
//! socketpair end. Every descriptor QEMU needs is inherited at a fixed number and nothing
//! else crosses: no socket or file path is created on disk.
//!
//! | fd in QEMU | what |
//! |---|---|
//! | 0 | /dev/null (the serial console is output-only) |
//! | 1, 2 | rayvmm's stdout (serial console) and stderr |
//! | 3 | guest RAM memfd (`memory-backend-file`, `mem-path=/proc/self/fd/3`, `share=on`) |
//! | 4 | vhost-user socket to the GPU process (`-chardev socket,fd=4`) |
//! | 5 | QMP socket to rayvmm (`-chardev socket,fd=5`, `-mon mode=control`) |
//! | 6 | screenshot memfd: `screendump` writes `/proc/self/fd/6`, rayvmm reads it back |

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::qmp::Qmp;
use super::{Accelerator, EngineError, EngineEvent, EventSink, Machine, MachineSpec};
use crate::vm::child::{SupervisedChild, FIRST_INHERITED_FD};
use crate::vm::frame::{Frame, MAX_EDGE};
use crate::vm_config::BootSource;

/// Oldest QEMU major version that runs vhost-user devices under TCG.
pub const MIN_MAJOR_VERSION: u32 = 8;
/// The CPU model under TCG: `max` breaks guest-side llvmpipe (FACTS.md); the features TCG
/// cannot emulate are turned off so QEMU does not warn about them.
const TCG_CPU: &str = "Haswell-v4,-pcid,-tsc-deadline,-invpcid,-spec-ctrl";
/// How long QEMU may take to greet on QMP.
const QMP_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an ordinary QMP command may take (TCG can be slow to answer).
const QMP_COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

// Descriptor numbers in QEMU: the order of `inherited` in [`QemuEngine::launch`].
const MEMORY_FD: RawFd = FIRST_INHERITED_FD;
const GPU_FD: RawFd = FIRST_INHERITED_FD + 1;
const QMP_FD: RawFd = FIRST_INHERITED_FD + 2;
const SCREENSHOT_FD: RawFd = FIRST_INHERITED_FD + 3;

/// A located QEMU binary of a usable version.
#[derive(Debug, Clone)]
pub struct QemuEngine {
    binary: PathBuf,
    version: String,
}

/// Parses `QEMU emulator version X.Y.Z ...` into its numbers.
pub fn parse_version(output: &str) -> Option<(u32, u32, u32)> {
    let rest = output.split("QEMU emulator version ").nth(1)?;
    let word = rest.split_whitespace().next()?;
    let mut parts = word.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

impl QemuEngine {
    /// Runs `binary --version` and refuses versions older than [`MIN_MAJOR_VERSION`].
    pub fn locate(binary: &Path) -> Result<QemuEngine, EngineError> {
        let name = binary.display().to_string();
        let out = Command::new(binary)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| EngineError::VersionProbe {
                binary: name.clone(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (major, minor, micro) =
            parse_version(&text).ok_or_else(|| EngineError::VersionUnknown {
                binary: name.clone(),
                output: text.trim().to_string(),
            })?;
        let version = format!("{major}.{minor}.{micro}");
        if major < MIN_MAJOR_VERSION {
            return Err(EngineError::TooOld {
                binary: name,
                found: version,
            });
        }
        Ok(QemuEngine {
            binary: binary.to_path_buf(),
            version,
        })
    }

    /// The QEMU version, e.g. `10.0.2`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Starts QEMU on `spec`; returns once QMP is up.
    pub fn launch(
        &self,
        spec: &MachineSpec<'_>,
        sink: EventSink,
    ) -> Result<QemuMachine, EngineError> {
        let (qmp_ours, qmp_theirs) = UnixStream::pair().map_err(|source| EngineError::Setup {
            what: "QMP socketpair",
            source,
        })?;
        let screenshot = nix::sys::memfd::memfd_create(
            c"rayvmm-screendump",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .map_err(|e| EngineError::Setup {
            what: "screenshot memfd",
            source: e.into(),
        })?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(arguments(spec)).stdin(Stdio::null());
        let inherited = [
            spec.memory.as_raw_fd(),
            spec.gpu_socket.as_raw_fd(),
            qmp_theirs.as_raw_fd(),
            screenshot.as_raw_fd(),
        ];
        let exit_sink = sink.clone();
        let child = SupervisedChild::spawn(
            cmd,
            &inherited,
            Box::new(move |exit| exit_sink(EngineEvent::Exited(exit))),
        )
        .map_err(|source| EngineError::Spawn {
            binary: self.binary.display().to_string(),
            source,
        })?;
        drop(qmp_theirs);
        let mut machine = QemuMachine {
            child,
            qmp: None,
            screenshot,
        };
        match Qmp::connect(qmp_ours, sink, QMP_START_TIMEOUT) {
            Ok(qmp) => machine.qmp = Some(qmp),
            Err(e) => {
                machine.kill();
                return Err(EngineError::Start(e));
            }
        }
        Ok(machine)
    }
}

/// QEMU's command line for `spec`, with the inherited descriptors at their fixed numbers.
pub fn arguments(spec: &MachineSpec<'_>) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    let mem = format!("{}M", spec.memory_mib);
    let backend = format!(
        "memory-backend-file,id=mem,size={mem},mem-path=/proc/self/fd/{MEMORY_FD},share=on"
    );
    let (accel, cpu) = match spec.accelerator {
        Accelerator::Kvm => ("kvm", "host"),
        Accelerator::Tcg => ("tcg", TCG_CPU),
    };
    push(&["-name", "rayvmm", "-nodefaults", "-no-user-config"]);
    // A guest reboot ends the run; a guest power-off pauses the machine so the supervisor can
    // still take the exit screenshot before it quits QEMU.
    push(&["-action", "reboot=shutdown,shutdown=pause"]);
    push(&["-accel", accel, "-cpu", cpu]);
    push(&["-machine", "q35,memory-backend=mem", "-m", &mem]);
    push(&["-smp", &spec.cpus.to_string()]);
    push(&["-object", &backend]);
    push(&["-chardev", &format!("socket,id=vgpu,fd={GPU_FD}")]);
    push(&["-device", "vhost-user-gpu-pci,chardev=vgpu"]);
    push(&[
        "-global",
        &format!("vhost-user-gpu.xres={}", spec.display.width),
    ]);
    push(&[
        "-global",
        &format!("vhost-user-gpu.yres={}", spec.display.height),
    ]);
    push(&["-chardev", &format!("socket,id=qmp,fd={QMP_FD}")]);
    push(&["-mon", "chardev=qmp,mode=control"]);
    push(&["-chardev", "stdio,id=console,signal=off"]);
    push(&["-serial", "chardev:console"]);
    // Always headless: QEMU refuses -vnc with vhost-user-gpu (its console needs a DMA-BUF
    // display). Viewers watch through rayvmm's own VNC server (vm::vnc); screenshots come
    // from the GPU process or QMP `screendump`.
    push(&["-display", "none"]);
    match spec.boot {
        BootSource::Kernel {
            kernel,
            initrd,
            append,
        } => {
            a.push("-kernel".into());
            a.push(kernel.into());
            if let Some(initrd) = initrd {
                a.push("-initrd".into());
                a.push(initrd.into());
            }
            a.push("-append".into());
            a.push(append.into());
        }
        BootSource::Firmware { firmware, disk } => {
            a.push("-bios".into());
            a.push(firmware.into());
            if let Some(disk) = disk {
                let mut drive = OsString::from("if=virtio,format=raw,snapshot=on,file=");
                drive.push(disk.as_os_str());
                a.push("-drive".into());
                a.push(drive);
            }
        }
    }
    a
}

/// A running QEMU.
pub struct QemuMachine {
    child: SupervisedChild,
    qmp: Option<Qmp>,
    screenshot: OwnedFd,
}

impl QemuMachine {
    fn qmp(&mut self) -> Result<&mut Qmp, EngineError> {
        self.qmp
            .as_mut()
            .ok_or(EngineError::Qmp(super::qmp::QmpError::Closed))
    }

    fn read_screenshot(&self) -> Result<Vec<u8>, EngineError> {
        let file = std::fs::File::from(self.screenshot.try_clone().map_err(|source| {
            EngineError::Setup {
                what: "screenshot memfd",
                source,
            }
        })?);
        let limit = (MAX_EDGE as u64) * (MAX_EDGE as u64) * 3 + 4096;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > limit {
            return Err(EngineError::Screenshot(format!(
                "QEMU wrote {len} bytes, more than any allowed image"
            )));
        }
        let mut data = vec![0u8; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut data, 0)
            .map_err(|e| EngineError::Screenshot(format!("reading it back: {e}")))?;
        Ok(data)
    }
}

impl Machine for QemuMachine {
    fn pid(&self) -> u32 {
        self.child.pid()
    }

    fn request_quit(&mut self) -> Result<(), EngineError> {
        self.qmp()?.execute("quit", None, QMP_COMMAND_TIMEOUT)?;
        Ok(())
    }

    fn screenshot(&mut self) -> Result<Frame, EngineError> {
        let path = format!("/proc/self/fd/{SCREENSHOT_FD}");
        self.qmp()?.execute(
            "screendump",
            Some(json!({"filename": path, "format": "ppm"})),
            QMP_COMMAND_TIMEOUT,
        )?;
        let data = self.read_screenshot()?;
        Frame::from_ppm(&data).map_err(|e| EngineError::Screenshot(e.to_string()))
    }

    fn ping(&mut self, timeout: Duration) -> Result<(), EngineError> {
        self.qmp()?.execute("query-status", None, timeout)?;
        Ok(())
    }

    fn kill(&mut self) {
        self.child.kill();
    }
}

impl Drop for QemuMachine {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm_config::DisplaySize;
    use std::os::fd::AsFd;

    fn args_for(boot: &BootSource) -> Vec<String> {
        let devnull = std::fs::File::open("/dev/null").unwrap();
        let spec = MachineSpec {
            memory: devnull.as_fd(),
            memory_mib: 1024,
            cpus: 2,
            accelerator: Accelerator::Tcg,
            boot,
            gpu_socket: devnull.as_fd(),
            display: DisplaySize {
                width: 800,
                height: 600,
            },
        };
        arguments(&spec)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    fn kernel_boot() -> BootSource {
        BootSource::Kernel {
            kernel: "/k".into(),
            initrd: Some("/i".into()),
            append: "console=ttyS0".into(),
        }
    }

    fn window(args: &[String], flag: &str) -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].clone())
            .collect()
    }

    #[test]
    fn version_parses_debian_banner() {
        let banner = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n";

        assert_eq!(parse_version(banner), Some((10, 0, 2)));
    }

    #[test]
    fn guest_ram_is_the_inherited_memfd_shared() {
        let args = args_for(&kernel_boot());

        assert_eq!(
            window(&args, "-object"),
            vec!["memory-backend-file,id=mem,size=1024M,mem-path=/proc/self/fd/3,share=on"]
        );
    }

    #[test]
    fn sockets_are_inherited_descriptors_not_paths() {
        let args = args_for(&kernel_boot());

        assert_eq!(
            window(&args, "-chardev"),
            vec![
                "socket,id=vgpu,fd=4",
                "socket,id=qmp,fd=5",
                "stdio,id=console,signal=off"
            ]
        );
    }

    #[test]
    fn tcg_uses_a_cpu_model_guest_llvmpipe_accepts() {
        let args = args_for(&kernel_boot());

        assert_eq!(
            (window(&args, "-accel"), window(&args, "-cpu")),
            (vec!["tcg".to_string()], vec![TCG_CPU.to_string()])
        );
    }

    #[test]
    fn always_headless_without_vnc() {
        let args = args_for(&kernel_boot());

        assert_eq!(
            (window(&args, "-display"), window(&args, "-vnc")),
            (vec!["none".to_string()], Vec::<String>::new())
        );
    }

    #[test]
    fn display_size_goes_to_the_device() {
        let args = args_for(&kernel_boot());

        assert_eq!(
            window(&args, "-global"),
            vec!["vhost-user-gpu.xres=800", "vhost-user-gpu.yres=600"]
        );
    }

    #[test]
    fn firmware_boot_uses_bios_and_a_snapshot_disk() {
        let boot = BootSource::Firmware {
            firmware: "/fw.fd".into(),
            disk: Some("/disk.img".into()),
        };

        let args = args_for(&boot);

        assert_eq!(
            (window(&args, "-bios"), window(&args, "-drive")),
            (
                vec!["/fw.fd".to_string()],
                vec!["if=virtio,format=raw,snapshot=on,file=/disk.img".to_string()]
            )
        );
    }
}
