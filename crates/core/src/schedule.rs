//! Schedules: when a configuration runs by itself. The wire document and its
//! validation, and the tick arithmetic: a cron expression (5 fields, or 6 with
//! seconds first, or `@daily`-style shorthands) evaluated by `croner` in an
//! IANA time zone from `chrono-tz` (which is how DST is handled: classic cron
//! rules, not hand-written ones), or every N seconds. No IO: callers pass
//! "now" in.

use crate::spec::SpecError;
use crate::{ConfigId, PipelineId};
use chrono::{DateTime, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The shortest `every`.
pub const MIN_EVERY: Duration = Duration::from_secs(1);
pub const MAX_EVERY: Duration = Duration::from_secs(366 * 24 * 3600);
/// A tick fired later than this after its time counts as missed (the
/// scheduler was down or stalled); `missed` decides what happens to it.
pub const LATE_AFTER_MS: i64 = 10_000;

/// What to do with ticks that passed while no scheduler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missed {
    /// Run the most recent missed tick once (the rest are dropped).
    #[default]
    Latest,
    /// Run none of them; wait for the next tick.
    Skip,
}

/// What to do at a tick while the schedule's previous job is still queued or running.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = String,
    parse_err_fn = unknown_overlap
)]
pub enum Overlap {
    /// Make no job; the tick is recorded as skipped.
    #[default]
    Skip,
    /// Make the job; it waits its turn behind the running one (the
    /// configuration lock holds it unless its spec names a concurrency key).
    Queue,
    /// Make the job, as if nothing were running.
    Allow,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn unknown_overlap(s: &str) -> String {
    format!("unknown overlap policy '{s}'")
}

/// A schedule exactly as a user writes it. Unknown keys are errors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDoc {
    /// The configuration it runs (or give `pipeline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The pipeline it runs (or give `config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// `30s`, `5m`, or a number of seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Value>,
    /// IANA zone of the cron expression, e.g. `Europe/Prague`. Default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// RFC 3339. `every` counts from here (else from the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<Missed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
}

#[derive(Debug, Clone)]
pub enum Timing {
    Cron { cron: Box<Cron>, tz: chrono_tz::Tz },
    Every { every_ms: i64 },
}

/// What a schedule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Config(ConfigId),
    Pipeline(PipelineId),
}

/// A validated schedule. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub target: Target,
    pub timing: Timing,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub max_runs: Option<u64>,
    pub missed: Missed,
    pub overlap: Overlap,
}

/// What the scheduler does about a due tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The tick to run now (at most one, whatever was missed).
    pub fire: Option<i64>,
    /// A tick passed over under `missed: skip`.
    pub missed: Option<i64>,
    /// The schedule's next tick after this one (`None`: it has ended).
    pub next: Option<i64>,
}

fn rfc3339_ms(text: &str, path: &str) -> Result<i64, SpecError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            SpecError::at(
                path,
                format!("must be an RFC 3339 time like 2026-01-31T12:00:00Z ({e})"),
            )
        })
}

/// A cron expression with 5 fields, 6 (seconds first) or a shorthand.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    let fields = text.split_whitespace().count();
    if !text.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "'{text}' has {fields} fields; use 5 (minute hour day month weekday), \
             6 (with seconds first) or a shorthand like @hourly"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| format!("'{text}' is not a valid cron expression: {e}"))
}

