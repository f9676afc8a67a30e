//! The ZRLE encoder against a decoder written from the RFC (tests/viewer/zrle.rs): every
//! subencoding, partial tiles, the pixel formats viewers ask for, and one zlib stream across
//! rectangles, each decoded back to exactly the pixels Raw would have sent.

mod viewer;

use proptest::prelude::*;
use rfb::{Image, PixelFormat, Region, ZrleEncoder};
use viewer::zrle::{Decoded, ZrleDecoder};
use viewer::RGB565;

/// An image drawn by `paint(x, y)`, and its RGB bytes.
fn draw(width: u16, height: u16, paint: impl Fn(usize, usize) -> [u8; 3]) -> (Image, Vec<u8>) {
    let (w, h) = (usize::from(width), usize::from(height));
    let rgb: Vec<u8> = (0..w * h).flat_map(|i| paint(i % w, i / w)).collect();
    let image = Image::new(width.into(), height.into(), rgb.clone()).unwrap();
    (image, rgb)
}

fn whole(image: &Image) -> Region {
    Region {
        x: 0,
        y: 0,
        width: image.width(),
        height: image.height(),
    }
}

/// What Raw sends for `rgb` in `format`.
fn raw(rgb: &[u8], format: &PixelFormat) -> Vec<u8> {
    let mut out = Vec::new();
    format.convert_rgb(rgb, &mut out);
    out
}

/// Encodes the whole of `image` with a fresh encoder and decodes it with a fresh decoder.
fn round_trip(image: &Image, format: &PixelFormat) -> Decoded {
    let mut encoder = ZrleEncoder::new();
    let data = encoder.encode(image, whole(image), format).unwrap();
    ZrleDecoder::default().decode(&data[4..], image.width(), image.height(), format)
}

/// A pseudo-random colour for pixel number `i` (a fixed LCG, so runs are rare).
fn noise(i: usize) -> [u8; 3] {
    let v = (i as u32).wrapping_mul(1_103_515_245).wrapping_add(12_345);
    let v = v ^ (v >> 13);
    [(v >> 4) as u8, (v >> 12) as u8, (v >> 20) as u8]
}

/// `n` distinct colours.
fn colour(n: usize) -> [u8; 3] {
    [(n * 37) as u8, (n * 11 + n / 7) as u8, (n / 3) as u8]
}

/// A 150x100 picture with tiles of every kind and partial tiles at the right and bottom.
fn mixed() -> (Image, Vec<u8>) {
    draw(150, 100, |x, y| match (x / 64, y / 64) {
        (0, 0) => [200, 10, 10],
        (1, 0) => colour((x + y) % 2),
        (2, 0) => colour((y * 150 + x) / 20),
        (0, 1) => noise(y * 150 + x),
        (1, 1) => colour((y * 64 + x) / 10 % 8),
        _ => [0, 0, 255],
    })
}

#[test]
fn a_uniform_tile_is_sent_solid() {
    let (image, rgb) = draw(64, 64, |_, _| [12, 34, 56]);

    let decoded = round_trip(&image, &PixelFormat::default());

    assert_eq!(decoded.subencodings, [1]);
    assert_eq!(decoded.pixels, raw(&rgb, &PixelFormat::default()));
}

#[test]
fn a_two_colour_checkerboard_is_a_one_bit_packed_palette() {
    let (image, rgb) = draw(64, 64, |x, y| colour((x + y) % 2));

    let decoded = round_trip(&image, &PixelFormat::default());

    assert_eq!(decoded.subencodings, [2]);
    assert_eq!(decoded.pixels, raw(&rgb, &PixelFormat::default()));
}

#[test]
fn packed_rows_of_a_narrow_tile_are_padded_to_whole_bytes() {
    let (image, rgb) = draw(13, 5, |x, y| colour((x + y) % 2));

    let decoded = round_trip(&image, &PixelFormat::default());

    assert_eq!(decoded.subencodings, [2]);
    assert_eq!(decoded.pixels, raw(&rgb, &PixelFormat::default()));
}

#[test]
fn four_colours_alternating_are_a_two_bit_packed_palette() {
    let (image, rgb) = draw(64, 64, |x, y| colour((x + 3 * y) % 4));

    let decoded = round_trip(&image, &PixelFormat::default());

    assert_eq!(decoded.subencodings, [4]);
    assert_eq!(decoded.pixels, raw(&rgb, &PixelFormat::default()));
}

