//! FramebufferUpdate messages (RFC 6143, section 7.6.1): which parts of the frame changed,
//! and their pixels in the viewer's format, Raw or ZRLE encoded.

use std::io::{self, Write};

use crate::client_message::{Region, ENCODING_DESKTOP_SIZE, ENCODING_RAW, ENCODING_ZRLE};
use crate::image::Image;
use crate::pixel_format::PixelFormat;
use crate::zrle::ZrleEncoder;

/// Edge of the square tiles frames are compared in.
const TILE: u16 = 64;
/// Widest ZRLE rectangle sent (32 tiles). A ZRLE rectangle's compressed data is held whole,
/// to send its length before it, so changed regions are cut into rectangles of at most one
/// row of tiles and this width: the buffer stays near 512 KiB per viewer at worst (noise),
/// whatever the frame's size.
const ZRLE_MAX_WIDTH: u16 = 32 * TILE;

/// How a viewer's pixels are encoded.
pub(crate) enum PixelEncoding<'a> {
    Raw,
    /// ZRLE, through the viewer's own encoder (its zlib stream lasts the connection).
    Zrle(&'a mut ZrleEncoder),
}

/// `region` cut to the image's bounds; `None` when nothing of it lies inside.
pub(crate) fn clip(region: Region, width: u16, height: u16) -> Option<Region> {
    let x_end = (u32::from(region.x) + u32::from(region.width)).min(u32::from(width));
    let y_end = (u32::from(region.y) + u32::from(region.height)).min(u32::from(height));
    if u32::from(region.x) >= x_end || u32::from(region.y) >= y_end {
        return None;
    }
    Some(Region {
        x: region.x,
        y: region.y,
        width: (x_end - u32::from(region.x)) as u16,
        height: (y_end - u32::from(region.y)) as u16,
    })
}

/// The parts of `region` where `new` differs from `old` (both the same size): whole tiles,
/// joined along each row of tiles and then down columns where the runs line up.
pub(crate) fn changed_regions(old: &Image, new: &Image, region: Region) -> Vec<Region> {
    debug_assert_eq!(
        (old.width(), old.height()),
        (new.width(), new.height()),
        "changed_regions compares frames of one size"
    );
    let Some(region) = clip(region, new.width(), new.height()) else {
        return Vec::new();
    };
    let x_end = u32::from(region.x) + u32::from(region.width);
    let y_end = u32::from(region.y) + u32::from(region.height);
    let mut done: Vec<Region> = Vec::new();
    // Runs of the previous row of tiles, still open for extending downwards.
    let mut open: Vec<Region> = Vec::new();
    let mut y = u32::from(region.y);
    while y < y_end {
        let tile_h = (u32::from(TILE) - y % u32::from(TILE)).min(y_end - y) as u16;
        let mut runs: Vec<Region> = Vec::new();
        let mut x = u32::from(region.x);
        while x < x_end {
            let tile_w = (u32::from(TILE) - x % u32::from(TILE)).min(x_end - x) as u16;
            let (tx, ty) = (x as u16, y as u16);
            let differs =
                (ty..ty + tile_h).any(|row| old.span(tx, row, tile_w) != new.span(tx, row, tile_w));
            if differs {
                match runs.last_mut() {
                    Some(run) if u32::from(run.x) + u32::from(run.width) == x => {
                        run.width += tile_w
                    }
                    _ => runs.push(Region {
                        x: tx,
                        y: ty,
                        width: tile_w,
                        height: tile_h,
                    }),
                }
            }
            x += u32::from(tile_w);
        }
        let mut next_open = Vec::with_capacity(runs.len());
        for run in runs {
            let above = open
                .iter()
                .position(|o| o.x == run.x && o.width == run.width);
            match above {
                Some(i) => {
                    let mut grown = open.swap_remove(i);
                    grown.height += run.height;
                    next_open.push(grown);
                }
                None => next_open.push(run),
            }
        }
        done.append(&mut open);
        open = next_open;
        y += u32::from(tile_h);
    }
    done.append(&mut open);
    done
}

/// Writes one FramebufferUpdate holding `rects` of `image` in `format` and `encoding`.
pub(crate) fn write_update<W: Write>(
    out: &mut W,
    image: &Image,
    rects: &[Region],
    format: &PixelFormat,
    encoding: PixelEncoding<'_>,
) -> io::Result<()> {
    match encoding {
        PixelEncoding::Raw => write_raw(out, image, rects, format),
        PixelEncoding::Zrle(encoder) => write_zrle(out, image, rects, format, encoder),
    }
}

