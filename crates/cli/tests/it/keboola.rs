//! Keboola compatibility: a component written with the `keboola-component`
//! Python library runs unchanged, twice, from a configuration, with its
//! state carried over. The image is a debootstrapped Debian with the library
//! pip-installed (scripts/images.sh).

use crate::util::*;
use serde_json::json;

const COMPONENT: &str = r#"
import csv
import os
from keboola.component import CommonInterface

ci = CommonInterface()
params = ci.configuration.parameters
state = ci.get_state_file() or {}
runs = int(state.get("runs", 0)) + 1
tables = {os.path.basename(t.full_path): t for t in ci.get_input_tables_definitions()}
src = tables["people.csv"]
out = ci.create_out_table_definition("people_out.csv", destination="out.c-kbc.people", incremental=True, primary_key=["id"])
with open(src.full_path) as f, open(out.full_path, "w", newline="") as o:
    r = csv.DictReader(f)
    w = csv.DictWriter(o, fieldnames=list(r.fieldnames) + ["run"])
    w.writeheader()
    for row in r:
        row["run"] = runs
        w.writerow(row)
ci.write_manifest(out)
ci.write_state_file({"runs": runs})
print(f"run {runs}: {params['greeting']}, columns {src.columns}")
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_keboola_component_runs_unchanged_with_state_carried_over() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let (status, _) = api
        .import(
            "in.c-main.people",
            "primary_key=id",
            "id,name\n1,ann\n2,bob\n",
        )
        .await;
    assert_eq!(status, 201);
    let spec = json!({
        "image": "gantry-test/python:1",
        "command": ["python3", "-c", COMPONENT],
        "parameters": {"greeting": "hello", "#api_token": "kbc-secret-123"},
        "storage": {"input": {"tables": [{"source": "in.c-main.people", "destination": "people.csv"}]}},
        "limits": {"memory": "256m"},
    });
    let (status, cfg) = api
        .post("/v1/configs", json!({"id": "kbc-people", "spec": spec}))
        .await;
    assert_eq!(status, 201, "{cfg}");

    for run in 1..=2 {
        let (status, job) = api.post("/v1/jobs", json!({"config": "kbc-people"})).await;
        assert_eq!(status, 201);
        let job = api.wait(job["id"].as_str().expect("id")).await;
        assert_eq!(
            job["status"],
            "succeeded",
            "run {run}: {job} / {:?}",
            api.events(job["id"].as_str().expect("id")).await
        );
        let out = api
            .messages(job["id"].as_str().expect("id"), "stdout")
            .await
            .join("\n");
        assert!(
            out.contains(&format!("run {run}: hello, columns ['id', 'name']")),
            "{out}"
        );
        let (_, state) = api.get("/v1/configs/kbc-people/state").await;
        assert_eq!(state, json!({"runs": run}));
        // Incremental with a primary key: the same ids, the newest run.
        assert_eq!(
            api.rows("out.c-kbc.people").await,
            vec![
                "id,name,run".to_string(),
                format!("1,ann,{run}"),
                format!("2,bob,{run}")
            ]
        );
    }
    let versions = api.versions("out.c-kbc.people").await;
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["primary_key"], json!(["id"]));
}
