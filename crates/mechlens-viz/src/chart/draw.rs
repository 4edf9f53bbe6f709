//! Drawing a [`Chart`] with plotters: axes padded around the finite data, log axes in log10
//! coordinates with power-of-ten ticks, and a caption that counts the points left out.

use mechlens_core::{Error, Result};
use plotters::prelude::*;

use super::{Chart, ChartKind};
use crate::colors::finite_range;
use crate::svg::{Svg, SvgArea, svg_chart};

/// Left out of a chart: how many points were not finite, or not positive on a log axis.
fn usable(v: f64, log: bool) -> Option<f64> {
    if !v.is_finite() || (log && v <= 0.0) {
        None
    } else if log {
        Some(v.log10())
    } else {
        Some(v)
    }
}

/// Axis tick text: a plain number, or `1e-3` style on a log axis (where `v` is the exponent).
fn tick(v: f64, log: bool) -> String {
    if log {
        let e = v.round();
        if (v - e).abs() < 1e-6 {
            format!("1e{e}")
        } else {
            format!("{:.2e}", 10f64.powf(v))
        }
    } else {
        let text = crate::display::format_float(v);
        text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
    }
}

/// `lo..hi` widened by 5% (or by 1 around a single value) so that points are not on the frame.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}

/// A chart's frame: its caption, margin and the room for axis labels (`x_area` pixels below).
fn frame<'a, 'b>(
    root: &'a SvgArea<'b>,
    caption: &str,
    x_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(x_area)
        .y_label_area_size(56);
    builder
}

impl Chart {
    fn caption(&self, left_out: usize) -> String {
        if left_out > 0 {
            let why = if self.log_x || self.log_y {
                "not finite or ≤ 0 on a log axis"
            } else {
                "not finite"
            };
            format!("{} ({left_out} points left out: {why})", self.title)
        } else {
            self.title.clone()
        }
    }

    pub(super) fn draw_xy(&self) -> Result<Svg> {
        let (lx, ly) = (self.log_x, self.log_y);
        // Each series' usable points in plot coordinates (log10 on log axes), with labels.
        let mut left_out = 0;
        let mut pts: Vec<Vec<Option<(f64, f64, usize)>>> = Vec::new();
        for s in &self.series {
            let p: Vec<Option<(f64, f64, usize)>> =
                s.x.iter()
                    .zip(&s.y)
                    .enumerate()
                    .map(|(i, (&x, &y))| Some((usable(x, lx)?, usable(y, ly)?, i)))
                    .collect();
            left_out += p.iter().filter(|q| q.is_none()).count();
            pts.push(p);
        }
        let all: Vec<(f64, f64)> = pts
            .iter()
            .flatten()
            .flatten()
            .map(|&(x, y, _)| (x, y))
            .collect();
        if all.is_empty() {
            return Err(Error::invalid(
                format!("chart `{}`", self.title),
                "no finite point to draw (every value is NaN, inf, or ≤ 0 on a log axis)",
            ));
        }
        let range = |coord: fn(&(f64, f64)) -> f64| {
            let values: Vec<f64> = all.iter().map(coord).collect();
            let (lo, hi) = finite_range(&values).unwrap_or((0.0, 1.0));
            padded(lo, hi)
        };
        let (xs, ys) = (range(|p| p.0), range(|p| p.1));
        let caption = self.caption(left_out);
        let legend = self.series.len() > 1 || self.kind == ChartKind::Line;
        svg_chart(self.size.0, self.size.1, |root| {
            let mut chart = frame(root, &caption, 36).build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_label_formatter(&|v| tick(*v, lx))
                .y_label_formatter(&|v| tick(*v, ly))
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for (k, (s, p)) in self.series.iter().zip(&pts).enumerate() {
                let color = Palette99::pick(k).to_rgba();
                if self.kind == ChartKind::Line {
                    // A non-finite point breaks the line rather than joining across it.
                    let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
                    for q in p {
                        match q {
                            Some((x, y, _)) => {
                                segments.last_mut().map_or((), |seg| seg.push((*x, *y)))
                            }
                            None => segments.push(Vec::new()),
                        }
                    }
                    let mut first = true;
                    for seg in segments.into_iter().filter(|s| !s.is_empty()) {
                        let drawn =
                            chart.draw_series(LineSeries::new(seg, color.stroke_width(2)))?;
                        if first {
                            drawn.label(s.name.as_str()).legend(move |(x, y)| {
                                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                            });
                            first = false;
                        }
                    }
                } else {
                    let drawn = chart.draw_series(
                        p.iter()
                            .flatten()
                            .map(|&(x, y, _)| Circle::new((x, y), 4, color.mix(0.7).filled())),
                    )?;
                    drawn
                        .label(s.name.as_str())
                        .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
                    if !s.labels.is_empty() {
                        chart.draw_series(p.iter().flatten().map(|&(x, y, i)| {
                            EmptyElement::at((x, y))
                                + Text::new(
                                    s.labels[i].clone(),
                                    (6, -6),
                                    ("sans-serif", 11).into_font(),
                                )
                        }))?;
                    }
                }
            }
            if legend {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()?;
            }
            Ok(())
        })
    }

