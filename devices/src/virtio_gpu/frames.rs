//! Frames on demand: what each scanout's consumer has not seen yet.
//!
//! A guest's RESOURCE_FLUSH only records which part of a scanout changed; pixels are read back
//! from the renderer when a consumer (the display toward QEMU, a VNC viewer, a screenshot)
//! asks for a frame, at the consumer's own pace. A consumer names the generation it last saw;
//! when that is the last one handed out, it gets only the rectangle flushed since, otherwise
//! the whole frame.

use super::protocol::Rect;
use super::sink::CursorImage;

/// What changed on a scanout since the generation a consumer last saw. `P` holds the
/// pixels: a vector of them, or `()` when they went into the consumer's own buffer
/// ([`super::VirtioGpu::take_frame_into`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameChange<P = Vec<u8>> {
    /// Nothing: the consumer is up to date.
    Unchanged,
    /// The scanout shows nothing (now at `generation`).
    Disabled { generation: u64 },
    /// Part of a `width` x `height` frame changed.
    Pixels(FramePixels<P>),
}

/// Changed pixels of a scanout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramePixels<P = Vec<u8>> {
    /// The generation these pixels bring the consumer to.
    pub generation: u64,
    /// The scanout's size.
    pub width: u32,
    pub height: u32,
    /// The part that changed, in scanout coordinates, inside `width` x `height`.
    pub rect: Rect,
    /// `rect.width * rect.height` pixels, rows of `rect.width * 4` bytes, B, G, R, X in memory.
    pub pixels: P,
}

/// What changed about the cursor since the generation a consumer last saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CursorChange {
    /// Nothing.
    Unchanged,
    /// The cursor is hidden (as of `generation`).
    Hidden { generation: u64 },
    /// It moved to (`x`, `y`) on scanout 0; its image is the one the consumer has.
    Moved { generation: u64, x: u32, y: u32 },
    /// It is at (`x`, `y`) on scanout 0 and shows `image`, new to the consumer.
    Image {
        generation: u64,
        x: u32,
        y: u32,
        image: CursorImage,
    },
}

/// The cursor of scanout 0 as consumers see it, with the generations that tell them what
/// they lack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CursorTrack {
    generation: u64,
    /// The generation at which the image last changed.
    image_generation: u64,
    position: (u32, u32),
    image: Option<CursorImage>,
}

impl CursorTrack {
    /// The guest set a new image (`None`: hid the cursor) at `position`.
    pub fn set(&mut self, position: (u32, u32), image: Option<CursorImage>) {
        self.generation += 1;
        self.image_generation = self.generation;
        self.position = position;
        self.image = image;
    }

    /// The guest moved the cursor.
    pub fn moved(&mut self, position: (u32, u32)) {
        self.generation += 1;
        self.position = position;
    }

    /// What a consumer that last saw generation `since` lacks.
    pub fn since(&self, since: u64) -> CursorChange {
        let (x, y) = self.position;
        let generation = self.generation;
        match &self.image {
            _ if since == generation => CursorChange::Unchanged,
            None => CursorChange::Hidden { generation },
            Some(_) if since >= self.image_generation && since < generation => {
                CursorChange::Moved { generation, x, y }
            }
            Some(image) => CursorChange::Image {
                generation,
                x,
                y,
                image: image.clone(),
            },
        }
    }
}

/// Per-scanout record of changes since the last frame handed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FrameTrack {
    /// Bumped on every change to what the scanout shows.
    generation: u64,
    /// The generation of the last frame handed out.
    delivered: u64,
    /// Union of the rectangles flushed since `delivered`, in scanout coordinates.
    dirty: Option<Rect>,
    /// The scanout changed resource or size since `delivered`: the next frame is whole.
    whole: bool,
}

impl FrameTrack {
    /// The generation of the scanout's current contents.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// `rect` (scanout coordinates) was flushed.
    pub fn flushed(&mut self, rect: Rect) {
        self.generation += 1;
        self.dirty = Some(match self.dirty {
            Some(dirty) => union(dirty, rect),
            None => rect,
        });
    }

    /// The scanout shows another resource, another part of one, or nothing.
    pub fn layout_changed(&mut self) {
        self.generation += 1;
        self.whole = true;
        self.dirty = None;
    }