/// Raw: the pixels as they are, a row at a time (a frame is never copied whole into the
/// message).
fn write_raw<W: Write>(
    out: &mut W,
    image: &Image,
    rects: &[Region],
    format: &PixelFormat,
) -> io::Result<()> {
    write_header(out, rect_count(rects.len())?)?;
    let mut row = Vec::new();
    for rect in rects {
        write_rect_header(out, *rect, ENCODING_RAW)?;
        for y in rect.y..rect.y + rect.height {
            row.clear();
            format.convert_rgb(image.span(rect.x, y, rect.width), &mut row);
            out.write_all(&row)?;
        }
    }
    Ok(())
}

/// ZRLE: each of `rects` cut into rectangles of at most one row of tiles and
/// [`ZRLE_MAX_WIDTH`], each compressed whole and sent with its length.
fn write_zrle<W: Write>(
    out: &mut W,
    image: &Image,
    rects: &[Region],
    format: &PixelFormat,
    encoder: &mut ZrleEncoder,
) -> io::Result<()> {
    let pieces: Vec<Region> = rects.iter().flat_map(|r| zrle_pieces(*r)).collect();
    write_header(out, rect_count(pieces.len())?)?;
    for piece in pieces {
        write_rect_header(out, piece, ENCODING_ZRLE)?;
        let data = encoder
            .encode(image, piece, format)
            .map_err(io::Error::other)?;
        out.write_all(data)?;
    }
    Ok(())
}

/// `rect` cut into rectangles one tile row high and at most [`ZRLE_MAX_WIDTH`] wide, left
/// to right, top to bottom. The cuts fall on tile edges counted from `rect`'s corner, so
/// the tiles are those of `rect` itself.
fn zrle_pieces(rect: Region) -> impl Iterator<Item = Region> {
    (0..rect.height).step_by(TILE.into()).flat_map(move |dy| {
        (0..rect.width)
            .step_by(ZRLE_MAX_WIDTH.into())
            .map(move |dx| Region {
                x: rect.x + dx,
                y: rect.y + dy,
                width: (rect.width - dx).min(ZRLE_MAX_WIDTH),
                height: (rect.height - dy).min(TILE),
            })
    })
}

fn rect_count(rects: usize) -> io::Result<u16> {
    u16::try_from(rects).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "more than 65535 rectangles in one update",
        )
    })
}

/// Writes a FramebufferUpdate that only tells the viewer the framebuffer is now
/// `width` x `height` (the DesktopSize pseudo-encoding).
pub(crate) fn write_desktop_size<W: Write>(out: &mut W, width: u16, height: u16) -> io::Result<()> {
    write_header(out, 1)?;
    let size = Region {
        x: 0,
        y: 0,
        width,
        height,
    };
    write_rect_header(out, size, ENCODING_DESKTOP_SIZE)
}

fn write_header<W: Write>(out: &mut W, rects: u16) -> io::Result<()> {
    let [hi, lo] = rects.to_be_bytes();
    out.write_all(&[0, 0, hi, lo])
}

