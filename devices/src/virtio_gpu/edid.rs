//! A 128-byte EDID 1.4 base block describing one scanout's display mode.
//!
//! Guests pick their resolution from the EDID (Linux's virtio_gpu and Windows' viogpudo both
//! ask for it), so the block names the configured mode as the preferred detailed timing, with
//! reduced-blanking timings at 60 Hz, a range-limits descriptor that contains it, and a
//! monitor name.

/// Size of an EDID base block.
pub const EDID_SIZE: usize = 128;

/// The largest width or height a detailed timing descriptor can carry (12 bits).
pub const MAX_EDID_DIMENSION: u32 = 4095;

/// Refresh rate the timings are built for.
const REFRESH_HZ: u64 = 60;
// CVT reduced-blanking horizontal timings, in pixels.
const H_FRONT_PORCH: u32 = 48;
const H_SYNC: u32 = 32;
const H_BLANK: u32 = 160;
// Vertical timings, in lines.
const V_FRONT_PORCH: u32 = 3;
const V_SYNC: u32 = 6;
const V_BLANK_MIN: u32 = 25;
/// Pixel density the physical size is derived from (millimetres per 1000 pixels at 96 DPI).
const MM_PER_1000_PX: u32 = 265;

/// Builds the EDID for a `width` x `height` display named `name` (at most 13 ASCII
/// characters are used). Dimensions are clamped to what EDID can express.
pub fn build_edid(width: u32, height: u32, name: &str) -> [u8; EDID_SIZE] {
    let width = width.clamp(1, MAX_EDID_DIMENSION);
    let height = height.clamp(1, MAX_EDID_DIMENSION);
    let mut edid = [0u8; EDID_SIZE];

    edid[0..8].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    // Manufacturer "RAY": three 5-bit letters, big-endian.
    let letter = |c: u8| u16::from(c - b'A' + 1);
    let manufacturer = (letter(b'R') << 10) | (letter(b'A') << 5) | letter(b'Y');
    edid[8..10].copy_from_slice(&manufacturer.to_be_bytes());
    edid[10..12].copy_from_slice(&0x1050u16.to_le_bytes()); // product code
    edid[12..16].copy_from_slice(&1u32.to_le_bytes()); // serial number
    edid[16] = 1; // week of manufacture
    edid[17] = 34; // year of manufacture: 1990 + 34
    edid[18] = 1; // EDID version 1
    edid[19] = 4; // revision 4
    edid[20] = 0xa0; // digital input, 8 bits per colour, interface undefined

    let width_mm = width * MM_PER_1000_PX / 1000;
    let height_mm = height * MM_PER_1000_PX / 1000;
    edid[21] = (width_mm / 10).clamp(1, 255) as u8;
    edid[22] = (height_mm / 10).clamp(1, 255) as u8;
    edid[23] = 120; // gamma 2.2
    edid[24] = 0x06; // RGB 4:4:4, sRGB default colour space, preferred timing is native
                     // sRGB chromaticity coordinates.
    edid[25..35].copy_from_slice(&[0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54]);
    // Established timings: 640x480@60, 800x600@60, 1024x768@60.
    edid[35..38].copy_from_slice(&[0x21, 0x08, 0x00]);
    // Standard timings: all unused.
    for slot in edid[38..54].chunks_exact_mut(2) {
        slot.copy_from_slice(&[0x01, 0x01]);
    }

    let timing = detailed_timing(width, height, width_mm, height_mm);
    edid[54..72].copy_from_slice(&timing.bytes);
    edid[72..90].copy_from_slice(&range_limits(&timing));
    edid[90..108].copy_from_slice(&monitor_name(name));
    edid[108..126].copy_from_slice(&dummy_descriptor());
    edid[126] = 0; // no extension blocks
    edid[127] = checksum(&edid[..127]);
    edid
}

/// The byte that makes the 128 bytes of a block sum to 0 modulo 256.
fn checksum(bytes: &[u8]) -> u8 {
    let sum = bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
    0u8.wrapping_sub(sum)
}

struct Timing {
    bytes: [u8; 18],
    pixel_clock_hz: u64,
    h_freq_hz: u64,
}