impl ScheduleDoc {
    /// Validates a JSON value (e.g. from an API body); errors name the key.
    pub fn from_value(value: Value) -> Result<(ScheduleDoc, Schedule), SpecError> {
        if !value.is_object() {
            return Err(SpecError::at("schedule", "must be a mapping"));
        }
        let doc: ScheduleDoc = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { "schedule".into() } else { path };
            let msg = e.inner().to_string();
            SpecError::at(&path, msg.split(" at line ").next().unwrap_or(&msg))
        })?;
        let s = doc.validate()?;
        Ok((doc, s))
    }

    pub fn validate(&self) -> Result<Schedule, SpecError> {
        let target = match (&self.config, &self.pipeline) {
            (Some(c), None) => {
                Target::Config(c.parse().map_err(|e: String| SpecError::at("config", e))?)
            }
            (None, Some(p)) => Target::Pipeline(
                p.parse()
                    .map_err(|e: String| SpecError::at("pipeline", e))?,
            ),
            _ => return Err(SpecError::at(
                "config",
                "give exactly one of 'config' (a configuration id) or 'pipeline' (a pipeline id)",
            )),
        };
        let tz: chrono_tz::Tz = match self.timezone.as_deref() {
            None => chrono_tz::UTC,
            Some(z) => z.parse().map_err(|_| {
                SpecError::at(
                    "timezone",
                    format!("'{z}' is not an IANA time zone (like Europe/Prague or UTC)"),
                )
            })?,
        };
        let timing = match (&self.cron, &self.every) {
            (Some(c), None) => Timing::Cron {
                cron: Box::new(parse_cron(c).map_err(|m| SpecError::at("cron", m))?),
                tz,
            },
            (None, Some(e)) => {
                if self.timezone.is_some() {
                    return Err(SpecError::at(
                        "timezone",
                        "applies to cron only; 'every' counts seconds",
                    ));
                }
                let text = match e {
                    Value::Number(n) => format!("{n}s"),
                    Value::String(s) => s.clone(),
                    _ => return Err(SpecError::at("every", "must be a duration like 30s")),
                };
                let d =
                    crate::units::parse_duration(&text).map_err(|m| SpecError::at("every", m))?;
                if d < MIN_EVERY || d > MAX_EVERY {
                    return Err(SpecError::at("every", "must be between 1s and 366 days"));
                }
                if d.subsec_millis() != 0 {
                    return Err(SpecError::at("every", "must be whole seconds"));
                }
                Timing::Every {
                    every_ms: d.as_millis() as i64,
                }
            }
            _ => {
                return Err(SpecError::at(
                    "cron",
                    "give exactly one of 'cron' (an expression) or 'every' (a duration)",
                ))
            }
        };
        let start_at = self
            .start_at
            .as_deref()
            .map(|t| rfc3339_ms(t, "start_at"))
            .transpose()?;
        let end_at = self
            .end_at
            .as_deref()
            .map(|t| rfc3339_ms(t, "end_at"))
            .transpose()?;
        if let (Some(s), Some(e)) = (start_at, end_at) {
            if e <= s {
                return Err(SpecError::at("end_at", "must be after start_at"));
            }
        }
        let max_runs = match self.max_runs {
            None => None,
            Some(n) if n >= 1 => Some(n as u64),
            Some(_) => return Err(SpecError::at("max_runs", "must be at least 1")),
        };
        Ok(Schedule {
            target,
            timing,
            start_at,
            end_at,
            max_runs,
            missed: self.missed.unwrap_or_default(),
            overlap: self.overlap.unwrap_or_default(),
        })
    }
}

