//! `--print-capabilities`: what this backend tells libvirt it can do (QEMU's vhost-user.json,
//! `VHostUserBackendCapabilitiesGPU`).
//!
//! `virgl` always: ray-gpu renders 3D with virglrenderer, on a render node or, without one,
//! on Mesa's software rasteriser. `render-node` only where the host has one: libvirt answers
//! that claim by picking a node itself and passing `--render-node`, and fails the domain where
//! /dev/dri holds none.

use std::path::{Path, PathBuf};

/// Where the host's DRM device nodes are.
pub const DRI_DIR: &str = "/dev/dri";

/// The render nodes (`renderD*`) in `dir`, sorted; none when `dir` is missing.
pub fn render_nodes(dir: &Path) -> Vec<PathBuf> {
    let mut nodes: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("renderD"))
        })
        .collect();
    nodes.sort();
    nodes
}

/// The capabilities document, with `render-node` claimed only when `has_render_node`.
pub fn document(has_render_node: bool) -> String {
    let mut features = Vec::new();
    if has_render_node {
        features.push("render-node");
    }
    features.push("virgl");
    let doc = serde_json::json!({ "type": "gpu", "features": features });
    serde_json::to_string_pretty(&doc).expect("a JSON value always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_render_node_only_virgl_is_claimed() {
        let doc: serde_json::Value = serde_json::from_str(&document(false)).unwrap();

        assert_eq!(
            doc,
            serde_json::json!({"type": "gpu", "features": ["virgl"]})
        );
    }

    #[test]
    fn with_a_render_node_it_is_claimed_beside_virgl() {
        let doc: serde_json::Value = serde_json::from_str(&document(true)).unwrap();

        assert_eq!(
            doc,
            serde_json::json!({"type": "gpu", "features": ["render-node", "virgl"]})
        );
    }

    #[test]
    fn only_render_nodes_count_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["renderD129", "card0", "renderD128"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }

        let nodes = render_nodes(dir.path());

        assert_eq!(
            nodes,
            vec![dir.path().join("renderD128"), dir.path().join("renderD129")]
        );
    }

    #[test]
    fn a_host_without_dev_dri_has_no_render_node() {
        assert!(render_nodes(Path::new("/nonexistent/dri")).is_empty());
    }
}