    /// The part of a `width` x `height` scanout a consumer that last saw `since` must read:
    /// `None` when it is up to date.
    pub fn stale_part(&self, since: u64, width: u32, height: u32) -> Option<Rect> {
        if since == self.generation {
            return None;
        }
        let whole = Rect {
            x: 0,
            y: 0,
            width,
            height,
        };
        if since != self.delivered || self.whole {
            return Some(whole);
        }
        Some(self.dirty.map_or(whole, |d| clip(d, width, height)))
    }

    /// A frame of the current generation was handed out.
    pub fn delivered(&mut self) -> u64 {
        self.delivered = self.generation;
        self.dirty = None;
        self.whole = false;
        self.generation
    }
}

/// The smallest rectangle holding `a` and `b`.
fn union(a: Rect, b: Rect) -> Rect {
    let x0 = a.x.min(b.x);
    let y0 = a.y.min(b.y);
    let x1 = a.x.saturating_add(a.width).max(b.x.saturating_add(b.width));
    let y1 =
        a.y.saturating_add(a.height)
            .max(b.y.saturating_add(b.height));
    Rect {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    }
}

/// `r` cut to a `width` x `height` area (flushes are clipped already; this keeps the promise
/// that a handed-out rectangle lies inside the frame whatever happened in between).
fn clip(r: Rect, width: u32, height: u32) -> Rect {
    let x = r.x.min(width);
    let y = r.y.min(height);
    Rect {
        x,
        y,
        width: r.x.saturating_add(r.width).min(width) - x,
        height: r.y.saturating_add(r.height).min(height) - y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn consumer_in_step_gets_only_the_union_of_flushes() {
        let mut track = FrameTrack::default();
        track.layout_changed();
        let seen = track.delivered();
        track.flushed(rect(10, 10, 5, 5));
        track.flushed(rect(30, 2, 4, 4));

        let part = track.stale_part(seen, 100, 100);

        assert_eq!(part, Some(rect(10, 2, 24, 13)));
    }

    #[test]
    fn consumer_out_of_step_gets_the_whole_frame() {
        let mut track = FrameTrack::default();
        track.layout_changed();
        track.delivered();
        track.flushed(rect(10, 10, 5, 5));

        let part = track.stale_part(0, 100, 50);

        assert_eq!(part, Some(rect(0, 0, 100, 50)));
    }

    #[test]
    fn layout_change_makes_the_next_frame_whole() {
        let mut track = FrameTrack::default();
        let seen = track.delivered();
        track.flushed(rect(1, 1, 1, 1));
        track.layout_changed();

        let part = track.stale_part(seen, 64, 32);

        assert_eq!(part, Some(rect(0, 0, 64, 32)));
    }

    #[test]
    fn consumer_up_to_date_gets_nothing() {
        let mut track = FrameTrack::default();
        track.flushed(rect(0, 0, 8, 8));
        let seen = track.delivered();

        let part = track.stale_part(seen, 8, 8);

        assert_eq!(part, None);
    }

    fn arrow() -> CursorImage {
        CursorImage {
            hot_x: 1,
            hot_y: 2,
            pixels: vec![7; 16],
        }
    }

    #[test]
    fn cursor_consumer_without_the_image_gets_it() {
        let mut cursor = CursorTrack::default();
        cursor.set((5, 6), Some(arrow()));
        cursor.moved((7, 8));

        let change = cursor.since(0);

        assert_eq!(
            change,
            CursorChange::Image {
                generation: 2,
                x: 7,
                y: 8,
                image: arrow()
            }
        );
    }

    #[test]
    fn cursor_consumer_with_the_image_gets_only_the_move() {
        let mut cursor = CursorTrack::default();
        cursor.set((5, 6), Some(arrow()));
        cursor.moved((7, 8));

        let change = cursor.since(1);

        assert_eq!(
            change,
            CursorChange::Moved {
                generation: 2,
                x: 7,
                y: 8
            }
        );
    }

    #[test]
    fn hidden_cursor_says_so_and_then_nothing() {
        let mut cursor = CursorTrack::default();
        cursor.set((5, 6), Some(arrow()));
        cursor.set((0, 0), None);

        let changes = (cursor.since(1), cursor.since(2));

        assert_eq!(
            changes,
            (
                CursorChange::Hidden { generation: 2 },
                CursorChange::Unchanged
            )
        );
    }

    #[test]
    fn dirty_part_never_leaves_the_frame() {
        let mut track = FrameTrack::default();
        let seen = track.delivered();
        track.flushed(rect(90, 90, 20, 20));

        let part = track.stale_part(seen, 100, 95);

        assert_eq!(part, Some(rect(90, 90, 10, 5)));
    }
}
