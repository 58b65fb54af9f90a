//! Schedules and pipeline runs with two servers (two `PgStore`s) on one
//! database: every tick makes one job, and every task of a run one job,
//! whichever server gets there and however often both try.

use crate::open_pg;
use gantry_core::schedule::Overlap;
use gantry_core::{ConfigId, PipelineId, ScheduleId};
use gantry_store::testing::{new_job, project};
use gantry_store::{Fire, FireTick, Fired, NewSchedule, Trigger, TriggerStore};
use gantry_store_postgres::PgStore;
use serde_json::json;
use std::sync::Arc;

async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

async fn count_jobs(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT COUNT(*) FROM jobs", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_fire_each_due_tick_once() {
    let pg = open_pg().await;
    let other = Arc::new(PgStore::connect(&pg.url).await.expect("second server"));
    let servers = [pg.store.clone(), other];
    let cfg: ConfigId = "c".parse().expect("id");
    gantry_store::ConfigStore::create_config(
        servers[0].as_ref(),
        &project(),
        &cfg,
        &json!({"image": "x"}),
    )
    .await
    .expect("config");
    let id: ScheduleId = "s".parse().expect("id");
    servers[0]
        .create_schedule(
            &project(),
            NewSchedule {
                id: id.clone(),
                config_id: Some(cfg.clone()),
                pipeline_id: None,
                doc: json!({"config": "c", "every": 1}),
                next_tick: Some(1000),
                max_runs: None,
                overlap: Overlap::Allow,
            },
        )
        .await
        .expect("schedule");
    let ticks = 15i64;
    for n in 1..=ticks {
        let tick = n * 1000;
        let mut racers = Vec::new();
        for i in 0..8 {
            let s = servers[i % 2].clone();
            let (id, cfg) = (id.clone(), cfg.clone());
            racers.push(tokio::spawn(async move {
                let mut job = new_job(1);
                job.config_id = Some(cfg);
                job.trigger = Some(Trigger::Schedule {
                    id: id.clone(),
                    tick,
                });
                s.fire_tick(FireTick {
                    project: project(),
                    id,
                    expected: tick,
                    fire: Some((tick, Fire::Job(job))),
                    missed: None,
                    next: Some(tick + 1000),
                })
                .await
                .expect("fire")
            }));
        }
        let mut made = 0;
        for r in racers {
            match r.await.expect("join") {
                Fired::Job(_) => made += 1,
                Fired::Lost => {}
                other => panic!("tick {tick}: {other:?}"),
            }
        }
        assert_eq!(made, 1, "tick {tick}");
    }
    let c = sql(&pg.url).await;
    assert_eq!(count_jobs(&c).await, ticks);
    let s = servers[1].get_schedule(&project(), &id).await.expect("get");
    assert_eq!(s.runs, ticks as u64);
    assert_eq!(s.next_tick, Some((ticks + 1) * 1000));
}

async fn race_advance(servers: &[Arc<PgStore>; 2]) {
    let mut racers = Vec::new();
    for i in 0..8 {
        let s = servers[i % 2].clone();
        racers.push(tokio::spawn(async move {
            s.advance_pipeline_runs().await.expect("advance")
        }));
    }
    for r in racers {
        r.await.expect("join");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_advancing_runs_make_each_tasks_job_once() {
    let pg = open_pg().await;
    let other = Arc::new(PgStore::connect(&pg.url).await.expect("second server"));
    let servers = [pg.store.clone(), other];
    let cfg: ConfigId = "c".parse().expect("id");
    gantry_store::ConfigStore::create_config(
        servers[0].as_ref(),
        &project(),
        &cfg,
        &json!({"image": "x"}),
    )
    .await
    .expect("config");
    let pid: PipelineId = "p".parse().expect("id");
    let task = json!({"config": "c"});
    servers[0]
        .put_pipeline(
            &project(),
            &pid,
            &json!({"phases": [{"tasks": [task, task]}, {"tasks": [task, task]}]}),
            std::slice::from_ref(&cfg),
            true,
        )
        .await
        .expect("pipeline");
    let run = servers[0]
        .start_pipeline_run(&project(), &pid)
        .await
        .expect("run");
    let c = sql(&pg.url).await;
    assert_eq!(count_jobs(&c).await, 2, "the first phase's jobs");
    race_advance(&servers).await;
    assert_eq!(count_jobs(&c).await, 2, "nothing new while they run");
    c.execute("UPDATE jobs SET status = 'succeeded'", &[])
        .await
        .expect("end phase 0");
    race_advance(&servers).await;
    race_advance(&servers).await;
    assert_eq!(count_jobs(&c).await, 4, "the second phase's jobs, once");
    c.execute("UPDATE jobs SET status = 'succeeded'", &[])
        .await
        .expect("end phase 1");
    race_advance(&servers).await;
    let done = servers[1]
        .get_pipeline_run(&project(), &run.id)
        .await
        .expect("get run");
    assert_eq!(done.status, "succeeded");
    assert_eq!(count_jobs(&c).await, 4);
    let mut jobs: Vec<_> = done.tasks.iter().filter_map(|t| t.job_id).collect();
    jobs.sort();
    jobs.dedup();
    assert_eq!(jobs.len(), 4, "{:?}", done.tasks);
}
