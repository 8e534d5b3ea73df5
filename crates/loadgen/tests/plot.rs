//! Figures are drawn in both formats with readable text (needs a TrueType font: Debian's
//! fonts-dejavu-core, or AVP_LOADGEN_FONT): latency on a log axis, the parameters shown.

use avp_loadgen::plot::{
    render, spectrum, svg, Axis, Figure, Mark, Panel, Scale, Series, Style, Ticks,
};
use avp_loadgen::stats::new_histogram;

fn panel(x: Axis, series: Vec<Series>) -> Panel {
    Panel {
        title: "test panel".into(),
        x,
        y: Axis {
            label: "latency".into(),
            scale: Scale::Log,
            ticks: Ticks::Latency,
        },
        series,
        hlines: vec![("SLO p99".into(), 5.0)],
        vlines: Vec::new(),
        marks: vec![Mark {
            label: "highest passing".into(),
            at: (1_500.0, 0.2),
        }],
    }
}

#[test]
fn figures_render_as_svg_and_png_with_a_log_latency_axis() {
    // 19 us to 20 ms: three decades, which a linear axis would squash onto zero.
    let mut h = new_histogram();
    for v in 0..100_000u64 {
        h.record(19_000 + v * v / 500_000).unwrap();
    }
    h.record(20_000_000).unwrap();
    let dir = std::env::temp_dir().join(format!("avp-loadgen-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let figure = Figure {
        title: "test figure".into(),
        notes: vec!["target: tcp://127.0.0.1:7700   connections: 10".into()],
        panels: vec![
            panel(
                Axis {
                    label: "percentile".into(),
                    scale: Scale::Log,
                    ticks: Ticks::Percentile,
                },
                vec![
                    Series {
                        name: "corrected".into(),
                        points: spectrum(&h),
                        style: Style::Wide,
                        color: 0,
                    },
                    Series {
                        name: "uncorrected".into(),
                        points: spectrum(&h),
                        style: Style::Dashed,
                        color: 1,
                    },
                ],
            ),
            panel(
                Axis {
                    label: "achieved throughput".into(),
                    scale: Scale::Log,
                    ticks: Ticks::Number,
                },
                vec![Series {
                    name: "p99".into(),
                    points: vec![(1_000.0, 0.1), (1_500.0, 0.2), (2_250_000.0, 9.0)],
                    style: Style::Points,
                    color: 2,
                }],
            ),
        ],
    };
    let text = svg(&figure).unwrap();
    assert!(
        text.contains("<svg") && text.contains("test figure"),
        "{text}"
    );
    assert!(
        text.contains("connections: 10"),
        "the parameters are on the figure"
    );
    assert!(text.contains("SLO p99") && text.contains("highest passing"));
    assert!(text.contains("<polyline"), "lines drawn");
    // Log axis: tick labels span microseconds to milliseconds.
    let labels: Vec<&str> = text
        .split("</text>")
        .filter_map(|t| t.rsplit('>').next())
        .map(str::trim)
        .collect();
    assert!(
        labels.contains(&"100.0us") && labels.contains(&"10.000ms"),
        "{labels:?}"
    );
    // Short throughput labels, not 2,250,000.
    assert!(
        labels.contains(&"1M") && !text.contains("2,250,000"),
        "{labels:?}"
    );
    let svg_path = dir.join("figure.svg");
    let png_path = dir.join("figure.png");
    render(&figure, &svg_path).unwrap();
    render(&figure, &png_path).unwrap();
    assert!(std::fs::read_to_string(&svg_path)
        .unwrap()
        .starts_with("<svg"));
    let bytes = std::fs::read(&png_path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
    assert!(render(&figure, &dir.join("x.gif")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
