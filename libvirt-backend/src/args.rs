//! The command line, as QEMU's vhost-user backend program conventions define it for a GPU
//! (docs/interop/vhost-user.rst, "Backend program conventions"), plus where ray-gpu is.
//!
//! Options take their value after `=` or as the next argument (`--fd=3`, `--fd 3`), as
//! QEMU's own backends accept them. libvirt runs `--print-capabilities`, then
//! `--fd=N [--virgl] [--render-node=PATH]`.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use thiserror::Error;

/// What the program was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `--help`: print the usage.
    Help,
    /// `--print-capabilities`: print the JSON capabilities and exit (whatever else is given).
    PrintCapabilities,
    /// Serve one vhost-user frontend.
    Serve(ServeOptions),
}

/// How to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Where the vhost-user frontend (QEMU) is.
    pub frontend: Frontend,
    /// `--virgl`: 3D through virglrenderer; 2D without it.
    pub virgl: bool,
    /// `--render-node=PATH`: the one GPU device node the jail gets.
    pub render_node: Option<PathBuf>,
    /// `--ray-gpu PATH`: the ray-gpu binary, instead of the one beside this program.
    pub ray_gpu: Option<PathBuf>,
}

/// The vhost-user connection to the frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frontend {
    /// `--fd=N`: an inherited, connected socket.
    Fd(RawFd),
    /// `--socket-path=PATH`: listen there and accept one connection.
    SocketPath(PathBuf),
}

/// A command line this program refuses.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("unknown option {0}")]
    Unknown(String),
    #[error("unexpected argument {0}")]
    Positional(String),
    #[error("--{0} needs a value")]
    MissingValue(&'static str),
    #[error("--{0} takes no value")]
    UnexpectedValue(&'static str),
    #[error("--{0} given twice")]
    Repeated(&'static str),
    #[error("--fd={0} is not a descriptor number (3 or more)")]
    BadFd(String),
    #[error("--fd and --socket-path exclude each other")]
    BothFrontends,
    #[error("no frontend: pass --fd=N or --socket-path=PATH")]
    NoFrontend,
    #[error("argument {0:?} is not valid UTF-8")]
    NotUtf8(OsString),
}

/// The usage text for `--help`.
pub const USAGE: &str = "\
usage: ray-gpu-backend --print-capabilities
       ray-gpu-backend (--fd=N | --socket-path=PATH) [--virgl] [--render-node=PATH] [--ray-gpu=PATH]

A vhost-user GPU backend: ray-gpu in its jail, behind a checking relay.
  --print-capabilities  print the backend's capabilities as JSON and exit
  --fd=N                serve the connected vhost-user socket inherited as descriptor N
  --socket-path=PATH    listen on PATH and serve the first connection
  --virgl               3D (virglrenderer); 2D without it
  --render-node=PATH    the GPU render node the jail gets (default: every render node present)
  --ray-gpu=PATH        the ray-gpu binary (default: $RAYOS_RAY_GPU, else beside this program)
";

/// Options that take a value.
const VALUED: [&str; 4] = ["fd", "socket-path", "render-node", "ray-gpu"];
/// Options that take none.
const FLAGS: [&str; 3] = ["print-capabilities", "virgl", "help"];

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, ArgsError> {
    let mut args = args.into_iter();
    let mut seen: Vec<&'static str> = Vec::new();
    let mut fd = None;
    let mut socket_path = None;
    let mut render_node = None;
    let mut ray_gpu = None;
    let mut virgl = false;
    let mut print_capabilities = false;
    let mut help = false;
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(ArgsError::NotUtf8)?;
        if arg == "-h" {
            help = true;
            continue;
        }
        let Some(option) = arg.strip_prefix("--") else {
            return Err(ArgsError::Positional(arg));
        };
        let (name, inline) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (option, None),
        };
        if let Some(&flag) = FLAGS.iter().find(|&&f| f == name) {
            if inline.is_some() {
                return Err(ArgsError::UnexpectedValue(flag));
            }
            match flag {
                "print-capabilities" => print_capabilities = true,
                "virgl" => virgl = true,
                _ => help = true,
            }
            continue;
        }
        let Some(&name) = VALUED.iter().find(|&&v| v == name) else {
            return Err(ArgsError::Unknown(arg));
        };
        if seen.contains(&name) {
            return Err(ArgsError::Repeated(name));
        }
        seen.push(name);
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or(ArgsError::MissingValue(name))?
                .into_string()
                .map_err(ArgsError::NotUtf8)?,
        };
        if value.is_empty() {
            return Err(ArgsError::MissingValue(name));
        }
        match name {
            "fd" => fd = Some(parse_fd(&value)?),
            "socket-path" => socket_path = Some(PathBuf::from(value)),
            "render-node" => render_node = Some(PathBuf::from(value)),
            _ => ray_gpu = Some(PathBuf::from(value)),
        }
    }
    if help {
        return Ok(Command::Help);
    }
    if print_capabilities {
        return Ok(Command::PrintCapabilities);
    }
    let frontend = match (fd, socket_path) {
        (Some(_), Some(_)) => return Err(ArgsError::BothFrontends),
        (Some(fd), None) => Frontend::Fd(fd),
        (None, Some(path)) => Frontend::SocketPath(path),
        (None, None) => return Err(ArgsError::NoFrontend),
    };
    Ok(Command::Serve(ServeOptions {
        frontend,
        virgl,
        render_node,
        ray_gpu,
    }))
}

