//! The results chart (SVG): latency distributions and throughput by slots.

use crate::Report;
use anyhow::Context;
use plotters::prelude::*;
use std::path::Path;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn register_font() -> anyhow::Result<()> {
    let bytes = std::fs::read(FONT)
        .with_context(|| format!("no font at {FONT} (apt-get install fonts-dejavu-core)"))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("cannot load {FONT}"))?;
    Ok(())
}

pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let (left, right) = root.split_horizontally(560);
    latency_cdf(report, &left).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    throughput(report, &right).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// The series' labels, boxed in the lower right corner.
fn legend<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
) -> Result<(), Box<dyn std::error::Error>> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn latency_cdf(report: &Report, area: &Area<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let max = report
        .latency_ms
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("No-op job latency (CDF)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("milliseconds")
        .y_desc("fraction of runs")
        .draw()?;
    let colors = [RED, BLUE, GREEN, MAGENTA];
    for (i, (name, samples)) in report.latency_ms.iter().enumerate() {
        let mut v = samples.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len().max(1) as f64;
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(
                v.iter().enumerate().map(|(k, x)| (*x, (k + 1) as f64 / n)),
                color.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart)
}

fn throughput(report: &Report, area: &Area<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let max_slots = report
        .throughput_by_slots
        .iter()
        .map(|(s, _)| *s)
        .max()
        .unwrap_or(16) as f64;
    let max_rate = report
        .throughput_by_slots
        .iter()
        .map(|(_, r)| *r)
        .fold(report.docker_throughput_8, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption("No-op throughput by slots", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_slots + 1.0, 0.0..max_rate.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc("slots (jobs at once)")
        .y_desc("jobs/s")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            report
                .throughput_by_slots
                .iter()
                .map(|(s, r)| (*s as f64, *r)),
            BLUE.stroke_width(2),
        ))?
        .label("gantry")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart.draw_series(
        report
            .throughput_by_slots
            .iter()
            .map(|(s, r)| Circle::new((*s as f64, *r), 4, BLUE.filled())),
    )?;
    let d = report.docker_throughput_8;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, d), (max_slots + 1.0, d)],
            RED.stroke_width(1),
        ))?
        .label("docker run --rm, 8 at a time")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(1)));
    legend(&mut chart)
}