fn write_rect_header<W: Write>(out: &mut W, rect: Region, encoding: i32) -> io::Result<()> {
    let mut header = [0u8; 12];
    header[0..2].copy_from_slice(&rect.x.to_be_bytes());
    header[2..4].copy_from_slice(&rect.y.to_be_bytes());
    header[4..6].copy_from_slice(&rect.width.to_be_bytes());
    header[6..8].copy_from_slice(&rect.height.to_be_bytes());
    header[8..12].copy_from_slice(&encoding.to_be_bytes());
    out.write_all(&header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(width: u16, height: u16) -> Region {
        Region {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    fn with_pixel(image: &Image, x: u16, y: u16, rgb: [u8; 3]) -> Image {
        let mut pixels = Vec::new();
        for row in 0..image.height() {
            pixels.extend_from_slice(image.span(0, row, image.width()));
        }
        let at = (usize::from(y) * usize::from(image.width()) + usize::from(x)) * 3;
        pixels[at..at + 3].copy_from_slice(&rgb);
        Image::new(image.width().into(), image.height().into(), pixels).unwrap()
    }

    #[test]
    fn identical_frames_have_no_changed_regions() {
        let frame = Image::black(200, 100);

        let changed = changed_regions(&frame, &frame.clone(), full(200, 100));

        assert!(changed.is_empty());
    }

    #[test]
    fn one_changed_pixel_marks_its_tile_only() {
        let old = Image::black(200, 100);
        let new = with_pixel(&old, 70, 10, [255, 0, 0]);

        let changed = changed_regions(&old, &new, full(200, 100));

        assert_eq!(
            changed,
            vec![Region {
                x: 64,
                y: 0,
                width: 64,
                height: 64
            }]
        );
    }

    #[test]
    fn a_whole_changed_frame_is_one_region() {
        let old = Image::black(200, 100);
        let new = Image::new(200, 100, vec![9; 200 * 100 * 3]).unwrap();

        let changed = changed_regions(&old, &new, full(200, 100));

        assert_eq!(changed, vec![full(200, 100)]);
    }

    #[test]
    fn changes_outside_the_requested_region_are_not_reported() {
        let old = Image::black(200, 100);
        let new = with_pixel(&old, 150, 90, [1, 2, 3]);

        let changed = changed_regions(&old, &new, full(100, 50));

        assert!(changed.is_empty());
    }

    #[test]
    fn a_region_past_the_frame_is_clipped_to_it() {
        let region = Region {
            x: 150,
            y: 0,
            width: 65535,
            height: 65535,
        };

        assert_eq!(
            clip(region, 200, 100),
            Some(Region {
                x: 150,
                y: 0,
                width: 50,
                height: 100
            })
        );
    }

    #[test]
    fn a_region_entirely_outside_the_frame_clips_to_nothing() {
        let region = Region {
            x: 300,
            y: 0,
            width: 10,
            height: 10,
        };

        assert_eq!(clip(region, 200, 100), None);
    }

    #[test]
    fn raw_update_carries_header_rectangle_and_pixels_in_the_viewers_format() {
        let image = Image::new(2, 1, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let mut out = Vec::new();

        write_update(
            &mut out,
            &image,
            &[full(2, 1)],
            &PixelFormat::default(),
            PixelEncoding::Raw,
        )
        .unwrap();

        assert_eq!(
            out,
            [
                0, 0, 0, 1, // FramebufferUpdate, one rectangle
                0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0, // 0,0 2x1 Raw
                3, 2, 1, 0, 6, 5, 4, 0, // B G R X
            ]
        );
    }

    #[test]
    fn zrle_update_cuts_a_region_into_tile_rows_no_wider_than_the_limit() {
        let region = Region {
            x: 10,
            y: 20,
            width: ZRLE_MAX_WIDTH + 5,
            height: 70,
        };

        let pieces: Vec<Region> = zrle_pieces(region).collect();

        let at = |x, y, width, height| Region {
            x,
            y,
            width,
            height,
        };
        assert_eq!(
            pieces,
            [
                at(10, 20, ZRLE_MAX_WIDTH, 64),
                at(10 + ZRLE_MAX_WIDTH, 20, 5, 64),
                at(10, 84, ZRLE_MAX_WIDTH, 6),
                at(10 + ZRLE_MAX_WIDTH, 84, 5, 6),
            ]
        );
    }

    #[test]
    fn zrle_update_sends_each_piece_with_its_compressed_length() {
        let image = Image::black(100, 70);
        let mut encoder = ZrleEncoder::new();
        let mut out = Vec::new();

        write_update(
            &mut out,
            &image,
            &[full(100, 70)],
            &PixelFormat::default(),
            PixelEncoding::Zrle(&mut encoder),
        )
        .unwrap();

        let first_length = u32::from_be_bytes(out[16..20].try_into().unwrap()) as usize;
        let second = 20 + first_length;
        assert_eq!(
            out[..16],
            [0, 0, 0, 2, 0, 0, 0, 0, 0, 100, 0, 64, 0, 0, 0, 16]
        );
        assert_eq!(
            out[second..second + 12],
            [0, 0, 0, 64, 0, 100, 0, 6, 0, 0, 0, 16]
        );
    }

    #[test]
    fn desktop_size_update_is_a_lone_pseudo_rectangle() {
        let mut out = Vec::new();

        write_desktop_size(&mut out, 1024, 768).unwrap();

        assert_eq!(
            out,
            [0, 0, 0, 1, 0, 0, 0, 0, 4, 0, 3, 0, 0xff, 0xff, 0xff, 0x21]
        );
    }
}
