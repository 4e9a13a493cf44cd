//! The inspector's comparisons and drawings, kept apart from I/O so they are unit-tested on plain values:
//! the read model against the replayed state (field by field, the first thing a user looks for when a
//! projection is wrong) and the projection-lag chart (an SVG polyline, no charting library).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;
use serde_json::Value;

/// How the read model compares with replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Same version, same state, same type.
    Matches,
    /// The read model is at an older version: the projector has not caught up (or is stuck).
    Behind,
    /// Same version but another state or type: the projection is wrong.
    Differs,
    /// The read model is at a newer version than the log holds.
    Ahead,
    /// Events exist but there is no read model.
    Missing,
    /// Replay itself stopped at an event (the reason is shown).
    ReplayFailed,
    /// Neither events nor a read model.
    Empty,
    /// Replay is still folding a long log; the page reloads until it is done.
    Pending,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Matches => "the read model matches the replay",
            Verdict::Behind => {
                "the read model is behind the log: the projector has not applied the latest events"
            }
            Verdict::Differs => "the read model differs from the replay at the same version",
            Verdict::Ahead => "the read model is at a newer version than the log holds",
            Verdict::Missing => "the log has events but there is no read model",
            Verdict::ReplayFailed => "replay stopped at an event that cannot be folded",
            Verdict::Empty => "no events and no read model",
            Verdict::Pending => {
                "replay is still folding the log; this page reloads until it is done"
            }
        }
    }
}

/// One field of the side-by-side comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldRow {
    /// A JSON-pointer-like path (`/email`, `/tags/0`); `(type)` for the aggregate type.
    pub path: String,
    pub read_model: String,
    pub replay: String,
    pub differs: bool,
}

/// The comparison shown beside the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub verdict: Verdict,
    pub verdict_text: &'static str,
    /// Whether the page flags a problem (anything but a match; an empty aggregate is no problem).
    pub flagged: bool,
    pub rows: Vec<FieldRow>,
    pub differing: usize,
}

/// Compares a read model (`version`, `type`, `state`) with the replayed one.
pub fn compare(
    read_model: Option<(u64, Option<&str>, &Value)>,
    replay: Option<(u64, Option<&str>, &Value)>,
    replay_failed: bool,
) -> Comparison {
    let empty = Value::Null;
    let (rm_version, rm_type, rm_state) = read_model.unwrap_or((0, None, &empty));
    let (rp_version, rp_type, rp_state) = replay.unwrap_or((0, None, &empty));
    let mut rows = vec![
        FieldRow {
            path: "(version)".into(),
            read_model: read_model
                .map(|_| rm_version.to_string())
                .unwrap_or_default(),
            replay: replay.map(|_| rp_version.to_string()).unwrap_or_default(),
            differs: read_model.is_some() && rm_version != rp_version,
        },
        FieldRow {
            path: "(type)".into(),
            read_model: rm_type.unwrap_or_default().to_string(),
            replay: rp_type.unwrap_or_default().to_string(),
            // A read model written before types were recorded has none; that is no difference.
            differs: rm_type.is_some() && rm_type != rp_type,
        },
    ];
    let left = flatten(rm_state);
    let right = flatten(rp_state);
    let paths: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    for path in paths {
        let l = left.get(path);
        let r = right.get(path);
        rows.push(FieldRow {
            path: path.clone(),
            read_model: l.map(|v| v.to_string()).unwrap_or_else(|| "—".into()),
            replay: r.map(|v| v.to_string()).unwrap_or_else(|| "—".into()),
            differs: l != r,
        });
    }
    let state_differs = rows.iter().skip(1).any(|r| r.differs);
    let verdict = match (read_model, replay) {
        _ if replay_failed => Verdict::ReplayFailed,
        (None, None) => Verdict::Empty,
        (None, Some(_)) => Verdict::Missing,
        (Some(_), _) if rm_version < rp_version => Verdict::Behind,
        (Some(_), _) if rm_version > rp_version => Verdict::Ahead,
        _ if state_differs => Verdict::Differs,
        _ => Verdict::Matches,
    };
    // Fields of a read model that is behind differ because it is behind: they are shown, but only a wrong
    // state at the same version is marked as a difference.
    if verdict != Verdict::Differs {
        for row in rows.iter_mut().skip(1) {
            if verdict != Verdict::Ahead {
                row.differs = false;
            }
        }
    }
    let differing = rows.iter().filter(|r| r.differs).count();
    Comparison {
        verdict,
        verdict_text: verdict.text(),
        flagged: !matches!(verdict, Verdict::Matches | Verdict::Empty),
        rows,
        differing,
    }
}

/// The comparison while replay is still running: the read model's fields, nothing judged yet.
pub fn pending(read_model: Option<(u64, Option<&str>, &Value)>) -> Comparison {
    let mut c = compare(read_model, None, false);
    for row in &mut c.rows {
        row.differs = false;
    }
    c.verdict = Verdict::Pending;
    c.verdict_text = Verdict::Pending.text();
    c.flagged = false;
    c.differing = 0;
    c
}

