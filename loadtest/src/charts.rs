//! PNG charts of a run with `plotters` (bitmap backend, text through `ab_glyph` from a TTF
//! file, so no fontconfig): the latency distribution, latency over time, throughput over time.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

/// Fonts tried in order; Debian's `fonts-dejavu-core` provides the first.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
const FONT: &str = "sans-serif";

/// Register a system TTF once for every chart of the process.
fn ensure_font() -> anyhow::Result<()> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = FONT_PATHS
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or_else(|| {
                    format!(
                        "no TTF font for chart labels in {FONT_PATHS:?}; install fonts-dejavu-core"
                    )
                })?;
            // The font lives as long as the process: plotters keeps a `'static` reference.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FONT, FontStyle::Normal, bytes)
                .map_err(|_| "the chart font is not a valid TTF".to_owned())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// One named line.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// How the x axis is labelled.
#[derive(Clone, Copy)]
pub enum XAxis {
    /// Seconds from the start of measuring.
    Seconds,
    /// Quantiles spread as "nines" (`-log10(1 - q)`), labelled as percentiles.
    Nines,
}

/// The highest "nine" drawn; the maximum (q = 1) is drawn there.
const MAX_NINES: f64 = 5.0;

/// A quantile as its position on a [`XAxis::Nines`] axis.
pub fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        MAX_NINES
    } else {
        (-(1.0 - q).log10()).min(MAX_NINES)
    }
}

const COLORS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draw `series` as lines into a PNG at `path`.
pub fn line_chart(
    path: &Path,
    title: &str,
    x: XAxis,
    y_desc: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    ensure_font()?;
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x_max = all().map(|p| p.0).fold(1.0_f64, f64::max);
    let x_min = all().map(|p| p.0).fold(x_max, f64::min).min(0.0);
    let y_max = all().map(|p| p.1).fold(1e-3_f64, f64::max) * 1.05;
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)?;
    let x_label = |v: &f64| match x {
        XAxis::Seconds => format!("{v:.0}"),
        // Whole nines only: 90, 99, 99.9, ...
        XAxis::Nines if (v - v.round()).abs() < 1e-6 => {
            let digits = (v.round() as usize).saturating_sub(2);
            format!("{:.*}", digits, 100.0 * (1.0 - 10f64.powf(-v.round())))
        }
        XAxis::Nines => String::new(),
    };
    chart
        .configure_mesh()
        .x_desc(match x {
            XAxis::Seconds => "seconds",
            XAxis::Nines => "percentile",
        })
        .y_desc(y_desc)
        .x_labels(match x {
            XAxis::Seconds => 10,
            XAxis::Nines => MAX_NINES as usize + 1,
        })
        .x_label_formatter(&x_label)
        .label_style((FONT, 14))
        .draw()?;
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_written_as_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let s = Series {
            name: "p99".into(),
            points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)],
        };
        line_chart(&path, "t", XAxis::Seconds, "ms", &[s]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines(1.0), MAX_NINES);
    }
}
