//! Plots are drawn in both formats with readable text (needs a TrueType font: Debian's
//! fonts-dejavu-core, or AVP_LOADGEN_FONT).

use avp_loadgen::plot::{render, spectrum, Chart, Series, XAxis};
use avp_loadgen::stats::new_histogram;

fn chart(x_axis: XAxis, series: Vec<Series>) -> Chart {
    Chart {
        title: "test chart".into(),
        x_axis,
        x_label: "percentile".into(),
        y_label: "latency (ms)".into(),
        series,
        limit: Some(("SLO p99".into(), 5.0)),
    }
}

#[test]
fn spectrum_and_sweep_plots_render_as_svg_and_png() {
    let mut h = new_histogram();
    for v in 1..=100_000u64 {
        h.record(20_000 + v * 10).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("avp-loadgen-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spectrum_chart = chart(
        XAxis::Percentile,
        vec![Series {
            name: "corrected".into(),
            points: spectrum(&h),
        }],
    );
    let sweep_chart = chart(
        XAxis::Rate,
        vec![Series {
            name: "p99".into(),
            points: vec![(1_000.0, 0.1), (1_500.0, 0.2), (2_250.0, 9.0)],
        }],
    );
    for (name, c) in [("spectrum", &spectrum_chart), ("sweep", &sweep_chart)] {
        let svg = dir.join(format!("{name}.svg"));
        let png = dir.join(format!("{name}.png"));
        render(c, &svg).unwrap();
        render(c, &png).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("test chart"),
            "{name}"
        );
        assert!(
            text.contains("SLO p99") && text.contains("<polyline"),
            "{name}"
        );
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{name}");
        assert!(bytes.len() > 10_000, "{name}: {} bytes", bytes.len());
    }
    assert!(spectrum_chart.series[0].points.len() > 50);
    assert!(render(&spectrum_chart, &dir.join("x.gif")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