/// Leaves of a JSON value by path (`/a/b/0`); an empty object or array is a leaf of its own.
pub fn flatten(value: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: String, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    walk(format!("{prefix}/{k}"), v, out);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for (i, v) in a.iter().enumerate() {
                    walk(format!("{prefix}/{i}"), v, out);
                }
            }
            Value::Null if prefix.is_empty() => {}
            _ => {
                out.insert(
                    if prefix.is_empty() {
                        "/".into()
                    } else {
                        prefix
                    },
                    v.clone(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(String::new(), value, &mut out);
    out
}

/// Projection-lag samples: one per second for the last ten minutes.
#[derive(Debug, Default)]
pub struct LagHistory {
    /// `(epoch ms, lag ms)`, oldest first.
    pub samples: VecDeque<(i64, u64)>,
}

/// Samples kept: ten minutes at one a second.
pub const LAG_SAMPLES: usize = 600;

impl LagHistory {
    pub fn push(&mut self, at_ms: i64, lag_ms: u64) {
        if self.samples.len() == LAG_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((at_ms, lag_ms));
    }

    pub fn now(&self) -> Option<u64> {
        self.samples.back().map(|(_, l)| *l)
    }

    pub fn max(&self) -> u64 {
        self.samples.iter().map(|(_, l)| *l).max().unwrap_or(0)
    }

    /// The chart: lag (ms) over the kept samples as an SVG polyline with a labelled scale.
    pub fn svg(&self) -> String {
        let (w, h, pad) = (600.0_f64, 140.0_f64, 64.0_f64);
        let top = (self.max().max(100) as f64 * 1.1).ceil();
        let n = self.samples.len().max(2) as f64;
        let points: Vec<String> = self
            .samples
            .iter()
            .enumerate()
            .map(|(i, (_, lag))| {
                let x = pad + (w - pad - 4.0) * i as f64 / (n - 1.0);
                let y = h - 18.0 - (h - 28.0) * (*lag as f64 / top);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let span = match (self.samples.front(), self.samples.back()) {
            (Some((a, _)), Some((b, _))) => ((b - a) / 1000).max(0),
            _ => 0,
        };
        format!(
            r##"<svg class="lag" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="projection lag over the last {span} s">
<line x1="{pad}" y1="10" x2="{pad}" y2="{base}" stroke="#999"/>
<line x1="{pad}" y1="{base}" x2="{right}" y2="{base}" stroke="#999"/>
<text x="{lx}" y="16" font-size="10" text-anchor="end">{top} ms</text>
<text x="{lx}" y="{base}" font-size="10" text-anchor="end">0</text>
<text x="{pad}" y="{bottom}" font-size="10">-{span} s</text>
<text x="{right}" y="{bottom}" font-size="10" text-anchor="end">now</text>
<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{points}"/>
</svg>"##,
            base = h - 18.0,
            right = w - 4.0,
            lx = pad - 4.0,
            bottom = h - 4.0,
            points = points.join(" "),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_wrong_field_at_the_same_version_is_flagged_by_path() {
        let rm = json!({"name": "Ada", "email": "wrong@example.com"});
        let rp = json!({"name": "Ada", "email": "ada@example.com"});
        let c = compare(
            Some((2, Some("user"), &rm)),
            Some((2, Some("user"), &rp)),
            false,
        );
        assert_eq!(c.verdict, Verdict::Differs);
        assert!(c.flagged);
        let differing: Vec<&str> = c
            .rows
            .iter()
            .filter(|r| r.differs)
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(differing, ["/email"]);
    }

    #[test]
    fn equal_states_match_and_a_late_read_model_is_behind_not_wrong() {
        let s = json!({"a": [1, {"b": null}]});
        let c = compare(Some((3, Some("t"), &s)), Some((3, Some("t"), &s)), false);
        assert_eq!(
            (c.verdict, c.flagged, c.differing),
            (Verdict::Matches, false, 0)
        );
        let old = json!({"a": [1]});
        let c = compare(Some((2, Some("t"), &old)), Some((3, Some("t"), &s)), false);
        assert_eq!(c.verdict, Verdict::Behind);
        assert_eq!(c.differing, 1, "only the version row: {:?}", c.rows);
        let c = compare(None, Some((1, Some("t"), &s)), false);
        assert_eq!(c.verdict, Verdict::Missing);
        let c = compare(None, None, false);
        assert!(!c.flagged);
    }

    #[test]
    fn the_lag_chart_keeps_ten_minutes_and_scales_to_its_maximum() {
        let mut h = LagHistory::default();
        for i in 0..(LAG_SAMPLES as i64 + 5) {
            h.push(i * 1000, (i % 7) as u64 * 100);
        }
        assert_eq!(h.samples.len(), LAG_SAMPLES);
        assert_eq!(h.max(), 600);
        let svg = h.svg();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
        );
        assert!(svg.contains("660 ms"), "{svg}");
    }
}
