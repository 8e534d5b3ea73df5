//! Plots: the latency percentile spectrum of a run and the throughput/latency curve of a
//! sweep, as SVG or PNG (chosen by the file extension).
//!
//! Both charts use a logarithmic x axis: for the spectrum it is `1 / (1 - percentile)`, labelled
//! as percentiles (90%, 99%, 99.9%, ...) as HdrHistogram's plotter does; for the sweep it is the
//! achieved throughput, which grows geometrically step by step. Text is drawn with a TrueType
//! font found at run time (DejaVu Sans from Debian's `fonts-dejavu-core`, or the file named by
//! `AVP_LOADGEN_FONT`).

use crate::error::Error;
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// Image size in pixels.
const SIZE: (u32, u32) = (1000, 600);
/// Font files tried, in order, after `AVP_LOADGEN_FONT`.
const FONT_CANDIDATES: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];
const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points `(x, y)`; x must be positive (log axis).
    pub points: Vec<(f64, f64)>,
}

/// How the x axis is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// x is `1 / (1 - quantile)`, labelled as a percentile.
    Percentile,
    /// x is a rate, labelled as a number.
    Rate,
}

/// A chart to draw.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// How the x axis is labelled.
    pub x_axis: XAxis,
    /// x axis caption.
    pub x_label: String,
    /// y axis caption.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// An optional horizontal limit line `(legend, y)`, e.g. the SLO.
    pub limit: Option<(String, f64)>,
}

/// The percentile spectrum points of a nanosecond histogram: `(1/(1-q), milliseconds)`, the
/// last point (100%) placed one tick past the previous one.
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = Vec::new();
    if h.is_empty() {
        return pts;
    }
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let ms = h.highest_equivalent(v.value_iterated_to()) as f64 / 1e6;
        let x = if q < 1.0 {
            1.0 / (1.0 - q)
        } else {
            pts.last().map_or(1.0, |p| p.0 * 1.5)
        };
        pts.push((x, ms));
    }
    pts
}

/// Draws `chart` into `path` (`.svg` or `.png`).
pub fn render(chart: &Chart, path: &Path) -> Result<(), Error> {
    let failed = |reason: String| Error::Plot {
        path: path.to_path_buf(),
        reason,
    };
    ensure_font().map_err(failed)?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "svg" => draw(SVGBackend::new(path, SIZE).into_drawing_area(), chart)
            .map_err(|e| failed(e.to_string())),
        "png" => draw(BitMapBackend::new(path, SIZE).into_drawing_area(), chart)
            .map_err(|e| failed(e.to_string())),
        _ => Err(failed("the plot file must end in .svg or .png".into())),
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let all = chart.series.iter().flat_map(|s| s.points.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let x_min = all
        .clone()
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min)
        .min(x_max);
    let y_max = all
        .map(|p| p.1)
        .chain(chart.limit.as_ref().map(|l| l.1))
        .fold(0.0, f64::max)
        .max(1e-3);
    let (x_lo, x_hi) = match chart.x_axis {
        XAxis::Percentile => (1.0, x_max.max(10.0)),
        XAxis::Rate => (x_min / 1.2, x_max * 1.2),
    };
    let mut ctx = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_max * 1.1)?;
    let x_fmt = |x: &f64| match chart.x_axis {
        XAxis::Percentile => percentile_label(*x),
        XAxis::Rate => crate::report::group(*x),
    };
    ctx.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&|y| format!("{y:.3}"))
        .label_style(("sans-serif", 16))
        .draw()?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        ctx.draw_series(LineSeries::new(
            s.points.iter().copied(),
            color.stroke_width(2),
        ))?
        .label(s.name.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        if chart.x_axis == XAxis::Rate {
            ctx.draw_series(s.points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
        }
    }
    if let Some((name, y)) = &chart.limit {
        let y = *y;
        ctx.draw_series(LineSeries::new(
            [(x_lo, y), (x_hi, y)],
            BLACK.stroke_width(1),
        ))?
        .label(name.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()
}

/// `x = 1/(1-q)` as a percentile label: 1 -> "0%", 10 -> "90%", 1000 -> "99.9%".
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let s = format!("{p:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Registers the first TrueType font found as plotters' `sans-serif`, once per process.
fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let env = std::env::var("AVP_LOADGEN_FONT").ok();
        let path = env
            .iter()
            .map(String::as_str)
            .chain(FONT_CANDIDATES)
            .find(|p| Path::new(p).is_file())
            .ok_or_else(|| {
                "no TrueType font found for plot text: install one (Debian: apt-get install \
                 fonts-dejavu-core) or set AVP_LOADGEN_FONT to a .ttf file"
                    .to_string()
            })?;
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read font {path}: {e}"))?;
        plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into()))
            .map_err(|_| format!("{path} is not a usable TrueType font"))
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
    }

    #[test]
    fn spectrum_is_monotonic() {
        let mut h = crate::stats::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1_000).unwrap();
        }
        let pts = spectrum(&h);
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        let last = pts.last().unwrap();
        assert!((last.1 - 10.0).abs() < 0.02, "{last:?}");
    }
}
