//! Where the replay benchmarks leave their reports.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `$BENCH_OUT`, default `<repo>/target/bench`.
pub fn out_dir(root: &Path) -> PathBuf {
    std::env::var("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/bench"))
}

/// Writes `NAME.json` and `NAME.md` into [`out_dir`].
pub fn write(root: &Path, name: &str, json: &Value, table: &str) {
    let out = out_dir(root);
    std::fs::create_dir_all(&out).expect("create the report directory");
    let text = serde_json::to_string_pretty(json).expect("the report serializes");
    std::fs::write(out.join(format!("{name}.json")), text).expect("write the JSON report");
    std::fs::write(out.join(format!("{name}.md")), table).expect("write the table");
}
