//! Figures drawn with plotters: stacked panels of lines on linear or logarithmic axes, as an
//! SVG or PNG file (chosen by the extension) or as an SVG string for the HTML report.
//! [`crate::charts`] decides what the panels of each report show; this module only draws.
//!
//! Latency is always on a logarithmic axis, so a 19 µs median and a 1 s stall both have room.
//! The percentile axis is `1 / (1 - percentile)`, labelled as percentiles (90%, 99%, 99.9%,
//! ...) as HdrHistogram's plotter does. Text is drawn with a TrueType font found at run time
//! (DejaVu Sans from Debian's `fonts-dejavu-core`, or the file named by `AVP_LOADGEN_FONT`).

use crate::error::Error;
use crate::report::fmt_latency;
use hdrhistogram::Histogram;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// Width of a figure in pixels.
const WIDTH: u32 = 1100;
/// Height of one panel in pixels.
const PANEL_HEIGHT: u32 = 400;
/// Height of one line of the figure's title and notes.
const LINE_HEIGHT: u32 = 22;
/// Font files tried, in order, after `AVP_LOADGEN_FONT`.
const FONT_CANDIDATES: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];
/// Line colours, by [`Series::color`].
pub const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// An image file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics.
    Svg,
    /// A bitmap.
    Png,
}

/// The format a plot file's extension asks for.
pub fn format_of(path: &Path) -> Result<Format, Error> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "svg" => Ok(Format::Svg),
        "png" => Ok(Format::Png),
        _ => Err(Error::Plot {
            path: path.to_path_buf(),
            reason: "the plot file must end in .svg or .png".into(),
        }),
    }
}

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Evenly.
    Linear,
    /// By orders of magnitude.
    Log,
}

/// How an axis labels its ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticks {
    /// Values are `1 / (1 - quantile)`, labelled as percentiles.
    Percentile,
    /// Plain numbers, shortened (`150k`, `1.2M`).
    Number,
    /// Milliseconds, labelled with a unit that fits (`19.0us`, `1.235ms`, `2.000s`).
    Latency,
    /// Seconds.
    Seconds,
}

/// One axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Its caption.
    pub label: String,
    /// How values map.
    pub scale: Scale,
    /// How ticks are labelled.
    pub ticks: Ticks,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A solid line.
    Line,
    /// A wide solid line, under the others.
    Wide,
    /// A dashed line.
    Dashed,
    /// A line with a dot at every point.
    Points,
}

/// One line of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points `(x, y)`; on a logarithmic axis non-positive values are left out.
    pub points: Vec<(f64, f64)>,
    /// How it is drawn.
    pub style: Style,
    /// Index into [`COLORS`].
    pub color: usize,
}

/// A labelled point (the sweep's best step).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// The label.
    pub label: String,
    /// Where.
    pub at: (f64, f64),
}

/// One chart of a figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Its heading.
    pub title: String,
    /// The x axis.
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// The lines.
    pub series: Vec<Series>,
    /// Horizontal lines `(legend, y)`, e.g. an SLO.
    pub hlines: Vec<(String, f64)>,
    /// Vertical lines `(legend, x)`, e.g. the end of the warmup; an empty legend shares the
    /// entry of the line before it.
    pub vlines: Vec<(String, f64)>,
    /// Labelled points.
    pub marks: Vec<Mark>,
}

impl Panel {
    /// True when no series has a point to draw.
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.points.is_empty())
    }
}

/// Panels stacked top to bottom under a title and lines of notes (both may be empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The title.
    pub title: String,
    /// Lines of text under it (the run's parameters).
    pub notes: Vec<String>,
    /// The panels.
    pub panels: Vec<Panel>,
}

impl Figure {
    fn size(&self) -> (u32, u32) {
        let header = self.header_lines() * LINE_HEIGHT;
        (
            WIDTH,
            header + PANEL_HEIGHT * self.panels.len().max(1) as u32,
        )
    }

