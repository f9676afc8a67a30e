//! Scanouts: the displays, their modes, and the resource each one shows.

use super::config::DisplayMode;
use super::protocol::{DisplayOne, Rect, RespDisplayInfo};

/// One scanout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scanout {
    /// The display's mode, reported by GET_DISPLAY_INFO and the EDID.
    pub mode: DisplayMode,
    /// The resource shown (0: none).
    pub resource_id: u32,
    /// The part of the resource shown.
    pub rect: Rect,
}

impl Scanout {
    pub fn new(mode: DisplayMode) -> Scanout {
        Scanout {
            mode,
            resource_id: 0,
            rect: Rect::default(),
        }
    }

    /// Stops showing any resource.
    pub fn disable(&mut self) {
        self.resource_id = 0;
        self.rect = Rect::default();
    }

    /// The part of `flushed` (resource coordinates) this scanout shows, in scanout
    /// coordinates, if it shows resource `resource_id` and the two overlap.
    pub fn visible_part(&self, resource_id: u32, flushed: &Rect) -> Option<(Rect, Rect)> {
        if self.resource_id == 0 || self.resource_id != resource_id {
            return None;
        }
        let x0 = flushed.x.max(self.rect.x);
        let y0 = flushed.y.max(self.rect.y);
        let x1 = flushed
            .x
            .saturating_add(flushed.width)
            .min(self.rect.x.saturating_add(self.rect.width));
        let y1 = flushed
            .y
            .saturating_add(flushed.height)
            .min(self.rect.y.saturating_add(self.rect.height));
        if x0 >= x1 || y0 >= y1 {
            return None;
        }
        let in_resource = Rect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        };
        let on_scanout = Rect {
            x: x0 - self.rect.x,
            y: y0 - self.rect.y,
            ..in_resource
        };
        Some((in_resource, on_scanout))
    }
}

/// The GET_DISPLAY_INFO answer body for `scanouts`.
pub fn display_info(scanouts: &[Scanout]) -> RespDisplayInfo {
    let mut info = RespDisplayInfo::default();
    for (slot, scanout) in info.pmodes.iter_mut().zip(scanouts) {
        *slot = DisplayOne {
            r: Rect {
                x: 0,
                y: 0,
                width: scanout.mode.width,
                height: scanout.mode.height,
            },
            enabled: 1,
            flags: 0,
        };
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn showing(resource_id: u32, rect: Rect) -> Scanout {
        Scanout {
            mode: DisplayMode::default(),
            resource_id,
            rect,
        }
    }

    #[test]
    fn visible_part_clips_flush_to_scanout_rect() {
        let scanout = showing(
            1,
            Rect {
                x: 10,
                y: 10,
                width: 100,
                height: 100,
            },
        );

        let part = scanout.visible_part(
            1,
            &Rect {
                x: 0,
                y: 0,
                width: 20,
                height: 30,
            },
        );

        assert_eq!(
            part,
            Some((
                Rect {
                    x: 10,
                    y: 10,
                    width: 10,
                    height: 20
                },
                Rect {
                    x: 0,
                    y: 0,
                    width: 10,
                    height: 20
                }
            ))
        );
    }

    #[test]
    fn visible_part_ignores_other_resources() {
        let scanout = showing(
            1,
            Rect {
                x: 0,
                y: 0,
                width: 100,
                height: 100,
            },
        );

        assert_eq!(
            scanout.visible_part(
                2,
                &Rect {
                    x: 0,
                    y: 0,
                    width: 10,
                    height: 10
                }
            ),
            None
        );
    }

    #[test]
    fn display_info_reports_each_mode_enabled() {
        let scanouts = [Scanout::new(DisplayMode {
            width: 800,
            height: 600,
        })];

        let info = display_info(&scanouts);

        assert_eq!(
            (
                info.pmodes[0].r.width,
                info.pmodes[0].r.height,
                info.pmodes[0].enabled,
                info.pmodes[1].enabled
            ),
            (800, 600, 1, 0)
        );
    }
}
