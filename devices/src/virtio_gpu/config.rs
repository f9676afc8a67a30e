//! What the device is configured with: its displays and the limits that bound the host
//! resources one guest can make it hold.

use thiserror::Error;

use super::edid::MAX_EDID_DIMENSION;
use super::protocol::{DecodeLimits, MAX_SCANOUTS};

/// One display's mode: what GET_DISPLAY_INFO and the EDID report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// Bounds on what one guest can make the device allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Host bytes all of a guest's resources may hold together (pixels and bookkeeping),
    /// checked before each allocation.
    pub max_host_bytes: u64,
    /// Most resources alive at once.
    pub max_resources: usize,
    /// Most 3D contexts alive at once.
    pub max_contexts: usize,
    /// Most backing entries per ATTACH_BACKING or CREATE_BLOB.
    pub max_backing_entries: u32,
    /// Most bytes per SUBMIT_3D.
    pub max_submit_bytes: u32,
    /// Largest width, height or depth of a resource.
    pub max_dimension: u32,
    /// Most fenced commands whose fence has not completed: at the cap the device takes no
    /// more commands from the control queue until one completes, so a guest cannot queue
    /// unbounded GPU work ahead of its neighbours on the same GPU.
    pub max_fences_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_host_bytes: 1 << 30,
            max_resources: 16384,
            max_contexts: 256,
            max_backing_entries: 16384,
            max_submit_bytes: 16 << 20,
            max_dimension: 16384,
            max_fences_in_flight: 16,
        }
    }
}

impl Limits {
    /// The decoding bounds implied by these limits.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_backing_entries: self.max_backing_entries,
            max_submit_bytes: self.max_submit_bytes,
        }
    }
}

/// The device's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuConfig {
    /// One mode per scanout; the number of entries is the number of scanouts (1 to 16).
    pub displays: Vec<DisplayMode>,
    /// Offer VIRTIO_GPU_F_EDID and answer GET_EDID.
    pub edid: bool,
    /// Offer VIRTIO_GPU_F_RESOURCE_UUID and answer RESOURCE_ASSIGN_UUID.
    pub resource_uuid: bool,
    /// Offer VIRTIO_GPU_F_CONTEXT_INIT (only when the virgl renderer is up).
    pub context_init: bool,
    /// The name the EDID gives the monitor.
    pub monitor_name: String,
    pub limits: Limits,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            displays: vec![DisplayMode::default()],
            edid: true,
            resource_uuid: true,
            context_init: true,
            monitor_name: "RayOS".to_string(),
            limits: Limits::default(),
        }
    }
}

/// A configuration the device refuses.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The number of displays is 0 or above 16.
    #[error("{0} displays configured; the device supports 1 to {MAX_SCANOUTS}")]
    DisplayCount(usize),
    /// A display mode is empty or too large for an EDID to describe.
    #[error("display {index} mode {width}x{height} is outside 1x1..{MAX_EDID_DIMENSION}x{MAX_EDID_DIMENSION}")]
    DisplayMode {
        index: usize,
        width: u32,
        height: u32,
    },
    /// A limit is zero.
    #[error("limit {0} must not be zero")]
    ZeroLimit(&'static str),
}

/// Checks one display mode.
pub(crate) fn check_mode(index: usize, mode: DisplayMode) -> Result<(), ConfigError> {
    let ok = |v: u32| (1..=MAX_EDID_DIMENSION).contains(&v);
    if ok(mode.width) && ok(mode.height) {
        return Ok(());
    }
    Err(ConfigError::DisplayMode {
        index,
        width: mode.width,
        height: mode.height,
    })
}

impl GpuConfig {
    /// Checks the configuration before the device is built from it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.displays.is_empty() || self.displays.len() > MAX_SCANOUTS {
            return Err(ConfigError::DisplayCount(self.displays.len()));
        }
        for (index, mode) in self.displays.iter().enumerate() {
            check_mode(index, *mode)?;
        }
        let limits = &self.limits;
        let zero = [
            ("max_host_bytes", limits.max_host_bytes == 0),
            ("max_resources", limits.max_resources == 0),
            ("max_contexts", limits.max_contexts == 0),
            ("max_backing_entries", limits.max_backing_entries == 0),
            ("max_submit_bytes", limits.max_submit_bytes == 0),
            ("max_dimension", limits.max_dimension == 0),
        ];
        match zero.iter().find(|(_, is_zero)| *is_zero) {
            Some((name, _)) => Err(ConfigError::ZeroLimit(name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(GpuConfig::default().validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_seventeen_displays() {
        let config = GpuConfig {
            displays: vec![DisplayMode::default(); 17],
            ..Default::default()
        };

        assert_eq!(config.validate(), Err(ConfigError::DisplayCount(17)));
    }

    #[test]
    fn validate_rejects_empty_mode() {
        let config = GpuConfig {
            displays: vec![DisplayMode {
                width: 0,
                height: 768,
            }],
            ..Default::default()
        };

        assert_eq!(
            config.validate(),
            Err(ConfigError::DisplayMode {
                index: 0,
                width: 0,
                height: 768
            })
        );
    }

    #[test]
    fn validate_rejects_zero_limit() {
        let config = GpuConfig {
            limits: Limits {
                max_contexts: 0,
                ..Default::default()
            },
            ..Default::default()
        };

        assert_eq!(
            config.validate(),
            Err(ConfigError::ZeroLimit("max_contexts"))
        );
    }
}
