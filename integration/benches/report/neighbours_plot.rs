//! The noisy-neighbour benchmark's pictures, drawn into PNGs by hand: one panel per scenario,
//! one line per VM (blue: the victim or VM a; red: the aggressor or VM b). `neighbours.png`:
//! GPU time per 1 s window (0 to the busiest window of the run); `neighbours-frames.png`:
//! how late each frame was, in order (0 to 200 ms, later frames drawn at the top; grey lines
//! at 16.7 ms and 100 ms).

use std::path::Path;

use serde_json::Value;

const WIDTH: u32 = 900;
const PANEL: u32 = 140;
const MARGIN: u32 = 10;
/// One colour per VM of a scenario, in order (R, G, B).
const COLOURS: [[u8; 3]; 3] = [[0x1f, 0x77, 0xb4], [0xd6, 0x27, 0x28], [0x2c, 0xa0, 0x2c]];

/// An RGB canvas.
struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            rgb: vec![0xff; (width * height * 3) as usize],
        }
    }

    fn dot(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let i = ((y as u32 * self.width + x as u32) * 3) as usize;
        self.rgb[i..i + 3].copy_from_slice(&colour);
    }

    /// A line two pixels thick.
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), colour: [u8; 3]) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                self.dot(x as i64 + dx, y as i64 + dy, colour);
            }
        }
    }

    fn rectangle(&mut self, (x0, y0): (u32, u32), (x1, y1): (u32, u32), colour: [u8; 3]) {
        for x in x0..=x1 {
            self.dot(i64::from(x), i64::from(y0), colour);
            self.dot(i64::from(x), i64::from(y1), colour);
        }
        for y in y0..=y1 {
            self.dot(i64::from(x0), i64::from(y), colour);
            self.dot(i64::from(x1), i64::from(y), colour);
        }
    }
}

/// One series of values per VM of a scenario.
type Series = fn(&Value) -> Vec<Vec<f64>>;

fn vm_series(scenario: &Value, key: &str) -> Vec<Vec<f64>> {
    scenario["vms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            v[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect()
        })
        .collect()
}

/// Draws each VM's GPU time per 1 s window, per scenario of `report`, into `path`.
pub fn gpu_time_panels(report: &[Value], path: &Path) -> Result<(), String> {
    let series: Series = |s| vm_series(s, "gpu_seconds_per_window");
    let top = report
        .iter()
        .flat_map(|s| series(s).into_iter().flatten())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    panels(report, path, series, top, &[])
}

/// Draws how late each VM's frames were, per scenario of `report`, into `path`.
pub fn frame_time_panels(report: &[Value], path: &Path) -> Result<(), String> {
    panels(
        report,
        path,
        |s| vm_series(s, "late_ms"),
        200.0,
        &[16.7, 100.0],
    )
}

/// One panel per scenario with `series` drawn from 0 to `top` (values above at the top), and
/// a grey line at each of `marks`.
fn panels(
    report: &[Value],
    path: &Path,
    series: Series,
    top: f64,
    marks: &[f64],
) -> Result<(), String> {
    let height = MARGIN + report.len() as u32 * (PANEL + MARGIN);
    let mut canvas = Canvas::new(WIDTH, height);
    for (p, scenario) in report.iter().enumerate() {
        let y0 = MARGIN + p as u32 * (PANEL + MARGIN);
        let (x0, x1, y1) = (MARGIN, WIDTH - MARGIN, y0 + PANEL);
        canvas.rectangle((x0, y0), (x1, y1), [0x80; 3]);
        let y_of = |value: f64| f64::from(y1) - f64::from(PANEL) * value.min(top) / top;
        for &mark in marks {
            let y = y_of(mark);
            canvas.line((f64::from(x0), y), (f64::from(x1), y), [0xc0; 3]);
        }
        for (v, values) in series(scenario).iter().enumerate() {
            let colour = COLOURS[v % COLOURS.len()];
            let span = (values.len().max(2) - 1) as f64;
            let point = |i: usize, value: f64| {
                (
                    f64::from(x0) + f64::from(x1 - x0) * i as f64 / span,
                    y_of(value),
                )
            };
            for (i, pair) in values.windows(2).enumerate() {
                canvas.line(point(i, pair[0]), point(i + 1, pair[1]), colour);
            }
        }
    }
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), canvas.width, canvas.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&canvas.rgb)
        .map_err(|e| e.to_string())
}
