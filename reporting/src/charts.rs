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

/// One message of a sequence diagram: an arrow from one lane to another.
pub struct Arrow {
    /// Sender's lane.
    pub from: usize,
    /// Recipient's lane.
    pub to: usize,
    /// What is written on it (channel, event).
    pub label: String,
    /// Still waiting (queued or retrying): drawn dashed in orange.
    pub waiting: bool,
}

/// A sequence diagram: a lane per participant (named `lanes`), the arrows top to bottom
/// in time order; `label` is what screen readers hear.
pub fn sequence(label: &str, lanes: &[String], arrows: &[Arrow]) -> String {
    const LANE: i32 = 190;
    const ROW: i32 = 46;
    const TOP: i32 = 52;
    let width = (LANE * i32::try_from(lanes.len().max(1)).unwrap_or(1)) as u32;
    let height = (TOP + ROW * i32::try_from(arrows.len()).unwrap_or(0) + 24) as u32;
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let x = |lane: usize| LANE / 2 + LANE * i32::try_from(lane).unwrap_or(0);
        let font = ("sans-serif", 15).into_font();
        let centred = |colour: RGBColor| {
            font.clone().color(&colour).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Bottom,
            ))
        };
        for (i, name) in lanes.iter().enumerate() {
            root.draw(&Text::new(name.clone(), (x(i), 26), centred(BLACK)))?;
            root.draw(&PathElement::new(
                vec![(x(i), 34), (x(i), height as i32 - 8)],
                RGBColor(190, 190, 190).stroke_width(1),
            ))?;
        }
        for (row, a) in arrows.iter().enumerate() {
            let y = TOP + ROW * i32::try_from(row).unwrap_or(0) + 26;
            let colour = if a.waiting { ORANGE } else { BLUE };
            let (x1, x2) = (x(a.from), x(a.to));
            if a.waiting {
                // Dashes by hand: the drawing area has no dashed path element.
                let step = if x2 >= x1 { 10 } else { -10 };
                let mut at = x1;
                while (step > 0 && at < x2) || (step < 0 && at > x2) {
                    let end = if step > 0 { (at + 6).min(x2) } else { (at - 6).max(x2) };
                    root.draw(&PathElement::new(vec![(at, y), (end, y)], colour.stroke_width(2)))?;
                    at += step;
                }
            } else {
                root.draw(&PathElement::new(vec![(x1, y), (x2, y)], colour.stroke_width(2)))?;
            }
            let head = if x2 >= x1 { -9 } else { 9 };
            root.draw(&Polygon::new(
                vec![(x2, y), (x2 + head, y - 5), (x2 + head, y + 5)],
                colour.filled(),
            ))?;
            root.draw(&Text::new(a.label.clone(), ((x1 + x2) / 2, y - 5), centred(BLACK)))?;
        }
        root.present()?;
        Ok(())
    })();
    if let Err(e) = drawn {
        tracing::warn!(error = %e, "sequence diagram not drawn");
        return String::new();
    }
    svg.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", escape(label)),
        1,
    )
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
    fn a_sequence_diagram_has_a_lane_per_participant_and_an_arrow_per_message() {
        let lanes = vec!["1000000001".to_owned(), "1000000011".to_owned()];
        let arrows = [
            Arrow {
                from: 0,
                to: 1,
                label: "IF-031 request".into(),
                waiting: false,
            },
            Arrow {
                from: 1,
                to: 0,
                label: "IF-032 answer".into(),
                waiting: true,
            },
        ];
        let svg = sequence("Workflow <x>", &lanes, &arrows);
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"Workflow &lt;x>\" "),
            "{svg}"
        );
        assert!(svg.contains("1000000011") && svg.contains("IF-031 request") && svg.contains("IF-032 answer"));
        assert_eq!(svg.matches("<polygon").count(), 2, "{svg}");
        assert!(!svg.contains("<script"));
    }

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
