//! Tests of `chart`.

use super::*;
use plotters::prelude::{Color, Palette, Palette99};
use polars::df;

fn flat(svg: &Svg) -> String {
    svg.as_str().replace('\n', "")
}

#[test]
fn line_chart_has_a_legend_entry_and_polyline_per_series() -> Result<()> {
    let svg = Chart::line("loss")
        .x_label("step")
        .series("train", &[0, 1, 2], &[3.0, 2.0, 1.0])
        .series("eval", &[0, 1, 2], &[3.5, 2.5, 2.0])
        .svg()?;
    let s = flat(&svg);
    assert!(
        s.contains(">train</text>") && s.contains(">eval</text>"),
        "{s}"
    );
    assert!(s.contains(">step</text>"));
    // Each series' colour: its line and its legend swatch.
    let first = Palette99::pick(0).to_rgba();
    let colour = format!(
        "stroke=\"#{:02X}{:02X}{:02X}\" stroke-width=\"2\"",
        first.0, first.1, first.2
    );
    assert_eq!(s.matches(&colour).count(), 2, "{colour} in {s}");
    Ok(())
}

#[test]
fn non_finite_points_break_the_line_and_are_counted() -> Result<()> {
    let svg = Chart::line("t")
        .series("a", &[0.0, 1.0, 2.0, 3.0], &[1.0, f64::NAN, 2.0, 3.0])
        .svg()?;
    let s = flat(&svg);
    assert!(s.contains("t (1 points left out: not finite)"), "{s}");
    // Two segments: [0] and [2, 3]; plotters skips a one-point line, plus the legend.
    assert!(s.matches("<polyline").count() >= 2, "{s}");
    Ok(())
}

#[test]
fn log_axis_ticks_are_powers_of_ten_and_drop_non_positive_values() -> Result<()> {
    let svg = Chart::line("d")
        .log_y()
        .series("a", &[0, 1, 2, 3], &[1e-3, 1e-2, 0.0, 1.0])
        .svg()?;
    let s = flat(&svg);
    assert!(
        s.contains(">1e-2</text>") || s.contains(">1e-1</text>"),
        "{s}"
    );
    assert!(
        s.contains("1 points left out: not finite or ≤ 0 on a log axis"),
        "{s}"
    );
    Ok(())
}

#[test]
fn scatter_draws_labels_escaped() -> Result<()> {
    let svg = Chart::scatter("features")
        .series("latents", &[0.0, 1.0], &[1.0, 0.0])
        .point_labels(&["<b>", "a&b"])
        .svg()?;
    let s = flat(&svg);
    // One series: no legend, so two circles.
    assert_eq!(s.matches("<circle").count(), 2, "{s}");
    assert!(
        s.contains("&lt;b&gt;") && s.contains("a&amp;b") && !s.contains("<b>"),
        "{s}"
    );
    Ok(())
}

#[test]
fn bars_and_histograms_draw_one_rect_each() -> Result<()> {
    let svg = Chart::bar("heads")
        .bars(&["L0H0", "L0H1", "L1H0"], &[0.5, -0.25, 1.0])
        .svg()?;
    let s = flat(&svg);
    assert_eq!(
        s.matches("<rect").count(),
        1 + 3,
        "background and three bars: {s}"
    );
    assert!(s.contains(">L0H1</text>"), "{s}");
    let svg = Chart::histogram("h", 2)
        .x_label("x")
        .range(0.0, 1.0)
        .values(&[0.0, 0.5, 1.0, 7.0, f64::NAN])
        .svg()?;
    let s = flat(&svg);
    assert_eq!(s.matches("<rect").count(), 3, "{s}");
    assert!(s.contains("h (2 points left out: not finite)"), "{s}");
    Ok(())
}

#[test]
fn log_x_histogram_bins_log10_of_densities() -> Result<()> {
    let densities = [1e-5, 1e-4, 1e-4, 1e-3, 0.0];
    let svg = Chart::histogram("density", 4)
        .log_x()
        .range(1e-6, 1e-2)
        .values(&densities)
        .svg()?;
    let s = flat(&svg);
    assert!(s.contains(">1e-4</text>"), "{s}");
    assert!(s.contains("1 points left out"), "the zero density: {s}");
    Ok(())
}

#[test]
fn frames_give_one_series_per_group_and_bad_names_are_errors() -> Result<()> {
    let df = df!("step" => &[0i64, 1, 0, 1], "loss" => &[1.0, 0.5, 2.0, 1.0], "run" => &["a", "a", "b", "b"])?;
    let s = flat(
        &Chart::line("runs")
            .frame_by(&df, "step", "loss", "run")
            .svg()?,
    );
    assert!(s.contains(">a</text>") && s.contains(">b</text>"), "{s}");
    let err = Chart::line("x")
        .frame(&df, "step", "los")
        .svg()
        .expect_err("typo")
        .to_string();
    assert!(err.contains("`los` is not in the DataFrame"), "{err}");
    let empty = df.head(Some(0));
    let err = Chart::line("x")
        .frame(&empty, "step", "loss")
        .svg()
        .expect_err("no rows")
        .to_string();
    assert!(err.contains("no finite point"), "{err}");
    let err = Chart::line("x")
        .frame(&df, "step", "los")
        .svg()
        .expect_err("typo")
        .to_string();
    assert!(err.contains("`los` is not in the DataFrame"), "{err}");
    Ok(())
}

#[test]
fn bad_input_is_a_named_error() {
    let err = |c: Chart| c.svg().expect_err("bad input").to_string();
    assert!(err(Chart::line("e")).contains("nothing to draw"));
    assert!(
        err(Chart::line("e").series("a", &[1.0, 2.0], &[1.0]))
            .contains("2 x values but 1 y values")
    );
    assert!(err(Chart::line("e").series("a", &[f64::NAN], &[1.0])).contains("no finite point"));
    assert!(
        err(Chart::scatter("e")
            .series("a", &[1.0], &[1.0])
            .point_labels(&["a", "b"]))
        .contains("2 point labels")
    );
    assert!(err(Chart::bar("e").bars(&["a"], &[1.0, 2.0])).contains("1 categories but 2"));
    assert!(err(Chart::histogram("e", 0).values(&[1.0])).contains("bins"));
    let empty: [f64; 0] = [];
    assert!(err(Chart::histogram("e", 3).values(&empty)).contains("finite"));
    // Shown in a Panel, a failed chart is its error, escaped, not a broken image.
    let html = crate::display::ToHtml::to_html(&Chart::line("<e>"));
    assert!(
        html.starts_with("<pre class=\"mechlens-error\">") && html.contains("&lt;e&gt;"),
        "{html}"
    );
}
