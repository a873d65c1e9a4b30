//! Line charts of metrics: one SVG (with title, axis labels and tick labels) and one PNG per key.
//!
//! Drawn with `plotters` without any system font library: the SVG backend writes text as
//! `<text>` elements that the viewer renders, so it needs no font rasterisation; the PNG is
//! drawn without text (plot area, grid lines, line) because rasterising text would need a font.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

use crate::atomic::write_atomic;
use crate::error::{Result, StoreError};

const SIZE: (u32, u32) = (800, 500);
const LINE: RGBColor = RGBColor(31, 119, 180);

/// The value of `key` in `record`: the field itself, or, when `key` contains `/` and no such
/// field exists, the nested path (`reward/mean` → `record["reward"]["mean"]`).
fn lookup<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = record.as_object()?;
    if let Some(v) = obj.get(key) {
        return Some(v);
    }
    let mut cur = record;
    for part in key.split('/') {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}

/// `(step, value)` points of `key`, sorted by step; records without an integer `step` or
/// without a finite numeric value are skipped.
fn points(metrics: &[Value], key: &str) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|r| {
            let step = r.get("step")?.as_u64()?;
            let v = lookup(r, key)?.as_f64()?;
            v.is_finite().then_some((step as f64, v))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// A file stem for `key`: ASCII letters, digits, `.`, `_`, `-` kept, anything else `_`.
fn file_stem(key: &str) -> String {
    let s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "metric".to_string()
    } else {
        s
    }
}

/// Axis ranges with some padding; degenerate ranges (one point, constant values) widened.
fn ranges(pts: &[(f64, f64)]) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x1 <= x0 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    if y1 <= y0 {
        let pad = (y0.abs() * 0.05).max(1e-3);
        y0 -= pad;
        y1 += pad;
    } else {
        let pad = (y1 - y0) * 0.05;
        y0 -= pad;
        y1 += pad;
    }
    ((x0, x1), (y0, y1))
}

/// A short tick label: about four significant digits, trailing zeros trimmed, scientific
/// notation for very large or very small magnitudes.
fn tick_label(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() {
            "0".into()
        } else {
            v.to_string()
        };
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    key: &str,
    pts: &[(f64, f64)],
    with_text: bool,
) -> std::result::Result<(), String> {
    let e = |e: plotters::drawing::DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let ((x0, x1), (y0, y1)) = ranges(pts);
    root.fill(&WHITE).map_err(e)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16);
    if with_text {
        builder
            .caption(key, ("sans-serif", 28))
            .x_label_area_size(44)
            .y_label_area_size(80);
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(e)?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(200, 200, 200))
        .max_light_lines(2)
        .x_labels(8)
        .y_labels(8);
    if with_text {
        mesh.x_desc("step")
            .y_desc(key)
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .x_label_formatter(&|x| tick_label(*x))
            .y_label_formatter(&|y| tick_label(*y));
    }
    mesh.draw().map_err(e)?;
    // Frame the plotting area (the PNG has no axes drawn by the label areas).
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(x0, y0), (x1, y1)],
            BLACK.stroke_width(1),
        )))
        .map_err(e)?;
    chart
        .draw_series(LineSeries::new(pts.iter().copied(), LINE.stroke_width(2)))
        .map_err(e)?;
    if pts.len() <= 50 {
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, LINE.filled())))
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

fn render_svg(key: &str, pts: &[(f64, f64)]) -> std::result::Result<String, String> {
    let mut svg = String::new();
    draw(
        SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
        key,
        pts,
        true,
    )?;
    Ok(svg)
}

fn render_png(key: &str, pts: &[(f64, f64)]) -> std::result::Result<Vec<u8>, String> {
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area(),
        key,
        pts,
        false,
    )?;
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(&rgb).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(png_bytes)
}

/// Draws one line chart (value against `step`) per key of `keys`, as `<stem>.svg` and
/// `<stem>.png` in `out_dir` (created if needed), and returns the files written.
///
/// Each record of `metrics` is a JSON object with an integer `"step"` (as in
/// `metrics.jsonl`). A key is looked up as a field, or as a `/`-separated path into nested
/// objects. Non-numeric and non-finite values are ignored, and keys with no numeric value are
/// skipped. The stem is the key with every character other than ASCII letters, digits, `.`,
/// `_` and `-` replaced by `_` (`reward/mean` → `reward_mean`), with `-2`, `-3`, ... added if
/// two keys map to the same stem. The SVG has a title, axis descriptions and tick labels; the
/// PNG has the same chart without text.
pub fn plot_metrics(metrics: &[Value], keys: &[&str], out_dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).map_err(|e| StoreError::io(out_dir, e))?;
    let mut written = Vec::new();
    let mut used = HashSet::new();
    for key in keys {
        let pts = points(metrics, key);
        if pts.is_empty() {
            continue;
        }
        let base = file_stem(key);
        let mut stem = base.clone();
        let mut n = 1;
        while !used.insert(stem.clone()) {
            n += 1;
            stem = format!("{base}-{n}");
        }
        let svg_path = out_dir.join(format!("{stem}.svg"));
        let svg = render_svg(key, &pts).map_err(|message| StoreError::Plot {
            path: svg_path.clone(),
            message,
        })?;
        write_atomic(&svg_path, svg.as_bytes())?;
        written.push(svg_path);

        let png_path = out_dir.join(format!("{stem}.png"));
        let png = render_png(key, &pts).map_err(|message| StoreError::Plot {
            path: png_path.clone(),
            message,
        })?;
        write_atomic(&png_path, &png)?;
        written.push(png_path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_sorted_finite_points_and_nested_keys() {
        let m = vec![
            json!({"step": 2, "r": 0.5, "n": {"a": 1}}),
            json!({"step": 1, "r": 0.25, "n": {"a": 2}}),
            json!({"step": 3, "r": "x"}),
            json!({"r": 9.0}),
            json!({"step": 4, "r": null}),
        ];
        assert_eq!(points(&m, "r"), vec![(1.0, 0.25), (2.0, 0.5)]);
        assert_eq!(points(&m, "n/a"), vec![(1.0, 2.0), (2.0, 1.0)]);
        assert!(points(&m, "missing").is_empty());
    }

    #[test]
    fn stems_and_ranges() {
        assert_eq!(file_stem("reward/mean"), "reward_mean");
        assert_eq!(file_stem("../x"), "_x");
        assert_eq!(file_stem(""), "metric");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(-1.0), "-1");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(0.123456), "0.1235");
        assert_eq!(tick_label(1234.5678), "1235");
        assert_eq!(tick_label(250.0), "250");
        assert_eq!(tick_label(2.5e-5), "2.50e-5");
        assert_eq!(tick_label(3e7), "3.00e7");
        let ((x0, x1), (y0, y1)) = ranges(&[(5.0, 2.0)]);
        assert!(x0 < 5.0 && x1 > 5.0 && y0 < 2.0 && y1 > 2.0);
    }
}