    fn header_lines(&self) -> u32 {
        let title = u32::from(!self.title.is_empty()) * 2;
        title + self.notes.len() as u32 + u32::from(!self.notes.is_empty())
    }
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

/// Draws `figure` into `path` (`.svg` or `.png`).
pub fn render(figure: &Figure, path: &Path) -> Result<(), Error> {
    let failed = |reason: String| Error::Plot {
        path: path.to_path_buf(),
        reason,
    };
    let format = format_of(path)?;
    ensure_font().map_err(failed)?;
    let size = figure.size();
    match format {
        Format::Svg => draw(SVGBackend::new(path, size).into_drawing_area(), figure),
        Format::Png => draw(BitMapBackend::new(path, size).into_drawing_area(), figure),
    }
    .map_err(failed)
}

/// `figure` as an SVG document.
pub fn svg(figure: &Figure) -> Result<String, String> {
    ensure_font()?;
    let mut out = String::new();
    draw(
        SVGBackend::with_string(&mut out, figure.size()).into_drawing_area(),
        figure,
    )?;
    Ok(out)
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, figure: &Figure) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (_, height) = root.dim_in_pixel();
    let header = figure.header_lines() * LINE_HEIGHT;
    let (top, body) = root.split_vertically(header.min(height));
    let mut y = 10;
    if !figure.title.is_empty() {
        top.draw_text(
            &figure.title,
            &("sans-serif", 24).into_font().color(&BLACK),
            (20, y),
        )
        .map_err(e)?;
        y += 2 * LINE_HEIGHT as i32;
    }
    for note in &figure.notes {
        top.draw_text(note, &("sans-serif", 15).into_font().color(&BLACK), (20, y))
            .map_err(e)?;
        y += LINE_HEIGHT as i32;
    }
    let areas = body.split_evenly((figure.panels.len().max(1), 1));
    for (panel, area) in figure.panels.iter().zip(areas) {
        draw_panel(&area, panel)?;
    }
    root.present().map_err(e)
}

/// The panel's data range on one axis, from its points and reference lines.
fn extent(values: impl Iterator<Item = f64>, scale: Scale) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    match scale {
        _ if lo > hi => (if scale == Scale::Log { 1e-3 } else { 0.0 }, 1.0),
        // Down to a power of ten at least, so that the axis has a labelled tick.
        Scale::Log => ((lo / 1.6).min(10f64.powf(lo.log10().floor())), hi * 1.6),
        Scale::Linear => (lo.min(0.0), if hi > 0.0 { hi * 1.1 } else { 1.0 }),
    }
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> Result<(), String> {
    let xs = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0));
    let xs = xs.chain(p.vlines.iter().map(|l| l.1));
    let ys = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.1));
    let ys = ys.chain(p.hlines.iter().map(|l| l.1));
    let (mut x0, x1) = extent(xs, p.x.scale);
    if p.x.ticks == Ticks::Percentile {
        x0 = 1.0;
    }
    let x1 = if p.x.ticks == Ticks::Percentile {
        x1.max(10.0)
    } else {
        x1
    };
    let (y0, y1) = extent(ys, p.y.scale);
    match (p.x.scale, p.y.scale) {
        (Scale::Log, Scale::Log) => plot(area, p, (x0..x1).log_scale(), (y0..y1).log_scale()),
        (Scale::Log, Scale::Linear) => plot(area, p, (x0..x1).log_scale(), y0..y1),
        (Scale::Linear, Scale::Log) => plot(area, p, x0..x1, (y0..y1).log_scale()),
        (Scale::Linear, Scale::Linear) => plot(area, p, x0..x1, y0..y1),
    }
}