    pub(super) fn draw_bars(&self) -> Result<Svg> {
        let s = &self.series[0];
        let n = s.y.len();
        if n == 0 {
            return Err(Error::invalid(
                format!("chart `{}`", self.title),
                "no bars to draw",
            ));
        }
        let left_out = s.y.iter().filter(|v| !v.is_finite()).count();
        let finite: Vec<f64> = s.y.iter().copied().filter(|v| v.is_finite()).collect();
        let lo = finite.iter().copied().fold(0.0, f64::min);
        let hi = finite.iter().copied().fold(0.0, f64::max);
        let (lo, hi) = if hi > lo {
            (lo - (hi - lo) * 0.02, hi + (hi - lo) * 0.05)
        } else {
            (0.0, 1.0)
        };
        let caption = self.caption(left_out);
        let labels = s.labels.clone();
        svg_chart(self.size.0, self.size.1, |root| {
            let mut chart =
                frame(root, &caption, 48).build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..hi)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_labels(n.min(40))
                .x_label_formatter(&|v| {
                    let i = v.round();
                    if (v - i).abs() < 1e-6 && i >= 0.0 {
                        labels.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .y_label_formatter(&|v| tick(*v, false))
                .draw()?;
            chart.draw_series(s.y.iter().enumerate().filter(|(_, v)| v.is_finite()).map(
                |(i, &v)| {
                    let x = i as f64;
                    Rectangle::new([(x - 0.4, 0.0), (x + 0.4, v)], BLUE.mix(0.6).filled())
                },
            ))?;
            Ok(())
        })
    }

    pub(super) fn draw_histogram(&self, bins: usize) -> Result<Svg> {
        let raw = &self.series[0].x;
        let log = self.log_x;
        let mut left_out = 0;
        let values: Vec<f64> = raw
            .iter()
            .filter_map(|&v| {
                let u = usable(v, log);
                if u.is_none() {
                    left_out += 1;
                }
                u
            })
            .collect();
        let range = match self.range {
            Some((a, b)) if log => {
                if a <= 0.0 || b <= 0.0 {
                    return Err(Error::invalid(
                        "histogram range",
                        format!("({a}, {b}) on a log axis; both ends must be > 0"),
                    ));
                }
                Some((a.log10(), b.log10()))
            }
            other => other,
        };
        let mechlens_tables::Bins {
            low,
            width,
            counts,
            left_out: outside,
        } = mechlens_tables::bin_counts(&values, bins, range)?;
        let (lo, hi) = (low, low + width * bins as f64);
        let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.05;
        let caption = self.caption(left_out + outside);
        let y_label = if self.y_label.is_empty() {
            "count"
        } else {
            self.y_label.as_str()
        };
        svg_chart(self.size.0, self.size.1, |root| {
            let mut chart = frame(root, &caption, 36).build_cartesian_2d(lo..hi, 0f64..top)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(y_label)
                .disable_x_mesh()
                .x_label_formatter(&|v| tick(*v, log))
                .draw()?;
            chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], BLUE.mix(0.6).filled())
            }))?;
            Ok(())
        })
    }
}
