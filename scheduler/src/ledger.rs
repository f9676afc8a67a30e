//! The host's GPU ledger: a directory where every scheduled VM's supervisor publishes its
//! weight and virtual GPU time each tick, and reads everyone else's.
//!
//! One file per VM, replaced whole by rename so a reader never sees half a record. Only the
//! supervisors (trusted host processes of one user) write here; the GPU processes, in their
//! empty roots, cannot reach it. A record whose supervisor is gone is removed by whoever
//! reads it; one not refreshed within [`STALE`] is ignored.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::admission::Neighbour;
use crate::sys;

/// A record older than this is not counted (its supervisor stopped publishing).
pub const STALE: Duration = Duration::from_secs(1);

const PREFIX: &str = "vm-";

/// Why the ledger cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("creating the GPU ledger directory {0}: {1}")]
    Create(PathBuf, std::io::Error),
    #[error("the GPU ledger {0} is not a directory owned by this user and closed to others (owner uid {1}, mode {2:o}): another user could hold this host's VMs through it")]
    Unsafe(PathBuf, u32, u32),
    #[error("publishing to the GPU ledger {0}: {1}")]
    Publish(PathBuf, std::io::Error),
    #[error("reading the GPU ledger {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("starting the GPU scheduling thread: {0}")]
    Thread(std::io::Error),
}

/// The ledger directory every supervisor of this host user shares by default:
/// `$XDG_RUNTIME_DIR/rayos-gpu-ledger`, else `/dev/shm/rayos-gpu-ledger-UID`.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => Path::new(&dir).join("rayos-gpu-ledger"),
        None => PathBuf::from(format!("/dev/shm/rayos-gpu-ledger-{}", sys::euid())),
    }
}

/// What one VM publishes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    /// The supervisor's pid: the record is removed once it is gone.
    pub supervisor: u32,
    pub vtime: f64,
    pub busy: bool,
    pub waiting: bool,
    /// When it was written (CLOCK_MONOTONIC, host-wide).
    pub written: Duration,
}

impl Record {
    fn to_text(self) -> String {
        format!(
            "supervisor {}\nvtime {:e}\nbusy {}\nwaiting {}\nwritten_ns {}\n",
            self.supervisor,
            self.vtime,
            u8::from(self.busy),
            u8::from(self.waiting),
            self.written.as_nanos()
        )
    }

    fn parse(text: &str) -> Option<Record> {
        let mut fields = std::collections::HashMap::new();
        for line in text.lines() {
            let (key, value) = line.split_once(' ')?;
            fields.insert(key, value);
        }
        Some(Record {
            supervisor: fields.get("supervisor")?.parse().ok()?,
            vtime: fields
                .get("vtime")?
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())?,
            busy: flag(fields.get("busy")?)?,
            waiting: flag(fields.get("waiting")?)?,
            written: Duration::from_nanos(fields.get("written_ns")?.parse().ok()?),
        })
    }
}

fn flag(text: &str) -> Option<bool> {
    match text {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// One VM's place in the ledger.
#[derive(Debug)]
pub struct Ledger {
    dir: PathBuf,
    name: String,
}

impl Ledger {
    /// Joins the ledger in `dir` (created if missing) as the VM whose GPU process is `pid`.
    pub fn join(dir: &Path, pid: u32) -> Result<Ledger, LedgerError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| LedgerError::Create(dir.to_path_buf(), e))?;
        let meta = std::fs::metadata(dir).map_err(|e| LedgerError::Read(dir.to_path_buf(), e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if !meta.is_dir() || meta.uid() != sys::euid() || mode & 0o022 != 0 {
            return Err(LedgerError::Unsafe(dir.to_path_buf(), meta.uid(), mode));
        }
        Ok(Ledger {
            dir: dir.to_path_buf(),
            name: format!("{PREFIX}{pid}"),
        })
    }

    /// Replaces this VM's record.
    pub fn publish(&self, record: Record) -> Result<(), LedgerError> {
        let temporary = self.dir.join(format!(".{}.new", self.name));
        let error = |e| LedgerError::Publish(self.dir.join(&self.name), e);
        let mut file = std::fs::File::create(&temporary).map_err(error)?;
        file.write_all(record.to_text().as_bytes()).map_err(error)?;
        std::fs::rename(&temporary, self.dir.join(&self.name)).map_err(error)
    }

    /// Everyone else's fresh records as of `now`; records of supervisors that are gone are
    /// removed, unreadable or stale ones skipped.
    pub fn neighbours(&self, now: Duration) -> Result<Vec<Neighbour>, LedgerError> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| LedgerError::Read(self.dir.clone(), e))?;
        let mut neighbours = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with(PREFIX) || name == self.name {
                continue;
            }
            let Some(record) = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|text| Record::parse(&text))
            else {
                continue;
            };
            if !sys::alive(record.supervisor) {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            if now.saturating_sub(record.written) <= STALE {
                neighbours.push(Neighbour {
                    vtime: record.vtime,
                    busy: record.busy,
                    waiting: record.waiting,
                });
            }
        }
        Ok(neighbours)
    }

    /// Takes this VM's record out.
    pub fn leave(&self) {
        let _ = std::fs::remove_file(self.dir.join(&self.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ledger-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn record(vtime: f64, written: Duration) -> Record {
        Record {
            supervisor: std::process::id(),
            vtime,
            busy: true,
            waiting: true,
            written,
        }
    }

    #[test]
    fn published_record_is_read_back_by_a_neighbour() {
        let dir = scratch("read-back");
        let (a, b) = (
            Ledger::join(&dir, 1).unwrap(),
            Ledger::join(&dir, 2).unwrap(),
        );
        let now = sys::monotonic();

        a.publish(record(0.25, now)).unwrap();

        assert_eq!(
            (b.neighbours(now).unwrap(), a.neighbours(now).unwrap()),
            (
                vec![Neighbour {
                    vtime: 0.25,
                    busy: true,
                    waiting: true
                }],
                vec![]
            )
        );
    }

    #[test]
    fn stale_record_is_not_counted() {
        let dir = scratch("stale");
        let (a, b) = (
            Ledger::join(&dir, 1).unwrap(),
            Ledger::join(&dir, 2).unwrap(),
        );
        a.publish(record(1.0, Duration::from_secs(10))).unwrap();

        let neighbours = b.neighbours(Duration::from_secs(10) + STALE * 2).unwrap();

        assert_eq!(neighbours, vec![]);
    }

    #[test]
    fn record_of_a_supervisor_that_is_gone_is_removed() {
        let dir = scratch("gone");
        let (a, b) = (
            Ledger::join(&dir, 1).unwrap(),
            Ledger::join(&dir, 2).unwrap(),
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        a.publish(Record {
            supervisor: gone,
            ..record(1.0, sys::monotonic())
        })
        .unwrap();

        let neighbours = b.neighbours(sys::monotonic()).unwrap();

        assert_eq!((neighbours, dir.join("vm-1").exists()), (vec![], false));
    }

    #[test]
    fn malformed_record_is_skipped() {
        let dir = scratch("malformed");
        let b = Ledger::join(&dir, 2).unwrap();
        std::fs::write(dir.join("vm-1"), "vtime NaN\nbusy 2\n").unwrap();

        let neighbours = b.neighbours(sys::monotonic()).unwrap();

        assert_eq!(neighbours, vec![]);
    }

    #[test]
    fn ledger_open_to_other_users_is_refused() {
        let dir = scratch("open");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();

        let joined = Ledger::join(&dir, 1);

        assert!(
            matches!(joined, Err(LedgerError::Unsafe(_, _, 0o777))),
            "{joined:?}"
        );
    }
}