#[test]
fn sixteen_colours_alternating_are_a_four_bit_packed_palette() {
    let (image, rgb) = draw(64, 64, |x, y| colour((x + 5 * y) % 16));

    let decoded = round_trip(&image, &PixelFormat::default());

    assert_eq!(decoded.subencodings, [16]);
    assert_eq!(decoded.pixels, raw(&rgb, &PixelFormat::default()));
}

#[test]
fn few_colours_in_runs_are_palette_rle() {
    let (image, rgb) = draw(64, 64, |x, y| colour((y * 64 + x) / 10 % 8));

    let decoded = round_trip(&image, &PixelFormat::default());

    assert_eq!(decoded.subencodings, [128 + 8]);
    assert_eq!(decoded.pixels, raw(&rgb, &PixelFormat::default()));
}

#[test]
fn more_than_127_colours_in_runs_are_plain_rle() {
    let (image, rgb) = draw(64, 64, |x, y| colour((y * 64 + x) / 20));

    let decoded = round_trip(&image, &PixelFormat::default());

    assert_eq!(decoded.subencodings, [128]);
    assert_eq!(decoded.pixels, raw(&rgb, &PixelFormat::default()));
}

#[test]
fn noise_is_sent_raw() {
    let (image, rgb) = draw(64, 64, |x, y| noise(y * 64 + x));

    let decoded = round_trip(&image, &PixelFormat::default());

    assert_eq!(decoded.subencodings, [0]);
    assert_eq!(decoded.pixels, raw(&rgb, &PixelFormat::default()));
}

#[test]
fn runs_longer_than_255_pixels_take_several_length_bytes() {
    let (image, rgb) = draw(64, 64, |x, y| colour(usize::from(y * 64 + x >= 1000)));

    let decoded = round_trip(&image, &PixelFormat::default());

    assert_eq!(decoded.subencodings, [128]);
    assert_eq!(decoded.pixels, raw(&rgb, &PixelFormat::default()));
}

#[test]
fn partial_tiles_at_the_right_and_bottom_edges_round_trip() {
    let (image, rgb) = mixed();

    let decoded = round_trip(&image, &PixelFormat::default());

    assert_eq!(decoded.subencodings, [1, 2, 128, 0, 128 + 8, 1]);
    assert_eq!(decoded.pixels, raw(&rgb, &PixelFormat::default()));
}

#[test]
fn a_rectangle_inside_the_frame_starts_its_tiles_at_its_own_corner() {
    let (image, rgb) = mixed();
    let region = Region {
        x: 30,
        y: 40,
        width: 100,
        height: 50,
    };
    let inside: Vec<u8> = (40..90)
        .flat_map(|y| rgb[(y * 150 + 30) * 3..(y * 150 + 130) * 3].to_vec())
        .collect();

    let data = ZrleEncoder::new()
        .encode(&image, region, &PixelFormat::default())
        .unwrap()
        .to_vec();
    let decoded = ZrleDecoder::default().decode(&data[4..], 100, 50, &PixelFormat::default());

    assert_eq!(decoded.subencodings.len(), 2);
    assert_eq!(decoded.pixels, raw(&inside, &PixelFormat::default()));
}

#[test]
fn the_length_prefix_counts_the_zlib_bytes_that_follow() {
    let (image, _) = mixed();

    let data = ZrleEncoder::new()
        .encode(&image, whole(&image), &PixelFormat::default())
        .unwrap()
        .to_vec();

    let length = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
    assert_eq!(length, data.len() - 4);
    assert_eq!(data[data.len() - 4..], [0, 0, 0xff, 0xff], "sync flush");
}

#[test]
fn the_zlib_stream_carries_over_between_rectangles() {
    let (image, rgb) = draw(64, 64, |x, y| noise(y * 64 + x));
    let mut encoder = ZrleEncoder::new();
    let mut decoder = ZrleDecoder::default();
    let format = PixelFormat::default();

    let first = encoder
        .encode(&image, whole(&image), &format)
        .unwrap()
        .to_vec();
    let second = encoder
        .encode(&image, whole(&image), &format)
        .unwrap()
        .to_vec();
    let decoded = [&first, &second].map(|data| decoder.decode(&data[4..], 64, 64, &format));

    assert!(
        second.len() * 10 < first.len(),
        "the repeat ({} bytes) should refer back to the first ({} bytes)",
        second.len(),
        first.len()
    );
    assert_eq!(decoded[0].pixels, raw(&rgb, &format));
    assert_eq!(decoded[1].pixels, raw(&rgb, &format));
}