/// A descriptor number for `--fd`: 3 or more (0 to 2 are the standard streams).
fn parse_fd(value: &str) -> Result<RawFd, ArgsError> {
    match value.parse::<RawFd>() {
        Ok(fd) if fd >= 3 => Ok(fd),
        _ => Err(ArgsError::BadFd(value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, ArgsError> {
        parse(args.iter().map(OsString::from))
    }

    fn serve(args: &[&str]) -> ServeOptions {
        match parse_str(args) {
            Ok(Command::Serve(options)) => options,
            other => panic!("expected serve options, got {other:?}"),
        }
    }

    #[test]
    fn libvirts_command_line_serves_the_inherited_fd_in_3d() {
        let options = serve(&["--fd=27", "--virgl"]);

        assert_eq!(
            options,
            ServeOptions {
                frontend: Frontend::Fd(27),
                virgl: true,
                render_node: None,
                ray_gpu: None,
            }
        );
    }

    #[test]
    fn values_may_follow_as_the_next_argument() {
        let options = serve(&[
            "--socket-path",
            "/run/gpu.sock",
            "--render-node",
            "/dev/dri/renderD128",
        ]);

        assert_eq!(
            options.frontend,
            Frontend::SocketPath("/run/gpu.sock".into())
        );
        assert_eq!(options.render_node, Some("/dev/dri/renderD128".into()));
        assert!(!options.virgl);
    }

    #[test]
    fn print_capabilities_needs_nothing_else() {
        assert_eq!(
            parse_str(&["--print-capabilities"]),
            Ok(Command::PrintCapabilities)
        );
    }

    #[test]
    fn a_frontend_is_required_to_serve() {
        assert_eq!(parse_str(&["--virgl"]), Err(ArgsError::NoFrontend));
    }

    #[test]
    fn fd_and_socket_path_exclude_each_other() {
        assert_eq!(
            parse_str(&["--fd=3", "--socket-path=/tmp/s"]),
            Err(ArgsError::BothFrontends)
        );
    }

    #[test]
    fn standard_streams_and_non_numbers_are_not_frontend_fds() {
        assert_eq!(parse_str(&["--fd=1"]), Err(ArgsError::BadFd("1".into())));
        assert_eq!(
            parse_str(&["--fd=three"]),
            Err(ArgsError::BadFd("three".into()))
        );
    }

    #[test]
    fn unknown_options_are_named() {
        let err = parse_str(&["--fd=3", "--daemonize"]).unwrap_err();

        assert_eq!(err.to_string(), "unknown option --daemonize");
    }

    #[test]
    fn flags_refuse_values_and_valued_options_need_one() {
        assert_eq!(
            parse_str(&["--virgl=yes"]),
            Err(ArgsError::UnexpectedValue("virgl"))
        );
        assert_eq!(parse_str(&["--fd"]), Err(ArgsError::MissingValue("fd")));
    }

    #[test]
    fn an_option_given_twice_is_refused() {
        assert_eq!(
            parse_str(&["--fd=3", "--fd=4"]),
            Err(ArgsError::Repeated("fd"))
        );
    }

    #[test]
    fn ray_gpu_path_can_be_given() {
        let options = serve(&["--fd=3", "--ray-gpu=/opt/ray-gpu"]);

        assert_eq!(options.ray_gpu, Some("/opt/ray-gpu".into()));
    }
}
