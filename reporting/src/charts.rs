//! Charts as SVG, drawn on the server with plotters: no script, readable without the
//! browser bundle, and the same on every page that shows them.

use plotters::prelude::*;

/// One line of a chart: points of (time in microseconds, value).
pub struct Line {
    /// Legend.
    pub label: &'static str,
    /// Colour.
    pub color: RGBColor,
    /// Points in time order.
    pub points: Vec<(i64, f64)>,
}

/// The palette: distinguishable for common colour-vision deficiencies (Okabe–Ito).
pub const BLUE: RGBColor = RGBColor(0, 114, 178);
/// Second series.
pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
/// Errors, thresholds.
pub const VERMILLION: RGBColor = RGBColor(213, 94, 0);
/// Fourth series.
pub const GREEN: RGBColor = RGBColor(0, 158, 115);

/// A line chart over `[from, to)` with `unit` on the y axis and, optionally, a dashed
/// threshold line; `label` is what screen readers hear.
pub fn lines(
    label: &str,
    unit: &str,
    from: i64,
    to: i64,
    lines: &[Line],
    threshold: Option<(f64, &'static str)>,
) -> String {
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, unit, from, to, lines, threshold) {
        tracing::warn!(error = %e, "chart not drawn");
        return String::new();
    }
    let summary = escape(label);
    svg.replacen("<svg ", &format!("<svg role=\"img\" aria-label=\"{summary}\" "), 1)
}

fn draw(
    svg: &mut String,
    unit: &str,
    from: i64,
    to: i64,
    lines: &[Line],
    threshold: Option<(f64, &'static str)>,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (760, 260)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(threshold.map(|t| t.0))
        .fold(0.0_f64, f64::max);
    let y_max = if top > 0.0 { top * 1.1 } else { 1.0 };
    let span_days = (to - from) as f64 / 86_400e6;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(78)
        .build_cartesian_2d(from..to.max(from + 1), 0.0..y_max)?;
    let time_label = move |x: &i64| {
        let t = chrono::DateTime::from_timestamp_micros(*x).unwrap_or_default();
        if span_days <= 2.0 {
            t.format("%H:%M").to_string()
        } else {
            t.format("%d %b").to_string()
        }
    };
    chart
        .configure_mesh()
        .x_labels(7)
        .y_labels(5)
        .x_label_formatter(&time_label)
        .y_label_formatter(&|y| format_value(*y))
        .y_desc(unit)
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()?;
    for line in lines {
        let color = line.color;
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), color.stroke_width(2)))?
            .label(line.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3)));
        if line.points.len() == 1 {
            chart.draw_series(line.points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
    }
    if let Some((value, name)) = threshold {
        chart
            .draw_series(DashedLineSeries::new(
                [(from, value), (to, value)],
                6,
                4,
                VERMILLION.stroke_width(1),
            ))?
            .label(name)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], VERMILLION.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 17))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .draw()?;
    root.present()?;
    Ok(())
}

fn format_value(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_accessible_svg_with_its_lines() {
        let svg = lines(
            "Messages",
            "messages",
            0,
            3_600_000_000,
            &[Line {
                label: "incoming",
                color: BLUE,
                points: vec![(0, 1.0), (60_000_000, 5.0)],
            }],
            Some((3.0, "3 s objective")),
        );
        assert!(svg.starts_with("<svg role=\"img\" aria-label=\"Messages\" "), "{svg}");
        assert!(svg.contains("incoming") && svg.contains("3 s objective"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
        assert!(!svg.contains("<script"));
    }
}
