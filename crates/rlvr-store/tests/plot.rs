use std::fs;

use rlvr_store::plot_metrics;
use serde_json::{json, Value};

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(bytes);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// The contents of the `<text>` elements of an SVG, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

#[test]
fn one_svg_and_png_per_numeric_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plots");
    let metrics: Vec<Value> = (0..40)
        .map(|s| {
            json!({"step": s, "reward_mean": (s as f64 / 5.0).sin(),
                   "kl": {"mean": 0.01 * s as f64}, "name": "x"})
        })
        .collect();
    let files = plot_metrics(
        &metrics,
        &["reward_mean", "kl/mean", "name", "absent"],
        &out,
    )
    .unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            "reward_mean.svg",
            "reward_mean.png",
            "kl_mean.svg",
            "kl_mean.png"
        ]
    );
    for f in &files {
        assert_eq!(f.parent().unwrap(), out);
    }

    let svg = fs::read_to_string(out.join("reward_mean.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
    let texts = svg_texts(&svg);
    for want in ["reward_mean", "step", "0", "35", "1"] {
        assert!(
            texts.iter().any(|t| t == want),
            "no text {want:?} in {texts:?}"
        );
    }
    assert!(
        svg.contains("<polyline") || svg.contains("<path"),
        "no line in SVG"
    );
    assert!(svg.len() > 2000, "SVG suspiciously small: {}", svg.len());

    let (w, h, rgb) = decode_png(&fs::read(out.join("reward_mean.png")).unwrap());
    assert_eq!((w, h), (800, 500));
    let pixels: Vec<&[u8]> = rgb.chunks(3).collect();
    let white = pixels.iter().filter(|p| **p == [255, 255, 255]).count();
    let line = pixels.iter().filter(|p| **p == [31, 119, 180]).count();
    assert!(
        white > pixels.len() / 2,
        "background should be mostly white"
    );
    assert!(line > 500, "the data line should be visible: {line} pixels");
    // The line rises and falls (a sine): line pixels cover many rows.
    let rows = (0..h as usize)
        .filter(|y| (0..w as usize).any(|x| pixels[y * w as usize + x] == [31, 119, 180]))
        .count();
    assert!(rows > 200, "line spans only {rows} rows");
}

#[test]
fn degenerate_series_and_bad_records_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = vec![
        json!({"step": 3, "c": 1.0, "one": 5}),
        json!({"step": 4, "c": 1.0}),
        json!({"c": 2.0}),
        json!("not an object"),
        json!({"step": 5, "c": "nan"}),
    ];
    let files = plot_metrics(&metrics, &["c", "one"], dir.path()).unwrap();
    assert_eq!(files.len(), 4);
    for f in &files {
        assert!(fs::metadata(f).unwrap().len() > 500, "{}", f.display());
    }
    // Nothing numeric at all: nothing written, no error.
    assert!(plot_metrics(&[], &["c"], dir.path()).unwrap().is_empty());
}

#[test]
fn colliding_stems_get_suffixes() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = vec![
        json!({"step": 1, "a/b": 1, "a_b": 2}),
        json!({"step": 2, "a/b": 2, "a_b": 1}),
    ];
    let files = plot_metrics(&metrics, &["a/b", "a_b"], dir.path()).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["a_b.svg", "a_b.png", "a_b-2.svg", "a_b-2.png"]);
}