fn utc(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

impl Schedule {
    /// The first tick strictly after `t`, within `start_at..=end_at`.
    pub fn next_after(&self, t: i64) -> Option<i64> {
        let t = match self.start_at {
            Some(s) if s > t => s - 1,
            _ => t,
        };
        let next = match &self.timing {
            Timing::Every { every_ms } => {
                let anchor = self.start_at.unwrap_or(0);
                if t < anchor {
                    anchor
                } else {
                    anchor + ((t - anchor) / every_ms + 1) * every_ms
                }
            }
            Timing::Cron { cron, tz } => {
                // Cron ticks are whole seconds: searching after the second
                // that holds `t` finds the first tick after `t`.
                let from = utc(t.div_euclid(1000) * 1000)?.with_timezone(tz);
                cron.find_next_occurrence(&from, false)
                    .ok()?
                    .timestamp_millis()
            }
        };
        match self.end_at {
            Some(e) if next > e => None,
            _ => Some(next),
        }
    }

    /// The latest tick at or before `t`, within `start_at..=end_at`.
    pub fn latest_at_or_before(&self, t: i64) -> Option<i64> {
        let t = match self.end_at {
            Some(e) if e < t => e,
            _ => t,
        };
        let tick = match &self.timing {
            Timing::Every { every_ms } => {
                let anchor = self.start_at.unwrap_or(0);
                if t < anchor {
                    return None;
                }
                anchor + (t - anchor) / every_ms * every_ms
            }
            Timing::Cron { cron, tz } => {
                let from = utc(t.div_euclid(1000) * 1000)?.with_timezone(tz);
                cron.find_previous_occurrence(&from, true)
                    .ok()?
                    .timestamp_millis()
            }
        };
        match self.start_at {
            Some(s) if tick < s => None,
            _ => Some(tick),
        }
    }

    /// The next `n` ticks after `t`.
    pub fn upcoming(&self, t: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }

    /// The first tick of a new (or resumed) schedule: the next after `now`.
    pub fn first_tick(&self, now: i64) -> Option<i64> {
        self.next_after(now)
    }

    /// What to do now that the tick `due` (<= `now`) has come: run at most
    /// one tick, the latest one due (never a burst of the missed ones); if
    /// that is late (the scheduler was down), `missed` decides whether it runs.
    pub fn plan(&self, due: i64, now: i64) -> Plan {
        let latest = self.latest_at_or_before(now).unwrap_or(due).max(due);
        let late = now - latest > LATE_AFTER_MS;
        let next = self.next_after(latest.max(now));
        if late && self.missed == Missed::Skip {
            Plan {
                fire: None,
                missed: Some(latest),
                next,
            }
        } else {
            Plan {
                fire: Some(latest),
                missed: None,
                next,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sched(v: Value) -> Schedule {
        ScheduleDoc::from_value(v).expect("valid").1
    }

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .timestamp_millis()
    }

    fn ticks(s: &Schedule, from: &str, to: &str) -> Vec<i64> {
        let end = at(to);
        s.upcoming(at(from), 1000)
            .into_iter()
            .take_while(|t| *t <= end)
            .collect()
    }

    #[test]
    fn a_0230_schedule_runs_once_on_the_spring_forward_day() {
        // Europe/Prague skips 02:00-03:00 on 2026-03-29.
        let s = sched(json!({"config": "c", "cron": "30 2 * * *", "timezone": "Europe/Prague"}));
        let t = ticks(&s, "2026-03-28T00:00:00Z", "2026-03-30T23:59:59Z");
        assert_eq!(
            t,
            vec![
                at("2026-03-28T02:30:00+01:00"),
                // The wall-clock time does not exist: once, right after the gap.
                at("2026-03-29T03:00:00+02:00"),
                at("2026-03-30T02:30:00+02:00"),
            ]
        );
    }

    #[test]
    fn a_0230_schedule_runs_once_on_the_fall_back_day() {
        // Europe/Prague repeats 02:00-03:00 on 2026-10-25.
        let s = sched(json!({"config": "c", "cron": "30 2 * * *", "timezone": "Europe/Prague"}));
        let t = ticks(&s, "2026-10-24T00:00:00Z", "2026-10-26T23:59:59Z");
        assert_eq!(
            t,
            vec![
                at("2026-10-24T02:30:00+02:00"),
                at("2026-10-25T02:30:00+02:00"),
                at("2026-10-26T02:30:00+01:00"),
            ]
        );
    }

    #[test]
    fn an_hourly_schedule_runs_once_per_wall_clock_hour_across_dst() {
        // What croner does (and this is relied on, not re-implemented): the
        // repeated 01:00 of New York's fall-back day (2026-11-01) runs once,
        // so that day has 24 runs though it has 25 hours.
        let s = sched(json!({"config": "c", "cron": "@hourly", "timezone": "America/New_York"}));
        let t = ticks(&s, "2026-11-01T03:59:59Z", "2026-11-02T04:59:59Z");
        assert_eq!(t.len(), 24);
        let gaps: Vec<i64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(
            gaps.iter().filter(|g| **g == 7_200_000).count(),
            1,
            "{gaps:?}"
        );
        assert_eq!(t[1], at("2026-11-01T01:00:00-04:00"));
        assert_eq!(t[2], at("2026-11-01T02:00:00-05:00"));
    }

    #[test]
    fn six_fields_mean_seconds_and_every_counts_from_start_at() {
        let s = sched(json!({"config": "c", "cron": "*/2 * * * * *"}));
        assert_eq!(
            s.upcoming(at("2026-01-01T00:00:00.500Z"), 3),
            vec![
                at("2026-01-01T00:00:02Z"),
                at("2026-01-01T00:00:04Z"),
                at("2026-01-01T00:00:06Z")
            ]
        );
        let e = sched(
            json!({"config": "c", "every": "90s", "start_at": "2026-01-01T00:00:10Z",
                              "end_at": "2026-01-01T00:04:00Z"}),
        );
        assert_eq!(
            e.upcoming(at("2025-12-31T00:00:00Z"), 5),
            vec![
                at("2026-01-01T00:00:10Z"),
                at("2026-01-01T00:01:40Z"),
                at("2026-01-01T00:03:10Z")
            ]
        );
    }

    #[test]
    fn missed_ticks_run_once_or_not_at_all_never_in_a_burst() {
        let latest = sched(json!({"config": "c", "every": 60}));
        let due = at("2026-01-01T00:01:00Z");
        let now = at("2026-01-01T00:05:30Z");
        assert_eq!(
            latest.plan(due, now),
            Plan {
                fire: Some(at("2026-01-01T00:05:00Z")),
                missed: None,
                next: Some(at("2026-01-01T00:06:00Z")),
            }
        );
        let skip = sched(json!({"config": "c", "every": 60, "missed": "skip"}));
        assert_eq!(
            skip.plan(due, now),
            Plan {
                fire: None,
                missed: Some(at("2026-01-01T00:05:00Z")),
                next: Some(at("2026-01-01T00:06:00Z")),
            }
        );
        // On time (within the grace), both policies run it.
        let on_time = at("2026-01-01T00:05:01Z");
        assert_eq!(
            skip.plan(at("2026-01-01T00:05:00Z"), on_time).fire,
            Some(at("2026-01-01T00:05:00Z"))
        );
    }

    #[test]
    fn bad_schedules_name_the_field() {
        for (v, field) in [
            (json!({"config": "c", "cron": "61 * * * *"}), "cron"),
            (json!({"config": "c", "cron": "* * *"}), "cron"),
            (json!({"config": "c", "cron": "0 0 * * * * 2030"}), "cron"),
            (json!({"config": "c"}), "cron"),
            (json!({"config": "c", "cron": "@daily", "every": 5}), "cron"),
            (
                json!({"config": "c", "cron": "@daily", "timezone": "Mars/Olympus"}),
                "timezone",
            ),
            (json!({"config": "c", "every": "500ms"}), "every"),
            (json!({"config": "c", "every": 0}), "every"),
            (json!({"config": "", "every": 5}), "config"),
            (json!({"every": 5}), "config"),
            (
                json!({"config": "c", "pipeline": "p", "every": 5}),
                "config",
            ),
            (json!({"pipeline": "a/b", "every": 5}), "pipeline"),
            (
                json!({"config": "c", "every": 5, "max_runs": 0}),
                "max_runs",
            ),
            (
                json!({"config": "c", "every": 5, "start_at": "soon"}),
                "start_at",
            ),
            (
                json!({"config": "c", "every": 5, "start_at": "2026-01-02T00:00:00Z",
                    "end_at": "2026-01-01T00:00:00Z"}),
                "end_at",
            ),
            (
                json!({"config": "c", "every": 5, "overlap": "sometimes"}),
                "overlap",
            ),
            (
                json!({"config": "c", "every": 5, "whenever": true}),
                "whenever",
            ),
        ] {
            let e = ScheduleDoc::from_value(v.clone()).expect_err(&v.to_string());
            assert_eq!(e.path, field, "{v}: {e}");
        }
    }
}
