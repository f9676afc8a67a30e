//! Record and replay: the Linux guest's kmscube and a short glmark2 set are recorded through
//! `rayvmm run --record` (ray-gpu streams the records, rayvmm writes the file), then replayed
//! by `rayvmm replay` into a fresh jailed ray-gpu through the real vhost-user data plane, and
//! every recorded scanout image must match what the replayed device shows (same renderer:
//! pixel-exact). A recording that was tampered with, truncated or corrupted is caught.

mod guest_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use guest_support::{linux_args, replay, replay_json, scratch_dir, Rayvmm, GUEST_TIMEOUT};
use recording::{Reader, Record, Writer};

/// Records the guest running `workload` once per test binary.
fn record(name: &str, workload: &str, extra: &str) -> PathBuf {
    let dir = scratch_dir(&format!("recording-{name}"));
    let path = dir.join(format!("{name}.raygrec"));
    let mut args = linux_args(&dir, workload, true, extra);
    args.extend(["--record".to_string(), path.display().to_string()]);
    let done = Rayvmm::start(&args).finish(GUEST_TIMEOUT);
    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert!(done.log.contains("rayvmm: recorded "), "{}", done.log);
    path
}

fn kmscube() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| record("kmscube", "kmscube", "rayos.frames=60"))
}

fn glmark2() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        record(
            "glmark2",
            "glmark2",
            "rayos.duration=2 rayos.glmark2=build;texture",
        )
    })
}

/// Rewrites `from` into `to`, changing each record with `edit`.
fn rewrite(from: &Path, to: &Path, mut edit: impl FnMut(Record) -> Record) {
    let mut reader = Reader::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut writer = Writer::new(std::fs::File::create(to).unwrap()).unwrap();
    while let Some(record) = reader.next_record().unwrap() {
        if !matches!(record, Record::End { .. }) {
            writer.write(&edit(record)).unwrap();
        }
    }
    writer.finish().unwrap().flush().unwrap();
}

#[test]
fn kmscube_recording_replays_in_the_jail_with_every_frame_matching() {
    let path = kmscube();

    let report = replay_json(path, &[]);

    eprintln!(
        "kmscube replay: {} commands, {} fps",
        report["commands"], report["fps"]
    );
    assert_eq!(report["frames_match"], true, "{report:#}");
    assert!(
        report["frames"].as_array().unwrap().len() >= 2,
        "{report:#}"
    );
    assert!(report["flushes"].as_u64().unwrap() >= 60, "{report:#}");
    assert_eq!(report["error_responses"], 0, "{report:#}");
}

#[test]
fn glmark2_recording_replays_in_the_jail_with_every_frame_matching() {
    let path = glmark2();

    let report = replay_json(path, &[]);

    eprintln!(
        "glmark2 replay: {} commands, {} fps",
        report["commands"], report["fps"]
    );
    assert_eq!(report["frames_match"], true, "{report:#}");
    assert!(
        report["frames"].as_array().unwrap().len() >= 4,
        "{report:#}"
    );
    assert!(report["memory_bytes"].as_u64().unwrap() > 0, "{report:#}");
}

#[test]
fn kmscube_recording_replays_at_the_recorded_pace_with_every_frame_matching() {
    let path = kmscube();

    let report = replay_json(path, &["--pace", "recorded"]);

    assert_eq!(report["frames_match"], true, "{report:#}");
}

#[test]
fn replay_reports_a_recorded_frame_the_device_does_not_show() {
    let tampered = scratch_dir("recording-tampered").join("tampered.raygrec");
    rewrite(kmscube(), &tampered, |record| match record {
        Record::Frame(mut frame) => {
            frame.pixels[..4 * 100].fill(0x7f);
            Record::Frame(frame)
        }
        other => other,
    });

    let run = replay(&tampered, &[]);

    assert_eq!(run.code, Some(1), "{}", run.output);
    assert!(run.output.contains(": 100 pixels differ"), "{}", run.output);
}

#[test]
fn replay_rejects_a_truncated_recording_naming_the_offset() {
    let truncated = scratch_dir("recording-truncated").join("truncated.raygrec");
    let bytes = std::fs::read(kmscube()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    let run = replay(&truncated, &[]);

    assert_eq!(run.code, Some(2), "{}", run.output);
    assert!(run.output.contains("truncated at offset"), "{}", run.output);
}

#[test]
fn replay_rejects_a_file_that_is_not_a_recording() {
    let other = scratch_dir("recording-not").join("not.raygrec");
    std::fs::write(&other, b"PNG and other things, not a recording").unwrap();

    let run = replay(&other, &[]);

    assert_eq!(run.code, Some(2), "{}", run.output);
    assert!(run.output.contains("not a recording"), "{}", run.output);
}