fn plot<DB, X, Y>(area: &DrawingArea<DB, Shift>, p: &Panel, x: X, y: Y) -> Result<(), String>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(x, y)
        .map_err(e)?;
    let (x_lo, x_hi) = (chart.x_range().start, chart.x_range().end);
    let x_fmt = |v: &f64| tick_label(p.x.ticks, *v);
    let y_fmt = |v: &f64| tick_label(p.y.ticks, *v);
    chart
        .configure_mesh()
        .x_desc(p.x.label.as_str())
        .y_desc(p.y.label.as_str())
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(e)?;
    let usable = |q: &&(f64, f64)| {
        (p.x.scale == Scale::Linear || q.0 > 0.0) && (p.y.scale == Scale::Linear || q.1 > 0.0)
    };
    for s in &p.series {
        let color = COLORS[s.color % COLORS.len()];
        let pts: Vec<(f64, f64)> = s.points.iter().filter(usable).copied().collect();
        let width = if s.style == Style::Wide { 5 } else { 2 };
        let shown = if s.style == Style::Wide {
            color.mix(0.45).stroke_width(width)
        } else {
            color.stroke_width(width)
        };
        let legend = move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 20, y)], shown);
        match s.style {
            Style::Dashed => chart
                .draw_series(DashedLineSeries::new(pts.clone(), 6, 4, shown))
                .map_err(e)?
                .label(s.name.as_str())
                .legend(legend),
            _ => chart
                .draw_series(LineSeries::new(pts.clone(), shown))
                .map_err(e)?
                .label(s.name.as_str())
                .legend(legend),
        };
        if s.style == Style::Points {
            chart
                .draw_series(pts.iter().map(|q| Circle::new(*q, 4, color.filled())))
                .map_err(e)?;
        }
    }
    for (name, yv) in &p.hlines {
        chart
            .draw_series(LineSeries::new(
                [(x_lo, *yv), (x_hi, *yv)],
                BLACK.stroke_width(2),
            ))
            .map_err(e)?
            .label(name.as_str())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    }
    let (y_lo, y_hi) = (chart.y_range().start, chart.y_range().end);
    for (name, xv) in &p.vlines {
        let grey = RGBColor(0x80, 0x80, 0x80);
        let drawn = chart
            .draw_series(DashedLineSeries::new(
                [(*xv, y_lo), (*xv, y_hi)],
                4,
                4,
                grey.stroke_width(1),
            ))
            .map_err(e)?;
        // Lines of one kind share the first one's legend entry.
        if !name.is_empty() {
            drawn
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
        }
    }
    for m in &p.marks {
        chart
            .draw_series([EmptyElement::at(m.at)
                + Circle::new((0, 0), 9, BLACK.stroke_width(3))
                + Text::new(m.label.clone(), (-40, -30), ("sans-serif", 16))])
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(e)
}

/// The label of a tick at `v`.
pub fn tick_label(ticks: Ticks, v: f64) -> String {
    match ticks {
        Ticks::Percentile => percentile_label(v),
        Ticks::Number => short_number(v),
        Ticks::Latency => fmt_latency((v * 1e6).round() as u64),
        Ticks::Seconds => {
            let text = format!("{v:.1}");
            format!("{}s", text.trim_end_matches(".0"))
        }
    }
}

/// A number in at most four characters and a suffix: `950`, `1.5k`, `150k`, `1.2M`.
pub fn short_number(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = if scaled.abs() >= 100.0 || scaled.fract().abs() < 0.05 {
        format!("{scaled:.0}")
    } else {
        format!("{scaled:.1}")
    };
    format!("{text}{suffix}")
}

/// `x = 1/(1-q)` as a percentile label: 1 -> "0%", 10 -> "90%", 1000 -> "99.9%".
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let s = format!("{p:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Registers the first TrueType font found as plotters' `sans-serif`, once per process; the
/// error says how to get one.
pub fn ensure_font() -> Result<(), String> {
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
    fn tick_labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(short_number(950.0), "950");
        assert_eq!(short_number(1_500.0), "1.5k");
        assert_eq!(short_number(150_000.0), "150k");
        assert_eq!(short_number(1_234_567.0), "1.2M");
        assert_eq!(tick_label(Ticks::Latency, 0.019), "19.0us");
        assert_eq!(tick_label(Ticks::Latency, 5.0), "5.000ms");
        assert_eq!(tick_label(Ticks::Seconds, 2.0), "2s");
        assert_eq!(tick_label(Ticks::Seconds, 2.5), "2.5s");
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
