//! The experiment's SVG plot, drawn by hand: per policy, the deadline curve B(t) against the
//! movie bytes present contiguously over time (every viewer of every run) and the penalty
//! taken so far; then the penalty of every run, per policy.

use std::fmt::Write as _;

use super::runner::{RunOutcome, ViewerOutcome};

const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 260.0;
const MARGIN_L: f64 = 60.0;
const MARGIN_B: f64 = 36.0;
const MARGIN_T: f64 = 28.0;
const MARGIN_R: f64 = 14.0;
const COLUMNS: usize = 3;
const RUN_COLOURS: [&str; 6] = [
    "#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#bcbd22",
];
const MIB: f64 = 1024.0 * 1024.0;

/// A plot area: maps data (seconds, bytes) to SVG coordinates.
struct Frame {
    x0: f64,
    y0: f64,
    t_max: f64,
    b_max: f64,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        self.x0 + MARGIN_L + (t / self.t_max).clamp(0.0, 1.0) * (PANEL_W - MARGIN_L - MARGIN_R)
    }
    fn y(&self, b: f64) -> f64 {
        self.y0 + PANEL_H
            - MARGIN_B
            - (b / self.b_max).clamp(0.0, 1.0) * (PANEL_H - MARGIN_B - MARGIN_T)
    }

    fn axes(&self, svg: &mut String, title: &str, x_label: &str, y_label: &str) {
        let (left, right) = (self.x(0.0), self.x(self.t_max));
        let (bottom, top) = (self.y(0.0), self.y(self.b_max));
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="13" font-weight="bold">{}</text>"##,
            self.x0 + MARGIN_L,
            self.y0 + 18.0,
            escape(title)
        );
        let _ = writeln!(
            svg,
            r##"<path d="M{left:.1},{top:.1} V{bottom:.1} H{right:.1}" stroke="#333" fill="none"/>"##
        );
        for k in 0..=4 {
            let f = f64::from(k) / 4.0;
            let (t, b) = (self.t_max * f, self.b_max * f);
            let (x, y) = (self.x(t), self.y(b));
            let _ = writeln!(
                svg,
                r##"<text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"##,
                bottom + 13.0,
                short(t)
            );
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
                left - 4.0,
                y + 3.0,
                short(b / MIB)
            );
            let _ = writeln!(
                svg,
                r##"<path d="M{left:.1},{y:.1} H{right:.1}" stroke="#ddd" stroke-width="0.5"/>"##
            );
        }
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{x_label}</text>"##,
            (left + right) / 2.0,
            bottom + 27.0
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">{y_label}</text>"##,
            self.x0 + 14.0,
            (top + bottom) / 2.0,
            self.x0 + 14.0,
            (top + bottom) / 2.0
        );
    }

    fn polyline(&self, svg: &mut String, points: &[(f64, f64)], style: &str) {
        if points.len() < 2 {
            return;
        }
        let mut d = String::new();
        for (t, b) in points {
            let _ = write!(d, "{:.1},{:.1} ", self.x(*t), self.y(*b));
        }
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" {style}/>"##,
            d.trim_end()
        );
    }
}

fn short(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// B(t) = R (P + t - D), clipped to [0, L].
fn deadline_curve(rate: f64, delay: f64, prefetch: f64, len: f64, t_max: f64) -> Vec<(f64, f64)> {
    let start = (delay - prefetch).max(0.0);
    let full = start + len / rate;
    if full > t_max {
        return vec![(0.0, 0.0), (start, 0.0), (t_max, rate * (t_max - start))];
    }
    vec![(0.0, 0.0), (start, 0.0), (full, len), (t_max, len)]
}

/// The whole SVG document.
pub fn render_svg(scenario: &str, runs: &[RunOutcome]) -> String {
    let mut policies: Vec<&str> = Vec::new();
    for r in runs {
        if !policies.contains(&r.policy.as_str()) {
            policies.push(&r.policy);
        }
    }
    let (t_max, b_max) = scales(runs);
    let panels = policies.len() + 1;
    let rows = panels.div_ceil(COLUMNS);
    let width = PANEL_W * COLUMNS.min(panels) as f64;
    let height = PANEL_H * rows as f64 + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif">"##
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="15">{}: B(t) (black, dashed) vs contiguous bytes present (blue/green, one line per viewer and run); penalty so far (red)</text>"##,
        escape(scenario)
    );
    for (p, policy) in policies.iter().enumerate() {
        let frame = Frame {
            x0: PANEL_W * (p % COLUMNS) as f64,
            y0: 40.0 + PANEL_H * (p / COLUMNS) as f64,
            t_max,
            b_max,
        };
        policy_panel(&mut svg, &frame, policy, runs);
    }
    penalty_panel(&mut svg, policies.len(), &policies, runs);
    svg.push_str("</svg>\n");
    svg
}

/// The time and byte axes' ends: wide enough for every curve, and for B(t) to reach the
/// whole movie.
fn scales(runs: &[RunOutcome]) -> (f64, f64) {
    let viewers = runs.iter().flat_map(|r| r.viewers.iter());
    let t_max = viewers
        .clone()
        .flat_map(|v| {
            let last = v.samples.last().map_or(0.0, |s| s.t);
            let len = v.score.as_ref().map_or(0.0, |s| s.movie_bytes as f64);
            let start = (v.delay_s - v.prefetch_s).max(0.0);
            [last, start + len / v.rate_bytes_per_s.max(1) as f64]
        })
        .fold(1.0f64, f64::max)
        .ceil();
    let b_max = viewers
        .map(|v| {
            v.score
                .as_ref()
                .map(|s| s.movie_bytes as f64)
                .unwrap_or_else(|| {
                    v.samples
                        .iter()
                        .filter_map(|s| s.contiguous)
                        .max()
                        .unwrap_or(0) as f64
                })
        })
        .fold(1.0f64, f64::max);
    (t_max, b_max)
}

