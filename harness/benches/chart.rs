//! The speed bench's chart: one horizontal bar per way of doing the check,
//! its median wall time, drawn with plotters into a PNG. Text needs a TTF
//! font: DejaVu Sans where Debian puts it (fonts-dejavu-core), or
//! BTFVM_BENCH_FONT.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

fn font() -> Result<(), String> {
    let path = std::env::var("BTFVM_BENCH_FONT")
        .unwrap_or_else(|_| "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
    let bytes =
        std::fs::read(&path).map_err(|e| format!("font {path}: {e} (set BTFVM_BENCH_FONT)"))?;
    // plotters keeps the font for the process's life.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("font {path}: not a TTF"))
}

/// Bars of `rows` (name, median seconds), the first one the baseline.
pub fn draw(out: &Path, kernel: &str, rows: &[(String, f64)]) -> Result<(), String> {
    font()?;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max) * 1.05;
    let base = rows.first().map_or(1.0, |r| r.1);
    let h = 90 + 58 * rows.len() as u32;
    let area = BitMapBackend::new(out, (1000, h)).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    area.fill(&WHITE).map_err(|x| e(&x))?;
    let n = rows.len() as f64;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            format!("{kernel}: wall time, median of the rounds (TCG, one run)"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(0)
        .build_cartesian_2d(0.0..max, 0.0..n)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .light_line_style(WHITE)
        .x_desc("seconds")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (name, secs)) in rows.iter().enumerate() {
        let y = n - 1.0 - i as f64;
        let color = if i == 0 {
            RGBColor(120, 120, 120)
        } else {
            RGBColor(40, 100, 170)
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y + 0.08), (*secs, y + 0.5)],
                color.filled(),
            )))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{name}: {secs:.2} s ({:.2}x)", secs / base),
                (max * 0.005, y + 0.95),
                ("sans-serif", 14).into_font(),
            )))
            .map_err(|x| e(&x))?;
    }
    area.present().map_err(|x| e(&x))
}