#[test]
fn big_endian_32_bit_pixels_round_trip() {
    let format = PixelFormat {
        big_endian: true,
        ..PixelFormat::default()
    };
    let (image, rgb) = mixed();

    let decoded = round_trip(&image, &format);

    assert_eq!(decoded.pixels, raw(&rgb, &format));
}

#[test]
fn colours_in_the_high_three_bytes_round_trip() {
    let format = PixelFormat {
        red_shift: 24,
        green_shift: 16,
        blue_shift: 8,
        ..PixelFormat::default()
    };
    let (image, rgb) = mixed();

    let decoded = round_trip(&image, &format);

    assert_eq!(decoded.pixels, raw(&rgb, &format));
}

#[test]
fn depth_32_pixels_round_trip_as_whole_cpixels() {
    let format = PixelFormat {
        depth: 32,
        ..PixelFormat::default()
    };
    let (image, rgb) = mixed();

    let decoded = round_trip(&image, &format);

    assert_eq!(decoded.pixels, raw(&rgb, &format));
}

#[test]
fn sixteen_bit_pixels_round_trip() {
    let (image, rgb) = mixed();

    let decoded = round_trip(&image, &RGB565);

    assert_eq!(decoded.pixels, raw(&rgb, &RGB565));
}

#[test]
fn big_endian_sixteen_bit_pixels_round_trip() {
    let format = PixelFormat {
        big_endian: true,
        ..RGB565
    };
    let (image, rgb) = mixed();

    let decoded = round_trip(&image, &format);

    assert_eq!(decoded.pixels, raw(&rgb, &format));
}

#[test]
fn eight_bit_pixels_round_trip() {
    let bgr233 = PixelFormat {
        bits_per_pixel: 8,
        depth: 8,
        big_endian: false,
        red_max: 7,
        green_max: 7,
        blue_max: 3,
        red_shift: 0,
        green_shift: 3,
        blue_shift: 6,
    };
    let (image, rgb) = mixed();

    let decoded = round_trip(&image, &bgr233);

    assert_eq!(decoded.pixels, raw(&rgb, &bgr233));
}

/// A channel of 1 to `bits` bits at any shift that keeps it inside the pixel.
fn channel(bits: u8) -> impl Strategy<Value = (u16, u8)> {
    (1..=bits.min(16))
        .prop_flat_map(move |width| (Just(((1u32 << width) - 1) as u16), 0..=bits - width))
}

/// Any true-colour format the server accepts.
fn any_format() -> impl Strategy<Value = PixelFormat> {
    (
        prop_oneof![Just(8u8), Just(16u8), Just(32u8)],
        any::<bool>(),
        0..=32u8,
    )
        .prop_flat_map(|(bits, big_endian, depth)| {
            (channel(bits), channel(bits), channel(bits)).prop_map(move |(r, g, b)| PixelFormat {
                bits_per_pixel: bits,
                depth,
                big_endian,
                red_max: r.0,
                green_max: g.0,
                blue_max: b.0,
                red_shift: r.1,
                green_shift: g.1,
                blue_shift: b.1,
            })
        })
}

/// An image of 1 to 140 pixels each way drawn from a palette of 1 to 200 colours, in runs.
fn any_image() -> impl Strategy<Value = (u16, u16, Vec<u8>)> {
    (1..=140u16, 1..=140u16, 1..=200usize, 1..=40usize).prop_flat_map(
        |(width, height, colours, longest_run)| {
            let pixels = usize::from(width) * usize::from(height);
            let runs = proptest::collection::vec((0..colours, 1..=longest_run), pixels);
            runs.prop_map(move |runs| {
                let rgb = (runs.iter())
                    .flat_map(|&(c, len)| std::iter::repeat_n(colour(c), len))
                    .take(pixels)
                    .flatten()
                    .collect();
                (width, height, rgb)
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_image_in_any_format_decodes_to_its_raw_pixels(
        (width, height, rgb) in any_image(),
        format in any_format(),
    ) {
        let image = Image::new(width.into(), height.into(), rgb.clone()).unwrap();

        let decoded = round_trip(&image, &format);

        prop_assert_eq!(decoded.pixels, raw(&rgb, &format));
    }
}