/// One policy's panel: each distinct B(t) once, then every viewer's curves of every run.
fn policy_panel(svg: &mut String, frame: &Frame, policy: &str, runs: &[RunOutcome]) {
    frame.axes(svg, policy, "t (s, from the viewer's start)", "MiB");
    let mut drawn_b = Vec::new();
    let mut no_curve = false;
    for r in runs.iter().filter(|r| r.policy == policy) {
        let colour = RUN_COLOURS[(r.run as usize).saturating_sub(1) % RUN_COLOURS.len()];
        for v in &r.viewers {
            let len = v
                .score
                .as_ref()
                .map(|s| s.movie_bytes as f64)
                .unwrap_or(frame.b_max);
            let key = (
                v.rate_bytes_per_s,
                v.delay_s.to_bits(),
                v.prefetch_s.to_bits(),
                len.to_bits(),
            );
            if !drawn_b.contains(&key) {
                drawn_b.push(key);
                let b = deadline_curve(
                    v.rate_bytes_per_s as f64,
                    v.delay_s,
                    v.prefetch_s,
                    len,
                    frame.t_max,
                );
                frame.polyline(
                    svg,
                    &b,
                    r##"stroke="#000" stroke-width="1.5" stroke-dasharray="5,3""##,
                );
            }
            no_curve |= !viewer_curves(svg, frame, v, colour);
        }
    }
    if no_curve {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#555">contiguous bytes not reported by this client</text>"##,
            frame.x(0.0) + 6.0,
            frame.y(frame.b_max) + 12.0
        );
    }
}

/// A viewer's contiguous-bytes curve in `colour` and its penalty in red; false if the client
/// reported no contiguous bytes.
fn viewer_curves(svg: &mut String, frame: &Frame, v: &ViewerOutcome, colour: &str) -> bool {
    let contiguous: Vec<(f64, f64)> = v
        .samples
        .iter()
        .filter_map(|s| s.contiguous.map(|c| (s.t, c as f64)))
        .collect();
    frame.polyline(
        svg,
        &contiguous,
        &format!(r##"stroke="{colour}" stroke-width="1" opacity="0.8""##),
    );
    let penalty: Vec<(f64, f64)> = v.samples.iter().map(|s| (s.t, s.penalty as f64)).collect();
    frame.polyline(
        svg,
        &penalty,
        r##"stroke="#d62728" stroke-width="1" opacity="0.7""##,
    );
    !contiguous.is_empty()
}

/// Bars: the summed penalty of each run, grouped by policy.
fn penalty_panel(svg: &mut String, slot: usize, policies: &[&str], runs: &[RunOutcome]) {
    let max_runs = runs.iter().map(|r| r.run).max().unwrap_or(1) as f64;
    let p_max = runs
        .iter()
        .map(|r| r.penalty_sum() as f64)
        .fold(1.0f64, f64::max);
    let frame = Frame {
        x0: PANEL_W * (slot % COLUMNS) as f64,
        y0: 40.0 + PANEL_H * (slot / COLUMNS) as f64,
        t_max: policies.len().max(1) as f64,
        b_max: p_max * 1.1,
    };
    let (left, bottom) = (frame.x(0.0), frame.y(0.0));
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="13" font-weight="bold">penalty per run (MiB)</text>"##,
        frame.x0 + MARGIN_L,
        frame.y0 + 18.0
    );
    let _ = writeln!(
        svg,
        r##"<path d="M{left:.1},{:.1} V{bottom:.1} H{:.1}" stroke="#333" fill="none"/>"##,
        frame.y(frame.b_max),
        frame.x(frame.t_max)
    );
    for k in 0..=4 {
        let b = frame.b_max * f64::from(k) / 4.0;
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{:.2}</text>"##,
            left - 4.0,
            frame.y(b) + 3.0,
            b / MIB
        );
    }
    let slot_w = frame.x(1.0) - frame.x(0.0);
    let bar_w = (slot_w * 0.8 / max_runs).max(1.0);
    for (p, policy) in policies.iter().enumerate() {
        let x_slot = frame.x(p as f64);
        for r in runs.iter().filter(|r| r.policy == *policy) {
            let x = x_slot + slot_w * 0.1 + bar_w * (f64::from(r.run) - 1.0);
            let y = frame.y(r.penalty_sum() as f64);
            let colour = if r.ok() { "#d62728" } else { "#999" };
            let _ = writeln!(
                svg,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{} run {}: {} bytes</title></rect>"##,
                (bar_w - 1.0).max(0.5),
                (bottom - y).max(0.0),
                escape(policy),
                r.run,
                r.penalty_sum()
            );
        }
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text>"##,
            x_slot + slot_w / 2.0,
            bottom + 13.0 + 10.0 * (p % 2) as f64,
            escape(policy)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_curve_starts_at_d_minus_p_and_reaches_l_at_its_slope() {
        // R = 10 B/s, D = 6, P = 2, L = 100: zero until t = 4, L at t = 14.
        let b = deadline_curve(10.0, 6.0, 2.0, 100.0, 20.0);
        assert_eq!(
            b,
            vec![(0.0, 0.0), (4.0, 0.0), (14.0, 100.0), (20.0, 100.0)]
        );
        // A plot that ends before B(t) reaches L stops the line there, without a jump.
        let b = deadline_curve(10.0, 6.0, 2.0, 100.0, 9.0);
        assert_eq!(b, vec![(0.0, 0.0), (4.0, 0.0), (9.0, 50.0)]);
    }
}
