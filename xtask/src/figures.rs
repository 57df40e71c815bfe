//! The report's figures: SVG files written beside `report.json`, drawn from the same numbers the
//! JSON holds (nothing is recomputed here).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use plotters::prelude::*;

use crate::report::ModelReport;

/// Figure 1 for one model: per layer, the distribution of pairwise inner products
/// `⟨x_i, x_j⟩` (`i < j`, within each input) as the fraction of pairs per bin.
pub fn layer_histograms(model: &ModelReport, dir: &Path) -> anyhow::Result<PathBuf> {
    let file = model.name.rsplit('/').next().unwrap_or(&model.name).to_string();
    let path = dir.join(format!("{file}-figure1.svg"));
    let tmp = dir.join(format!(".{file}-figure1.svg.tmp"));
    {
        let root = SVGBackend::new(&tmp, (800, 480)).into_drawing_area();
        draw(&root, model).map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))?;
        root.present().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    }
    embeddings::atomic::write_bytes(
        &path,
        &std::fs::read(&tmp).with_context(|| format!("cannot read {}", tmp.display()))?,
    )?;
    let _ = std::fs::remove_file(&tmp);
    Ok(path)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(root: &DrawingArea<SVGBackend, plotters::coord::Shift>, model: &ModelReport) -> DrawResult {
    root.fill(&WHITE)?;
    let series: Vec<(u64, Vec<(f64, f64)>)> = model.layers.iter().filter_map(histogram_points).collect();
    let top = series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y)).fold(0.0, f64::max).max(1e-3) * 1.05;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{}: pairwise ⟨x_i, x_j⟩ per layer (i < j, within each input)", model.name),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(-1.0f64..1.0, 0.0..top)?;
    chart.configure_mesh().x_desc("inner product of normalised tokens").y_desc("fraction of pairs").draw()?;
    let last = series.len().saturating_sub(1).max(1) as f64;
    for (k, (layer, points)) in series.iter().enumerate() {
        // Early layers light, late layers dark: depth reads as time.
        let t = k as f64 / last;
        let shade = |light: f64, dark: f64| (light + (dark - light) * t) as u8;
        let color = RGBColor(shade(150.0, 10.0), shade(200.0, 30.0), shade(240.0, 110.0));
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?
            .label(format!("layer {layer}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK).draw()?;
    Ok(())
}

/// `(bin centre, fraction of pairs)` of one layer's histogram in the report.
fn histogram_points(layer: &serde_json::Value) -> Option<(u64, Vec<(f64, f64)>)> {
    let h = &layer["histogram"];
    let (lo, hi) = (h["lo"].as_f64()?, h["hi"].as_f64()?);
    let counts: Vec<f64> = h["counts"].as_array()?.iter().filter_map(|c| c.as_f64()).collect();
    let total: f64 = counts.iter().sum();
    if counts.is_empty() || total == 0.0 {
        return None;
    }
    let width = (hi - lo) / counts.len() as f64;
    let points = counts.iter().enumerate().map(|(k, c)| (lo + (k as f64 + 0.5) * width, c / total)).collect();
    Some((layer["layer"].as_u64()?, points))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(k: u64, counts: &[u64]) -> serde_json::Value {
        serde_json::json!({ "layer": k, "histogram": { "lo": -1.0, "hi": 1.0, "counts": counts } })
    }

    #[test]
    fn histograms_become_fractions_at_bin_centres() {
        let (k, points) = histogram_points(&layer(3, &[1, 3])).unwrap();
        assert_eq!(k, 3);
        assert_eq!(points, vec![(-0.5, 0.25), (0.5, 0.75)]);
        assert!(histogram_points(&layer(0, &[0, 0])).is_none());
        assert!(histogram_points(&serde_json::json!({ "layer": 0 })).is_none());
    }

    #[test]
    fn the_figure_is_an_svg_beside_the_report() {
        let dir = std::env::temp_dir().join(format!("xtask-figures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let model = ModelReport {
            name: "org/some-model".into(),
            inputs: 2,
            layers: vec![layer(0, &[2, 1, 0]), layer(1, &[0, 1, 2])],
            error: None,
            seconds: 0.0,
        };
        let path = layer_histograms(&model, &dir).unwrap();
        assert_eq!(path, dir.join("some-model-figure1.svg"));
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("layer 1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
