//! Schedules on the real binary and store: seconds-field cron and `every`,
//! exactly one job per tick with two servers on one store, catching up once
//! after downtime, overlaps skipped, pause/resume, bad input.

use crate::util::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn ms(rfc3339: &str) -> i64 {
    let t = humantime::parse_rfc3339(rfc3339).expect("time");
    t.duration_since(UNIX_EPOCH).expect("epoch").as_millis() as i64
}

/// The ticks of the jobs a schedule made, sorted.
async fn ticks_of(api: &Api, schedule: &str) -> Vec<(i64, Value)> {
    let (st, list) = api.get("/v1/jobs?limit=1000").await;
    assert_eq!(st, 200, "{list}");
    let mut out: Vec<(i64, Value)> = list["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["trigger"]["kind"] == "schedule" && j["trigger"]["id"] == schedule)
        .map(|j| (ms(j["trigger"]["tick"].as_str().expect("tick")), j.clone()))
        .collect();
    out.sort_by_key(|(t, _)| *t);
    out
}

async fn wait_ticks(api: &Api, schedule: &str, n: usize, within: Duration) -> Vec<(i64, Value)> {
    let deadline = Instant::now() + within;
    loop {
        let t = ticks_of(api, schedule).await;
        if t.len() >= n {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{schedule}: only {} jobs",
            t.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seconds_schedule_fires_once_per_tick_across_two_servers() {
    let g = Gantry::up(&["--slots", "2"]);
    let second = Extra::spawn(&g, &["server", "--listen", "127.0.0.1:0"]);
    second.wait_log("scheduler started", Duration::from_secs(20));
    assert!(
        g.log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains("scheduler started")),
        "the first server runs a scheduler too"
    );
    let api = g.client();
    let (st, _) = api
        .post(
            "/v1/configs",
            json!({"id": "tick", "spec": sh("echo tock")}),
        )
        .await;
    assert_eq!(st, 201);
    let out = g.cli(&[
        "schedules",
        "create",
        "every2",
        "--config",
        "tick",
        "--cron",
        "*/2 * * * * *",
        "--max-runs",
        "4",
        "--overlap",
        "allow",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("next"), "{}", stdout(&out));

    let ticks = wait_ticks(&api, "every2", 4, Duration::from_secs(60)).await;
    // Ended after max_runs; give both schedulers time to (wrongly) fire more.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, s) = api.get("/v1/schedules/every2").await;
        if s["status"] == "ended" {
            assert_eq!(s["runs"], 4, "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ticks_after = ticks_of(&api, "every2").await;
    assert_eq!(
        ticks_after.len(),
        4,
        "one job per tick, max_runs 4: {ticks_after:?}"
    );
    assert_eq!(ticks.len(), 4);
    let times: Vec<i64> = ticks_after.iter().map(|(t, _)| *t).collect();
    for w in times.windows(2) {
        assert!(w[1] > w[0], "no tick twice: {times:?}");
        assert_eq!((w[1] - w[0]) % 2000, 0, "{times:?}");
    }
    assert!(
        times.iter().all(|t| t % 2000 == 0),
        "on the even seconds: {times:?}"
    );
    for (_, job) in &ticks_after {
        let id = job["id"].as_str().expect("id");
        let end = api.wait(id).await;
        assert_eq!(end["status"], "succeeded", "{end}");
        assert_eq!(end["config"], "tick");
    }
    let shown = stdout(&g.cli(&["schedules", "show", "every2"]));
    assert!(shown.contains("ended"), "{shown}");
    assert_eq!(shown.matches(" job ").count(), 4, "{shown}");
    let job = stdout(&g.cli(&["jobs", "show", ticks_after[0].1["id"].as_str().expect("id")]));
    assert!(job.contains("schedule every2 tick"), "{job}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missed_ticks_catch_up_once_and_overlaps_are_skipped() {
    // No worker: the jobs stay queued, which is what the overlap part needs.
    let mut g = Gantry::server_only();
    let api = g.client();
    let (st, _) = api
        .post("/v1/configs", json!({"id": "c", "spec": sh("true")}))
        .await;
    assert_eq!(st, 201);
    let (st, s) = api
        .post(
            "/v1/schedules",
            json!({"id": "catch", "config": "c", "every": "2s", "overlap": "allow"}),
        )
        .await;
    assert_eq!(st, 201, "{s}");
    assert_eq!(s["next"].as_array().map(Vec::len), Some(5), "{s}");
    assert_eq!(
        s["schedule"]["missed"],
        Value::Null,
        "latest is the default"
    );
    wait_ticks(&api, "catch", 1, Duration::from_secs(30)).await;

    let st = g.stop_with("TERM", Duration::from_secs(10));
    assert!(st.success());
    let stopped = now_ms();
    // Down for more than 3 ticks.
    std::thread::sleep(Duration::from_millis(7_500));
    let restarted = now_ms();
    g.start_with(&["server".into(), "--listen".into(), "127.0.0.1:0".into()]);
    let api = g.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ticks = loop {
        let t = ticks_of(&api, "catch").await;
        if t.iter().any(|(tick, _)| *tick > restarted) {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no tick after the restart: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The first job after the stop was made when the scheduler came back;
    // of all the ticks missed up to then (at least 3), only the latest ran.
    let after_stop: Vec<&(i64, Value)> = ticks.iter().filter(|(t, _)| *t > stopped).collect();
    let (caught_up, job) = after_stop[0];
    let made_at = ms(job["queued_at"].as_str().expect("queued_at"));
    assert!(made_at - stopped >= 7_000, "made after the restart: {job}");
    let up_to_then: Vec<i64> = after_stop
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t <= made_at)
        .collect();
    assert_eq!(
        up_to_then,
        vec![*caught_up],
        "one catch-up job, no burst: {ticks:?}"
    );
    assert!(made_at - caught_up < 2_000, "the latest missed tick: {job}");
    assert!(*caught_up >= restarted - 2_000, "{job}");

    // Overlap skip (the default): the first job stays queued, later ticks are skipped.
    let (st, _) = api
        .post(
            "/v1/schedules",
            json!({"id": "ovl", "config": "c", "every": 2}),
        )
        .await;
    assert_eq!(st, 201);
    let first = wait_ticks(&api, "ovl", 1, Duration::from_secs(30)).await;
    let first_id = first[0].1["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let shown = loop {
        let (_, s) = api.get("/v1/schedules/ovl").await;
        let skipped = s["recent"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["outcome"] == "skipped")
            .count();
        if skipped >= 2 {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ticks_of(&api, "ovl").await.len(), 1, "{shown}");
    let note = shown["recent"][0]["note"].as_str().unwrap_or_default();
    assert!(note.contains(&first_id), "{shown}");

    // Pause, resume.
    let out = g.cli(&["schedules", "pause", "ovl"]);
    assert!(stdout(&out).contains("paused"), "{}", stdout(&out));
    let out = g.cli(&["schedules", "resume", "ovl"]);
    assert!(stdout(&out).contains("active"), "{}", stdout(&out));
    let (_, s) = api.get("/v1/schedules/ovl").await;
    assert!(
        ms(s["next_tick"].as_str().expect("next")) > now_ms() - 1000,
        "{s}"
    );
    let listed = stdout(&g.cli(&["schedules", "list"]));
    assert!(
        listed.contains("catch") && listed.contains("ovl"),
        "{listed}"
    );

    // A configuration a schedule uses cannot be deleted.
    let (st, err) = api
        .call(reqwest::Method::DELETE, "/v1/configs/c", None)
        .await;
    assert_eq!(st, 409, "{err}");
    let msg = err["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("catch") && msg.contains("ovl"), "{err}");

    // Bad input names the field and creates nothing.
    for (body, field) in [
        (
            json!({"id": "b", "config": "c", "cron": "61 * * * *"}),
            "cron",
        ),
        (
            json!({"id": "b", "config": "c", "cron": "@daily", "timezone": "Mars/Base"}),
            "timezone",
        ),
        (json!({"id": "b", "config": "c", "every": "500ms"}), "every"),
        (json!({"id": "b", "config": "nope", "every": 5}), "config"),
        (json!({"id": "b", "config": "c"}), "cron"),
        (
            json!({"id": "b", "config": "c", "every": 5, "max_runs": 0}),
            "max_runs",
        ),
        (json!({"id": "b/..", "config": "c", "every": 5}), "id"),
    ] {
        let (st, err) = api.post("/v1/schedules", body).await;
        assert_eq!(st, 400, "{err}");
        let msg = err["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.starts_with(field), "{field}: {err}");
    }
    let (_, list) = api.get("/v1/schedules").await;
    assert_eq!(
        list["schedules"].as_array().map(Vec::len),
        Some(2),
        "{list}"
    );
    let (st, _) = api
        .call(reqwest::Method::DELETE, "/v1/schedules/catch", None)
        .await;
    assert_eq!(st, 204);
}
