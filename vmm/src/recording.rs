//! rayvmm's end of a recording (`rayvmm run --record`): the jailed GPU process streams records
//! into a pipe; a thread here checks each one (the process is untrusted: a record that does
//! not parse ends the recording) and writes the compressed file, first to `FILE.partial`,
//! renamed to `FILE` once complete.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use recording::{read_record, ReadError, Record, Writer};

/// The default bound on a recording file's compressed size (`--record-limit`).
pub const DEFAULT_LIMIT_BYTES: u64 = 4 << 30;

/// Why a recording could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("creating the recording {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the recording {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the GPU process sent a bad record; {path} holds what came before it: {source}")]
    Stream {
        path: PathBuf,
        #[source]
        source: ReadError,
    },
    #[error("starting the recording thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the recording thread panicked")]
    Panicked,
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    pub path: PathBuf,
    pub commands: u64,
    pub frames: u64,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// The size bound cut the recording short.
    pub cut_at_limit: bool,
}

impl std::fmt::Display for RecordingSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recorded {} commands and {} frames to {} ({:.1} MiB, {:.1} MiB uncompressed){}",
            self.commands,
            self.frames,
            self.path.display(),
            self.compressed_bytes as f64 / (1 << 20) as f64,
            self.uncompressed_bytes as f64 / (1 << 20) as f64,
            if self.cut_at_limit {
                "; cut short at the size limit"
            } else {
                ""
            }
        )
    }
}

/// A recording being written.
pub struct RecordingJob {
    thread: JoinHandle<Result<RecordingSummary, RecordingError>>,
}

impl RecordingJob {
    /// Starts writing what arrives on `pipe` to `path`, after an Info record with `info`,
    /// up to `limit` compressed bytes (the pipe is drained beyond it, so the GPU process
    /// never blocks on a full pipe).
    pub fn start(
        pipe: OwnedFd,
        path: &Path,
        info: String,
        limit: u64,
    ) -> Result<RecordingJob, RecordingError> {
        let partial = partial_path(path);
        let file = File::create(&partial).map_err(|source| RecordingError::Create {
            path: partial.clone(),
            source,
        })?;
        let mut writer =
            Writer::new(BufWriter::new(file)).map_err(|source| RecordingError::Write {
                path: partial.clone(),
                source,
            })?;
        writer
            .write(&Record::Info(info))
            .map_err(|source| RecordingError::Write {
                path: partial.clone(),
                source,
            })?;
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("recording".into())
            .spawn(move || copy(pipe, writer, &partial, &path, limit))
            .map_err(RecordingError::Thread)?;
        Ok(RecordingJob { thread })
    }

    /// Waits until the GPU process closed its end (it exited) and the file is complete.
    pub fn finish(self) -> Result<RecordingSummary, RecordingError> {
        self.thread.join().map_err(|_| RecordingError::Panicked)?
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn copy(
    pipe: OwnedFd,
    mut writer: Writer<BufWriter<File>>,
    partial: &Path,
    path: &Path,
    limit: u64,
) -> Result<RecordingSummary, RecordingError> {
    let write_error = |source| RecordingError::Write {
        path: partial.to_path_buf(),
        source,
    };
    let mut input = BufReader::with_capacity(1 << 20, File::from(pipe));
    let (mut offset, mut index, mut frames) = (0u64, 0u64, 0u64);
    let mut cut_at_limit = false;
    let mut bad_stream = None;
    loop {
        let record = match read_record(&mut input, &mut offset, index) {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(source) => {
                bad_stream = Some(source);
                break;
            }
        };
        index += 1;
        if cut_at_limit {
            continue;
        }
        if matches!(record, Record::End { .. }) {
            bad_stream = Some(ReadError::TrailingData { offset });
            break;
        }
        frames += u64::from(matches!(record, Record::Frame(_)));
        writer.write(&record).map_err(write_error)?;
        cut_at_limit = writer.compressed_bytes() >= limit;
    }
    let summary = RecordingSummary {
        path: path.to_path_buf(),
        commands: writer.commands(),
        frames,
        compressed_bytes: writer.compressed_bytes(),
        uncompressed_bytes: writer.uncompressed_bytes(),
        cut_at_limit,
    };
    let out = writer.finish().map_err(write_error)?;
    let file = out.into_inner().map_err(|e| write_error(e.into_error()))?;
    file.sync_all().map_err(write_error)?;
    std::fs::rename(partial, path).map_err(|source| RecordingError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    match bad_stream {
        Some(source) => Err(RecordingError::Stream {
            path: path.to_path_buf(),
            source,
        }),
        None => Ok(summary),
    }
}
