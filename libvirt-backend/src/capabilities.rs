//! `--print-capabilities`: what this backend tells libvirt it can do (QEMU's vhost-user.json,
//! `VHostUserBackendCapabilitiesGPU`).
//!
//! `virgl` always: ray-gpu renders 3D with virglrenderer, on a render node or, without one,
//! on Mesa's software rasteriser. `render-node` only where the host has one: libvirt answers
//! that claim by picking a node itself and passing `--render-node`, and fails the domain where
//! /dev/dri holds none.

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
}
