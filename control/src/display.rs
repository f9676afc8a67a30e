//! Display descriptions the supervisor sends to the GPU process.

use serde::{Deserialize, Serialize};

/// Largest width or height a display may have: the largest an EDID detailed timing
/// describes (12 bits).
pub const MAX_DISPLAY_EDGE: u32 = 4095;

/// One display's mode, as the device reports it to the guest (GET_DISPLAY_INFO, EDID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayMode {
    pub width: u32,
    pub height: u32,
}

impl Default for DisplayMode {
    fn default() -> Self {
        DisplayMode {
            width: 1024,
            height: 768,
        }
    }
}