fn detailed_timing(width: u32, height: u32, width_mm: u32, height_mm: u32) -> Timing {
    let v_blank = V_BLANK_MIN.max(height.div_ceil(30));
    let h_total = u64::from(width + H_BLANK);
    let v_total = u64::from(height + v_blank);
    // Pixel clock in units of 10 kHz, rounded up; 16 bits hold up to 655.35 MHz, which
    // 4095x4095 at 60 Hz with these blankings stays under.
    let pixel_clock_hz = h_total * v_total * REFRESH_HZ;
    let clock_10khz = pixel_clock_hz.div_ceil(10_000).min(u64::from(u16::MAX)) as u16;

    let mut d = [0u8; 18];
    d[0..2].copy_from_slice(&clock_10khz.to_le_bytes());
    d[2] = width as u8;
    d[3] = H_BLANK as u8;
    d[4] = (((width >> 8) & 0xf) << 4 | ((H_BLANK >> 8) & 0xf)) as u8;
    d[5] = height as u8;
    d[6] = v_blank as u8;
    d[7] = (((height >> 8) & 0xf) << 4 | ((v_blank >> 8) & 0xf)) as u8;
    d[8] = H_FRONT_PORCH as u8;
    d[9] = H_SYNC as u8;
    d[10] = ((V_FRONT_PORCH & 0xf) << 4 | (V_SYNC & 0xf)) as u8;
    d[11] = (((H_FRONT_PORCH >> 8) & 0x3) << 6
        | ((H_SYNC >> 8) & 0x3) << 4
        | ((V_FRONT_PORCH >> 4) & 0x3) << 2
        | ((V_SYNC >> 4) & 0x3)) as u8;
    let width_mm = width_mm.min(0xfff);
    let height_mm = height_mm.min(0xfff);
    d[12] = width_mm as u8;
    d[13] = height_mm as u8;
    d[14] = (((width_mm >> 8) & 0xf) << 4 | ((height_mm >> 8) & 0xf)) as u8;
    d[17] = 0x1a; // digital separate sync, hsync positive, vsync negative (CVT-RB)
    Timing {
        bytes: d,
        pixel_clock_hz,
        h_freq_hz: pixel_clock_hz / h_total,
    }
}

/// Display range limits that contain the preferred timing.
fn range_limits(timing: &Timing) -> [u8; 18] {
    let max_h_khz = (timing.h_freq_hz.div_ceil(1000) + 1).clamp(1, 255) as u8;
    let max_clock_10mhz = (timing.pixel_clock_hz.div_ceil(10_000_000) + 1).clamp(1, 255) as u8;
    let mut d = [0u8; 18];
    d[3] = 0xfd;
    d[5] = 50; // min vertical Hz
    d[6] = 75; // max vertical Hz
    d[7] = 1; // min horizontal kHz
    d[8] = max_h_khz;
    d[9] = max_clock_10mhz;
    d[10] = 0x01; // range limits only
    d[11] = 0x0a;
    d[12..18].fill(0x20);
    d
}

fn monitor_name(name: &str) -> [u8; 18] {
    let mut d = [0u8; 18];
    d[3] = 0xfc;
    let text = &mut d[5..18];
    text.fill(0x20);
    let ascii: Vec<u8> = name
        .bytes()
        .filter(|b| b.is_ascii_graphic() || *b == b' ')
        .take(12)
        .collect();
    text[..ascii.len()].copy_from_slice(&ascii);
    text[ascii.len()] = 0x0a;
    d
}

fn dummy_descriptor() -> [u8; 18] {
    let mut d = [0u8; 18];
    d[3] = 0x10;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
    }

    #[test]
    fn edid_checksum_makes_block_sum_zero() {
        let edid = build_edid(1024, 768, "RayOS");

        assert_eq!(sum(&edid), 0);
    }

    #[test]
    fn edid_has_header_and_version_1_4() {
        let edid = build_edid(1920, 1080, "RayOS");

        assert_eq!(
            (&edid[0..8], edid[18], edid[19]),
            (&[0, 255, 255, 255, 255, 255, 255, 0][..], 1, 4)
        );
    }

    #[test]
    fn edid_preferred_timing_is_configured_mode() {
        let edid = build_edid(1920, 1080, "RayOS");
        let d = &edid[54..72];

        let width = u32::from(d[2]) | (u32::from(d[4] >> 4) << 8);
        let height = u32::from(d[5]) | (u32::from(d[7] >> 4) << 8);

        assert_eq!((width, height), (1920, 1080));
    }

    #[test]
    fn edid_pixel_clock_gives_60_hz() {
        let edid = build_edid(1024, 768, "RayOS");
        let d = &edid[54..72];
        let clock = u64::from(u16::from_le_bytes([d[0], d[1]])) * 10_000;
        let h_total = 1024 + (u64::from(d[3]) | (u64::from(d[4] & 0xf) << 8));
        let v_total = 768 + (u64::from(d[6]) | (u64::from(d[7] & 0xf) << 8));

        let refresh = clock / (h_total * v_total);

        assert_eq!(refresh, 60);
    }

    #[test]
    fn edid_names_the_monitor() {
        let edid = build_edid(1024, 768, "RayOS");

        assert_eq!(
            &edid[90..108],
            &[
                0, 0, 0, 0xfc, 0, b'R', b'a', b'y', b'O', b'S', 0x0a, 0x20, 0x20, 0x20, 0x20, 0x20,
                0x20, 0x20
            ]
        );
    }

    #[test]
    fn edid_clamps_dimensions_it_cannot_express() {
        let edid = build_edid(8192, 8192, "RayOS");
        let d = &edid[54..72];

        let width = u32::from(d[2]) | (u32::from(d[4] >> 4) << 8);

        assert_eq!((width, sum(&edid)), (MAX_EDID_DIMENSION, 0));
    }
}
