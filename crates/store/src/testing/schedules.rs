//! Schedule ticks: exactly one job per tick however many schedulers race,
//! on one server or two.

use super::{new_job, project, Backend};
use crate::{Fire, FireTick, Fired, NewSchedule, Trigger};
use gantry_core::schedule::Overlap;
use gantry_core::{ConfigId, ScheduleId};
use serde_json::json;

pub async fn racing_schedulers_fire_each_tick_once(b: &dyn Backend) {
    let store = b.store();
    let servers = [store.clone(), b.peer().await];
    let cfg: ConfigId = "c".parse().expect("id");
    store
        .create_config(&project(), &cfg, &json!({"image": "x"}))
        .await
        .expect("config");
    let id: ScheduleId = "s".parse().expect("id");
    store
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
    for tick in [1000i64, 2000, 3000] {
        let mut racers = Vec::new();
        for i in 0..6 {
            let s = servers[i % 2].clone();
            let id = id.clone();
            let cfg = cfg.clone();
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
        let mut jobs = 0;
        for r in racers {
            match r.await.expect("join") {
                Fired::Job(_) => jobs += 1,
                Fired::Lost => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(jobs, 1, "tick {tick}");
    }
    let s = servers[1].get_schedule(&project(), &id).await.expect("get");
    assert_eq!(s.runs, 3);
    assert_eq!(s.next_tick, Some(4000));
    assert_eq!(s.recent.len(), 3);
    // A configuration in use cannot be deleted.
    let err = store
        .delete_config(&project(), &cfg)
        .await
        .expect_err("in use");
    assert!(err.to_string().contains("used by schedules: s"), "{err}");
}
