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

// ------------------------------------------------------------------------
// Real components, built as Keboola's component template lays them out, run
// against functional test cases in the keboola-datadirtest layout
// (tests/fixtures/keboola/cases/<case>/source/data in,
// expected/data/out compared, file by file).

use std::path::{Path, PathBuf};
use std::process::Command;

const KBC_IMAGE: &str = "gantry-test/kbc-component:1";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keboola")
}

/// Builds the component image (`FROM gantry-test/python:1`, `WORKDIR
/// /code/`, a relative CMD) with a local `docker build`, again only when its
/// sources changed (their hash is a label of the image).
fn ensure_component_image() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ensure_images();
    ONCE.call_once(|| {
        use std::hash::{Hash, Hasher};
        let dir = fixtures().join("component");
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for f in ["Dockerfile", "src/component.py"] {
            std::fs::read(dir.join(f))
                .expect("component source")
                .hash(&mut h);
        }
        let hash = format!("{:016x}", h.finish());
        let have = docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"gantry.test.hash\"}}",
            KBC_IMAGE,
        ]);
        if have == hash {
            return;
        }
        let st = Command::new("docker")
            .args([
                "build",
                "-q",
                "--label",
                &format!("gantry.test.hash={hash}"),
            ])
            .args(["-t", KBC_IMAGE])
            .arg(&dir)
            .env("DOCKER_BUILDKIT", "0")
            .status()
            .expect("docker build");
        assert!(st.success(), "docker build of {KBC_IMAGE} failed");
    });
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Files under `dir`, relative, sorted.
fn relative_files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = files_under(dir)
        .into_iter()
        .map(|p| {
            p.strip_prefix(dir)
                .expect("under")
                .to_string_lossy()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

/// Compares like keboola-datadirtest: the same files in `out/`, and each
/// with the same contents (JSON files as JSON, the rest byte for byte).
fn assert_out_matches(case: &str, actual_out: &Path) {
    let expected_out = fixtures()
        .join("cases")
        .join(case)
        .join("expected/data/out");
    assert_eq!(
        relative_files(actual_out),
        relative_files(&expected_out),
        "{case}: files in out/"
    );
    for f in relative_files(&expected_out) {
        let want = std::fs::read(expected_out.join(&f)).expect("expected");
        let got = std::fs::read(actual_out.join(&f)).expect("actual");
        if f.ends_with(".json") || f.ends_with(".manifest") {
            let want: serde_json::Value = serde_json::from_slice(&want).expect("json");
            let got: serde_json::Value = serde_json::from_slice(&got).expect("json");
            assert_eq!(got, want, "{case}: {f}");
        } else {
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{case}: {f}"
            );
        }
    }
}

/// A spec running the component image on a case's `config.json`: the
/// image's own WORKDIR and CMD (no `command`), parameters and storage as
/// the case gives them.
fn case_spec(case: &str) -> serde_json::Value {
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            fixtures()
                .join("cases")
                .join(case)
                .join("source/data/config.json"),
        )
        .expect("config.json"),
    )
    .expect("json");
    json!({
        "image": KBC_IMAGE,
        "component_id": "gantry-test.orders",
        "parameters": config["parameters"],
        "storage": config["storage"],
        "pull": "never",
    })
}

/// `gantry run` on a copy of the case's data folder, the way an author runs
/// a functional test locally: the image keeps its WORKDIR and relative CMD,
/// leftovers in out/ are removed, and files the job's user does not own
/// (root's, mode 0600, in a 0700 folder) are readable to it.
#[test]
fn datadirtest_case_runs_through_gantry_run_with_the_images_workdir() {
    ensure_component_image();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    copy_tree(&fixtures().join("cases/orders/source/data"), &data);
    // Root-owned (the tests run as root) and private: the job runs as 65534.
    use std::os::unix::fs::PermissionsExt;
    let private = std::fs::Permissions::from_mode(0o600);
    std::fs::set_permissions(data.join("in/tables/orders.csv"), private.clone()).expect("chmod");
    std::fs::set_permissions(data.join("out/tables/leftover.csv"), private).expect("chmod");
    std::fs::set_permissions(
        data.join("in/tables"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    let spec = tmp.path().join("spec.json");
    std::fs::write(&spec, case_spec("orders").to_string()).expect("spec");
    let home = tempfile::tempdir().expect("home");
    let out = Command::new(bin())
        .args(["run", spec.to_str().expect("path"), "--data"])
        .arg(&data)
        .env("GANTRY_HOME", home.path())
        .output()
        .expect("gantry run");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("removed 1 entries an earlier run left in"),
        "{}",
        stderr(&out)
    );
    // The manifest the library wrote is Gantry's to read, not the case's.
    let manifest = data.join("out/tables/orders_out.csv.manifest");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    assert_eq!(m["destination"], "out.c-shop.orders-labelled", "{m}");
    assert_eq!(m["primary_key"], json!(["id"]), "{m}");
    std::fs::remove_file(manifest).expect("rm manifest");
    assert_out_matches("orders", &data.join("out"));
}

/// The same case through a server: its input table comes from Storage, its
/// outputs and state go back to Storage, and what Storage then holds is
/// compared with the case's expected out/.
#[tokio::test(flavor = "multi_thread")]
async fn datadirtest_case_runs_through_the_server_with_storage_mapping() {
    ensure_component_image();
    let g = Gantry::up(&[]);
    let api = g.client();
    let source = fixtures().join("cases/orders/source/data");
    let csv = std::fs::read_to_string(source.join("in/tables/orders.csv")).expect("csv");
    let (status, body) = api.import("in.c-shop.orders", "", &csv).await;
    assert_eq!(status, 201, "{body}");
    let (status, cfg) = api
        .post(
            "/v1/configs",
            json!({"id": "orders", "spec": case_spec("orders")}),
        )
        .await;
    assert_eq!(status, 201, "{cfg}");
    let (status, job) = api.post("/v1/jobs", json!({"config": "orders"})).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let job = api.wait(&id).await;
    assert_eq!(
        job["status"],
        "succeeded",
        "{job} {:?}",
        api.events(&id).await
    );

    // Rebuild out/ from what Storage holds, then compare as the framework does.
    let got = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(got.path().join("tables")).expect("mkdir");
    std::fs::write(
        got.path().join("tables/orders_out.csv"),
        api.export("out.c-shop.orders-labelled").await,
    )
    .expect("write");
    let (_, state) = api.get("/v1/configs/orders/state").await;
    std::fs::write(got.path().join("state.json"), state.to_string()).expect("write");
    assert_out_matches("orders", got.path());
    let versions = api.versions("out.c-shop.orders-labelled").await;
    assert_eq!(versions[0]["primary_key"], json!(["id"]));
}

/// Every KBC_* variable Keboola sets and config.json key it writes, read
/// back by a component through the keboola-component library, in a job
/// of a configuration through the server.
#[tokio::test(flavor = "multi_thread")]
async fn a_component_reads_back_every_kbc_variable_and_config_key() {
    ensure_component_image();
    let g = Gantry::up(&[]);
    let api = g.client();
    let (status, _) = api
        .import("in.c-shop.orders", "", "id,amount\n1,10\n")
        .await;
    assert_eq!(status, 201);
    let (status, cfg) = api
        .post(
            "/v1/configs",
            json!({"id": "reporter", "spec": {
                "image": KBC_IMAGE,
                "pull": "never",
                "component_id": "gantry-test.orders",
                // Written out of alphabetical order on purpose.
                "parameters": {"report": true, "zeta": 1, "alpha": 2, "destination": "out.c-shop.typed", "mid": 3},
                "image_parameters": {"region": "eu"},
                "authorization": {"oauth_api": {"credentials": {
                    "id": "cred-1", "appKey": "app-key-1", "#appSecret": "app-secret-1",
                    "#data": "{\"access_token\": \"tok-1\"}", "oauthVersion": "2.0"}}},
                "storage": {
                    "input": {"tables": [{"source": "in.c-shop.orders", "destination": "orders.csv",
                                          "column_types": [{"source": "id", "type": "INTEGER"}]}],
                              "read_only_storage_access": true},
                    "output": {"data_type_support": "hints"}
                }
            }}),
        )
        .await;
    assert_eq!(status, 201, "{cfg}");
    // Sealed at rest like parameters.
    let (_, shown) = api.get("/v1/configs/reporter").await;
    assert!(!shown.to_string().contains("app-secret-1"), "{shown}");

    let (status, job) = api.post("/v1/jobs", json!({"config": "reporter"})).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let job = api.wait(&id).await;
    assert_eq!(
        job["status"],
        "succeeded",
        "{job} {:?}",
        api.events(&id).await
    );
    let lines = api.messages(&id, "stdout").await;
    let line = lines
        .iter()
        .find_map(|l| l.strip_prefix("REPORT "))
        .unwrap_or_else(|| panic!("no report in {lines:?}"));
    let r: serde_json::Value = serde_json::from_str(line).expect("report json");

    assert_eq!(r["cwd"], "/code", "the image's WORKDIR");
    let env = &r["env"];
    let port = g.url.rsplit(':').next().expect("port");
    assert_eq!(env["KBC_PROJECTID"], "1", "{env}");
    assert_eq!(env["KBC_PROJECTNAME"], "default");
    assert_eq!(env["KBC_STACKID"], format!("127.0.0.1:{port}"));
    assert_eq!(env["KBC_URL"], g.url);
    assert_eq!(env["KBC_COMPONENTID"], "gantry-test.orders");
    assert_eq!(env["KBC_CONFIGID"], "reporter");
    assert_eq!(env["KBC_BRANCHID"], "default");
    assert_eq!(env["KBC_RUNID"], id);
    assert_eq!(env["KBC_DATADIR"], "/data/");
    assert_eq!(env["KBC_DATA_TYPE_SUPPORT"], "hints");
    assert_eq!(env["KBC_PROJECT_FEATURE_GATES"], "queuev2");
    let token_id = env["KBC_TOKENID"].as_str().expect("token id");
    assert!(
        token_id.len() == 12 && token_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{env}"
    );
    let (_, tokens) = api.get("/v1/tokens").await;
    let desc = tokens
        .as_array()
        .or_else(|| tokens["tokens"].as_array())
        .and_then(|l| l.iter().find(|t| t["id"] == token_id))
        .map(|t| t["description"].clone())
        .unwrap_or_else(|| panic!("token {token_id} in {tokens}"));
    assert_eq!(env["KBC_TOKENDESC"], desc);
    assert!(env.get("KBC_CONFIGROWID").is_none(), "no rows here: {env}");
    // The library sees the same.
    let lib = &r["library"];
    assert_eq!(lib["project_id"], "1");
    assert_eq!(lib["stack_id"], format!("127.0.0.1:{port}"));
    assert_eq!(lib["component_id"], "gantry-test.orders");
    assert_eq!(lib["token_id"], token_id);
    assert_eq!(lib["data_type_support"], "hints");

    assert_eq!(
        r["config_keys"],
        json!([
            "parameters",
            "storage",
            "image_parameters",
            "action",
            "authorization"
        ])
    );
    assert_eq!(
        r["parameter_order"],
        json!(["report", "zeta", "alpha", "destination", "mid"])
    );
    assert_eq!(r["image_parameters"], json!({"region": "eu"}));
    assert_eq!(r["action"], "run");
    assert_eq!(r["storage"]["output"]["data_type_support"], "hints");
    assert_eq!(r["storage"]["input"]["read_only_storage_access"], true);
    assert_eq!(
        r["storage"]["input"]["tables"][0]["column_types"],
        json!([{"source": "id", "type": "INTEGER"}])
    );
    assert_eq!(
        r["oauth"],
        json!({"appKey": "app-key-1", "appSecret_len": 12, "data_keys": ["access_token"]})
    );
    // Secrets of the authorization are hidden in the log like parameters'.
    for l in api.messages(&id, "stdout").await {
        assert!(!l.contains("app-secret-1"), "{l}");
    }

    // Keys accepted but not acted on are said so on the job, never silently.
    let system = api.messages(&id, "system").await.join("\n");
    assert!(
        system.contains("storage.input.tables[0].column_types is ignored")
            && system.contains("storage.input.read_only_storage_access is ignored"),
        "{system}"
    );

    // The outputs are stored as in a plain run.
    assert_eq!(
        api.rows("out.c-shop.typed").await,
        vec!["id,label,double".to_string(), "1,1,20".to_string()]
    );
    let versions = api.versions("out.c-shop.typed").await;
    assert_eq!(versions[0]["primary_key"], json!(["id"]));
}

/// Sync actions: the configuration's image run at once with `action` set,
/// answering JSON; exit 1 is a 400 with the component's message, any other
/// failure a 500 without internals; the CLI prints the answer.
#[tokio::test(flavor = "multi_thread")]
async fn sync_actions_answer_json_and_fail_with_the_components_message() {
    ensure_component_image();
    let g = Gantry::up(&[]);
    let api = g.client();
    let mut spec = case_spec("orders");
    spec["parameters"]["#key"] = json!("shop-key-1");
    let (status, cfg) = api
        .post("/v1/configs", json!({"id": "orders", "spec": spec}))
        .await;
    assert_eq!(status, 201, "{cfg}");

    let (status, answer) = api
        .post("/v1/configs/orders/actions/listColumns", json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"columns": [
            {"value": "id", "label": "ID"},
            {"value": "label", "label": "LABEL"},
            {"value": "double", "label": "DOUBLE"}],
            "prefix": "order-", "staged": [], "cwd": "/code"})
    );

    let (status, err) = api
        .post("/v1/configs/orders/actions/testConnection", json!({}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "action_failed");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot connect to the shop: the key is wrong")),
        "{err}"
    );

    let (status, err) = api
        .post("/v1/configs/orders/actions/crash", json!({}))
        .await;
    assert_eq!(status, 500, "{err}");
    assert!(!err.to_string().contains("internal detail"), "{err}");

    let (status, err) = api.post("/v1/configs/orders/actions/run", json!({})).await;
    assert_eq!(status, 400, "{err}");
    let (status, _) = api
        .post("/v1/configs/nope/actions/listColumns", json!({}))
        .await;
    assert_eq!(status, 404);

    // No job was made by any of it.
    let (_, jobs) = api.get("/v1/jobs").await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0), "{jobs}");

    let out = g.cli(&[
        "--output",
        "json",
        "configs",
        "action",
        "orders",
        "listColumns",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(printed["prefix"], "order-");
    let out = g.cli(&["configs", "action", "orders", "testConnection"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the key is wrong"),
        "{}",
        stderr(&out)
    );
}

/// A processor that keeps the rows of every input table whose `amount` is
/// at least `min_amount` (Keboola's processors read `in/`, write `out/`,
/// and carry manifests along).
const FILTER_PROCESSOR: &str = r#"
import csv, json, os, shutil
cfg = json.load(open("/data/config.json"))
low = cfg["parameters"]["min_amount"]
for name in os.listdir("/data/in/tables"):
    src, dst = f"/data/in/tables/{name}", f"/data/out/tables/{name}"
    if name.endswith(".manifest"):
        shutil.copyfile(src, dst)
        continue
    with open(src) as f, open(dst, "w", newline="") as o:
        r = csv.DictReader(f)
        w = csv.DictWriter(o, fieldnames=r.fieldnames, lineterminator="\n")
        w.writeheader()
        for row in r:
            if int(row["amount"]) >= low:
                w.writerow(row)
print(f"kept rows with amount >= {low}")
"#;

/// A processor that adds a `checked` column to every output table (or
/// fails with exit 1 when asked to).
const STAMP_PROCESSOR: &str = r#"
import csv, json, os, shutil, sys
cfg = json.load(open("/data/config.json"))
if cfg["parameters"].get("fail"):
    print("stamp: the stamp ran out of ink", file=sys.stderr)
    sys.exit(1)
for name in os.listdir("/data/in/tables"):
    src, dst = f"/data/in/tables/{name}", f"/data/out/tables/{name}"
    if name.endswith(".manifest"):
        shutil.copyfile(src, dst)
        continue
    with open(src) as f, open(dst, "w", newline="") as o:
        r = csv.reader(f)
        w = csv.writer(o, lineterminator="\n")
        w.writerow(next(r) + ["checked"])
        for row in r:
            w.writerow(row + [cfg["parameters"]["stamp"]])
"#;

/// Processors before and after a component: the filter's out/ is the
/// component's in/, the component's out/ the stamp's in/; each step is in
/// the log and on the attempt; a failing processor fails the job naming it,
/// and nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn processors_run_before_and_after_the_component_on_the_same_data_folder() {
    ensure_component_image();
    let g = Gantry::up(&[]);
    let api = g.client();
    let csv =
        std::fs::read_to_string(fixtures().join("cases/orders/source/data/in/tables/orders.csv"))
            .expect("csv");
    let (status, _) = api.import("in.c-shop.orders", "", &csv).await;
    assert_eq!(status, 201);
    let processor = |code: &str, params: serde_json::Value| {
        json!({"definition": {"component": "gantry-test/python", "tag": "1"},
               "command": ["python3", "-c", code], "parameters": params})
    };
    let mut spec = case_spec("orders");
    spec["processors"] = json!({
        "before": [processor(FILTER_PROCESSOR, json!({"min_amount": 8}))],
        "after": [processor(STAMP_PROCESSOR, json!({"stamp": "ok"}))],
    });
    let job = api.run(spec.clone()).await;
    let id = job["id"].as_str().expect("id").to_string();
    assert_eq!(
        job["status"],
        "succeeded",
        "{job} {:?}",
        api.events(&id).await
    );
    assert_eq!(
        api.rows("out.c-shop.orders-labelled").await,
        vec![
            "id,label,double,checked".to_string(),
            "1,order-1,20,ok".to_string(),
            "2,order-2,50,ok".to_string()
        ]
    );
    let system = api.messages(&id, "system").await.join("\n");
    for step in [
        "processors.before[0] (gantry-test/python:1) started",
        "processors.before[0] (gantry-test/python:1) ended: succeeded",
        "component gantry-test/kbc-component:1 started",
        "processors.after[0] (gantry-test/python:1) ended: succeeded",
    ] {
        assert!(system.contains(step), "{step} in {system}");
    }
    assert!(api
        .messages(&id, "stdout")
        .await
        .contains(&"kept rows with amount >= 8".to_string()));
    let (_, shown) = api.get(&format!("/v1/jobs/{id}")).await;
    let steps: Vec<&str> = shown["limits"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("steps in {shown}"))
        .iter()
        .map(|s| s["step"].as_str().expect("step"))
        .collect();
    assert_eq!(
        steps,
        ["processors.before[0]", "component", "processors.after[0]"]
    );

    spec["processors"]["after"][0]["parameters"] = json!({"fail": true});
    spec["parameters"]["destination"] = json!("out.c-shop.never");
    let job = api.run(spec).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "user_error");
    let message = job["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("processors.after[0] (gantry-test/python:1): ")
            && message.contains("the stamp ran out of ink"),
        "{message}"
    );
    let (status, _) = api.get("/v1/tables/out.c-shop.never").await;
    assert_eq!(status, 404, "nothing stored");
}

/// Configuration rows, as Keboola runs them: one job runs the enabled rows
/// one after another, each with its parameters over the configuration's,
/// its own mapping and state, and `KBC_CONFIGROWID`; a failing row fails the
/// job naming the row, and no row's outputs or state are kept.
#[tokio::test(flavor = "multi_thread")]
async fn configuration_rows_run_one_after_another_with_their_own_state() {
    ensure_component_image();
    let g = Gantry::up(&[]);
    let api = g.client();
    let csv =
        std::fs::read_to_string(fixtures().join("cases/orders/source/data/in/tables/orders.csv"))
            .expect("csv");
    let (status, _) = api.import("in.c-shop.orders", "", &csv).await;
    assert_eq!(status, 201);
    let mut spec = case_spec("orders");
    spec["parameters"] = json!({"prefix": "base-", "report": true});
    spec["rows"] = json!([
        {"id": "cz", "name": "Czech shop",
         "parameters": {"prefix": "cz-", "destination": "out.c-shop.cz", "#key": "row-secret-1"}},
        {"id": "off", "is_disabled": true, "parameters": {"destination": "out.c-shop.off"}},
        {"id": "sk", "parameters": {"prefix": "sk-", "destination": "out.c-shop.sk"},
         "storage": {"input": {"tables": [{"source": "in.c-shop.orders", "destination": "orders.csv",
                                           "where_column": "id", "where_values": ["2"]}]}}},
    ]);
    let (status, cfg) = api
        .post("/v1/configs", json!({"id": "shops", "spec": spec.clone()}))
        .await;
    assert_eq!(status, 201, "{cfg}");
    assert!(!cfg.to_string().contains("row-secret-1"), "sealed: {cfg}");

    for run in 1..=2 {
        let (status, job) = api.post("/v1/jobs", json!({"config": "shops"})).await;
        assert_eq!(status, 201, "{job}");
        let id = job["id"].as_str().expect("id").to_string();
        let job = api.wait(&id).await;
        assert_eq!(
            job["status"],
            "succeeded",
            "{job} {:?}",
            api.events(&id).await
        );
        let reports: Vec<serde_json::Value> = api
            .messages(&id, "stdout")
            .await
            .iter()
            .filter_map(|l| l.strip_prefix("REPORT "))
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let rows: Vec<&str> = reports
            .iter()
            .map(|r| r["env"]["KBC_CONFIGROWID"].as_str().expect("row id"))
            .collect();
        assert_eq!(rows, ["cz", "sk"], "in order, the disabled row skipped");
        assert_eq!(reports[0]["library"]["config_row_id"], "cz");
        assert_eq!(reports[0]["env"]["KBC_CONFIGID"], "shops");
        let system = api.messages(&id, "system").await.join("\n");
        assert!(
            system.contains("row cz started (1 of 2)")
                && system.contains("row sk started (2 of 2)"),
            "{system}"
        );
        assert_eq!(
            api.rows("out.c-shop.cz").await,
            vec!["id,label,double", "1,cz-1,20", "2,cz-2,50", "3,cz-3,14"]
        );
        assert_eq!(
            api.rows("out.c-shop.sk").await,
            vec!["id,label,double", "2,sk-2,50"]
        );
        let (_, state) = api.get("/v1/configs/shops/state").await;
        assert_eq!(
            state,
            json!({"rows": {"cz": {"last_id": "3", "runs": run}, "sk": {"last_id": "2", "runs": run}}})
        );
    }
    let (status, _) = api.get("/v1/tables/out.c-shop.off").await;
    assert_eq!(status, 404, "a disabled row does not run");

    // A failing row after a good one: the job fails naming it, and neither
    // the good row's new version nor any state is kept.
    spec["rows"][2]["parameters"]["fail"] = json!("the sk shop is closed");
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            "/v1/configs/shops",
            Some(json!({"spec": spec})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, job) = api.post("/v1/jobs", json!({"config": "shops"})).await;
    let job = api.wait(job["id"].as_str().expect("id")).await;
    assert_eq!(job["status"], "failed", "{job}");
    let message = job["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("row sk: ") && message.contains("the sk shop is closed"),
        "{message}"
    );
    assert_eq!(api.versions("out.c-shop.cz").await.len(), 2);
    let (_, state) = api.get("/v1/configs/shops/state").await;
    assert_eq!(state["rows"]["cz"]["runs"], 2);
}

/// Typed tables: column types and descriptions a component writes through
/// the library — in the legacy manifest (`column_metadata`) and in the
/// newer one (`schema`, with `data_type_support: authoritative`) — are
/// stored with the table version, and a component reading the table as its
/// input gets them from its input manifest.
#[tokio::test(flavor = "multi_thread")]
async fn typed_tables_round_trip_through_storage_in_both_manifest_formats() {
    ensure_component_image();
    let g = Gantry::up(&[]);
    let api = g.client();
    let (status, _) = api
        .import("in.c-shop.orders", "", "id,amount\n1,10\n2,25\n")
        .await;
    assert_eq!(status, 201);
    let write = |destination: &str, support: &str| {
        let mut spec = case_spec("orders");
        spec["parameters"] = json!({"typed": true, "destination": destination});
        spec["storage"]["output"] = json!({"data_type_support": support});
        spec
    };
    for (table, support) in [
        ("out.c-shop.legacy", "none"),
        ("out.c-shop.typed", "authoritative"),
    ] {
        let job = api.run(write(table, support)).await;
        let id = job["id"].as_str().expect("id");
        assert_eq!(
            job["status"],
            "succeeded",
            "{job} {:?}",
            api.events(id).await
        );
        let versions = api.versions(table).await;
        let meta = &versions[0]["metadata"];
        let column = |c: &str, key: &str| {
            meta["column_metadata"][c]
                .as_array()
                .and_then(|l| l.iter().find(|e| e["key"] == key))
                .map(|e| e["value"].clone())
                .unwrap_or(serde_json::Value::Null)
        };
        assert_eq!(
            column("id", "KBC.datatype.basetype"),
            "INTEGER",
            "{support}: {meta}"
        );
        assert_eq!(
            column("label", "KBC.datatype.basetype"),
            "STRING",
            "{support}: {meta}"
        );
        if support == "authoritative" {
            // Only the newer manifest has a place for a length.
            assert_eq!(
                column("label", "KBC.datatype.length"),
                "64",
                "{support}: {meta}"
            );
        }
        assert_eq!(
            column("label", "KBC.description"),
            "the order's label",
            "{support}: {meta}"
        );
        assert_eq!(
            column("double", "KBC.datatype.basetype"),
            "NUMERIC",
            "{support}: {meta}"
        );
        assert!(
            meta["metadata"]
                .as_array()
                .is_some_and(|l| l.iter().any(|e| e["value"] == "labelled orders")),
            "{support}: {meta}"
        );
        assert_eq!(
            api.rows(table).await,
            vec!["id,label,double", "1,1,20", "2,2,50"],
            "{support}"
        );
    }

    // Read back as an input: the library finds the types in the manifest.
    for table in ["out.c-shop.legacy", "out.c-shop.typed"] {
        let mut spec = case_spec("orders");
        spec["parameters"] = json!({"report_types": true, "destination": "out.c-shop.reread"});
        spec["storage"]["input"]["tables"][0]["source"] = json!(table);
        let job = api.run(spec).await;
        let id = job["id"].as_str().expect("id").to_string();
        assert_eq!(
            job["status"], "failed",
            "orders.csv has no 'amount' column: {job}"
        );
        let types: serde_json::Value = api
            .messages(&id, "stdout")
            .await
            .iter()
            .find_map(|l| {
                l.strip_prefix("TYPES ")
                    .map(|t| serde_json::from_str(t).expect("json"))
            })
            .unwrap_or_else(|| panic!("no types printed for {table}"));
        assert_eq!(types["id"]["type"], "INTEGER", "{table}: {types}");
        assert_eq!(types["id"]["pk"], true, "{table}: {types}");
        assert_eq!(types["label"]["type"], "STRING", "{table}: {types}");
        assert_eq!(types["double"]["type"], "NUMERIC", "{table}: {types}");
    }
}

/// The author's loop against a server: `gantry run --config ID --stage`
/// runs a stored configuration locally with its state and its inputs
/// staged from the server's Storage (the job's manifests), and produces
/// what a job would; `--row` runs one row of a configuration with rows.
#[tokio::test(flavor = "multi_thread")]
async fn gantry_run_runs_a_stored_configuration_with_inputs_staged_from_the_server() {
    ensure_component_image();
    let g = Gantry::up(&[]);
    let api = g.client();
    let csv =
        std::fs::read_to_string(fixtures().join("cases/orders/source/data/in/tables/orders.csv"))
            .expect("csv");
    let (status, _) = api.import("in.c-shop.orders", "", &csv).await;
    assert_eq!(status, 201);
    let (status, cfg) = api
        .post(
            "/v1/configs",
            json!({"id": "orders", "spec": case_spec("orders")}),
        )
        .await;
    assert_eq!(status, 201, "{cfg}");
    // One job first, so the configuration has a state.
    let (_, job) = api.post("/v1/jobs", json!({"config": "orders"})).await;
    let job = api.wait(job["id"].as_str().expect("id")).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let data_arg = data.to_str().expect("path");
    let out = g.cli(&["run", "--config", "orders", "--stage", "--data", data_arg]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("staged 1 tables and 0 files"),
        "{}",
        stderr(&out)
    );
    let read_json = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(data.join(p)).expect(p)).expect("json")
    };
    assert_eq!(
        read_json("in/state.json"),
        json!({"last_id": "3", "runs": 1})
    );
    let manifest = read_json("in/tables/orders.csv.manifest");
    assert_eq!(manifest["id"], "in.c-shop.orders");
    assert_eq!(manifest["columns"], json!(["id", "amount"]));
    assert_eq!(manifest["rows_count"], 3);
    assert_eq!(
        read_json("out/state.json"),
        json!({"last_id": "3", "runs": 2})
    );
    assert_eq!(
        std::fs::read_to_string(data.join("out/tables/orders_out.csv")).expect("out"),
        std::fs::read_to_string(
            fixtures().join("cases/orders/expected/data/out/tables/orders_out.csv")
        )
        .expect("expected")
    );

    // One row of a configuration with rows, its own mapping and state.
    let mut spec = case_spec("orders");
    spec["parameters"] = json!({"report": true});
    spec["rows"] = json!([
        {"id": "cz", "parameters": {"prefix": "cz-", "destination": "out.c-shop.cz"}},
        {"id": "sk", "parameters": {"prefix": "sk-", "destination": "out.c-shop.sk"},
         "storage": {"input": {"tables": [{"source": "in.c-shop.orders", "destination": "orders.csv",
                                           "where_column": "id", "where_values": ["2"]}]}}},
    ]);
    let (status, cfg) = api
        .post("/v1/configs", json!({"id": "shops", "spec": spec}))
        .await;
    assert_eq!(status, 201, "{cfg}");
    let out = g.cli(&["run", "--config", "shops", "--stage", "--data", data_arg]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("run one with --row ID"),
        "{}",
        stderr(&out)
    );
    let out = g.cli(&[
        "run", "--config", "shops", "--row", "sk", "--stage", "--data", data_arg,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        std::fs::read_to_string(data.join("out/tables/orders_out.csv")).expect("out"),
        "id,label,double\n2,sk-2,50\n"
    );
    let report: serde_json::Value = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("REPORT "))
        .map(|l| serde_json::from_str(l).expect("json"))
        .expect("report");
    assert_eq!(report["env"]["KBC_CONFIGROWID"], "sk");
    assert_eq!(report["env"]["KBC_CONFIGID"], "shops");
    assert_eq!(read_json("in/state.json"), json!({}));
}

/// `gantry run --config ID --stage --commit` stores what the local run
/// produced through the API as a job would: the same table version (made by
/// `run`, noting the token) and the new state, which the next job reads; a
/// row's state goes to its place; a failed run commits nothing.
#[tokio::test(flavor = "multi_thread")]
async fn gantry_run_commit_makes_the_version_a_job_would() {
    ensure_component_image();
    let g = Gantry::up(&[]);
    let api = g.client();
    let csv =
        std::fs::read_to_string(fixtures().join("cases/orders/source/data/in/tables/orders.csv"))
            .expect("csv");
    let (status, _) = api.import("in.c-shop.orders", "", &csv).await;
    assert_eq!(status, 201);
    let mut spec = case_spec("orders");
    spec["rows"] =
        json!([{"id": "sk", "parameters": {"prefix": "sk-", "destination": "out.c-shop.sk"}}]);
    let (status, cfg) = api
        .post(
            "/v1/configs",
            json!({"id": "orders", "spec": case_spec("orders")}),
        )
        .await;
    assert_eq!(status, 201, "{cfg}");
    let (_, job) = api.post("/v1/jobs", json!({"config": "orders"})).await;
    let job = api.wait(job["id"].as_str().expect("id")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let table = "out.c-shop.orders-labelled";
    let by_job = api.export(table).await;

    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let data_arg = data.to_str().expect("path");
    let out = g.cli(&[
        "run", "--config", "orders", "--stage", "--commit", "--data", data_arg,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("committed to"), "{}", stderr(&out));
    let versions = api.versions(table).await;
    assert_eq!(versions.len(), 2, "{versions:?}");
    let (run_v, job_v) = (&versions[0], &versions[1]);
    assert_eq!(run_v["made_by"], "run");
    assert_eq!(job_v["made_by"], "job");
    let (_, tokens) = api.get("/v1/tokens").await;
    let token_id = tokens["tokens"][0]["id"]
        .as_str()
        .expect("token id")
        .to_string();
    let note = run_v["note"].as_str().expect("note");
    assert!(
        note.contains("from out/tables/orders_out.csv") && note.contains(token_id.as_str()),
        "{note}"
    );
    for key in ["columns", "primary_key", "rows", "loaded_rows"] {
        assert_eq!(run_v[key], job_v[key], "{key}");
    }
    assert_eq!(api.export(table).await, by_job);
    let (_, state) = api.get("/v1/configs/orders/state").await;
    assert_eq!(state, json!({"last_id": "3", "runs": 2}));
    // The next job reads the state the run committed.
    let (_, job) = api.post("/v1/jobs", json!({"config": "orders"})).await;
    api.wait(job["id"].as_str().expect("id")).await;
    let (_, state) = api.get("/v1/configs/orders/state").await;
    assert_eq!(state, json!({"last_id": "3", "runs": 3}));

    // A row's state goes to rows.<id>.
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            "/v1/configs/orders",
            Some(json!({"spec": spec})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let out = g.cli(&[
        "run", "--config", "orders", "--row", "sk", "--stage", "--commit", "--data", data_arg,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(api.rows("out.c-shop.sk").await.len(), 4);
    let (_, state) = api.get("/v1/configs/orders/state").await;
    assert_eq!(
        state["rows"]["sk"],
        json!({"last_id": "3", "runs": 1}),
        "{state}"
    );
    assert_eq!(state["runs"], 3, "{state}");

    // A failed run commits nothing.
    let mut failing = case_spec("orders");
    failing["parameters"]["fail"] = json!("no");
    failing["parameters"]["destination"] = json!("out.c-shop.never");
    let spec_path = tmp.path().join("failing.json");
    std::fs::write(&spec_path, failing.to_string()).expect("spec");
    let out = g.cli(&[
        "run",
        spec_path.to_str().expect("path"),
        "--stage",
        "--commit",
        "--data",
        data_arg,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was committed"),
        "{}",
        stderr(&out)
    );
    let (status, _) = api.get("/v1/tables/out.c-shop.never").await;
    assert_eq!(status, 404);
}

/// What `POST /v1/runs` is sent is untrusted like a container's `out/`:
/// paths outside `out/`, `..`, or a body that ends early are refused and
/// nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn committed_runs_refuse_paths_outside_out_and_broken_bodies() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let frame = |path: &str, body: &[u8], claimed: u64| {
        let mut v = (path.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(path.as_bytes());
        v.extend_from_slice(&claimed.to_be_bytes());
        v.extend_from_slice(body);
        v
    };
    let csv = b"id\n1\n";
    for (body, want) in [
        (frame("../escape.csv", csv, 5), "must not contain '..'"),
        (frame("tables/../../x.csv", csv, 5), "must not contain '..'"),
        (frame("/etc/passwd", csv, 5), "must be a relative path"),
        (frame("config.json", csv, 5), "is not a place in out/"),
        (frame("tables/a/b/c.csv", csv, 5), "is not a place in out/"),
        (frame("tables/t.csv", csv, 50), "ended early"),
    ] {
        let resp = api
            .req(reqwest::Method::POST, "/v1/runs")
            .body(body)
            .send()
            .await
            .expect("post");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("text");
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(want), "{want} in {text}");
    }
    let (_, tables) = api.get("/v1/tables").await;
    assert_eq!(
        tables["tables"].as_array().map(Vec::len),
        Some(0),
        "{tables}"
    );
    // A good one stores like a job's out/ would.
    let resp = api
        .req(reqwest::Method::POST, "/v1/runs")
        .body(frame("tables/out.c-x.t.csv", csv, 5))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(api.rows("out.c-x.t").await, vec!["id", "1"]);
}

/// Debug mode: a job run with `mode: debug` leaves its whole data folder as
/// a tar file in Storage, secrets sealed, which the author downloads and
/// replays with `gantry run`.
#[tokio::test(flavor = "multi_thread")]
async fn debug_mode_keeps_the_data_folder_in_storage_for_a_replay() {
    ensure_component_image();
    let g = Gantry::up(&[]);
    let api = g.client();
    let csv =
        std::fs::read_to_string(fixtures().join("cases/orders/source/data/in/tables/orders.csv"))
            .expect("csv");
    let (status, _) = api.import("in.c-shop.orders", "", &csv).await;
    assert_eq!(status, 201);
    let mut spec = case_spec("orders");
    spec["parameters"]["#key"] = json!("debug-secret-1");
    let (status, cfg) = api
        .post("/v1/configs", json!({"id": "orders", "spec": spec}))
        .await;
    assert_eq!(status, 201, "{cfg}");
    let out = g.cli(&["configs", "run", "orders", "--wait", "--debug"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let (_, files) = api.get("/v1/files?tag=debug").await;
    let file = &files["files"][0];
    let name = file["name"].as_str().expect("name");
    assert!(
        name.starts_with("debug-") && name.ends_with(".tar"),
        "{files}"
    );
    let tags: Vec<&str> = file["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        tags.contains(&"debug") && tags.iter().any(|t| t.starts_with("job-")),
        "{tags:?}"
    );

    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join(name);
    let id = file["id"].to_string();
    let out = g.cli(&[
        "files",
        "download",
        &id,
        "-o",
        archive.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = Command::new("tar")
        .args([
            "-xf",
            archive.to_str().expect("path"),
            "-C",
            tmp.path().to_str().expect("path"),
        ])
        .status()
        .expect("tar");
    assert!(st.success());
    let data = tmp.path().join("data");
    assert_eq!(
        std::fs::read_to_string(data.join("in/tables/orders.csv")).expect("staged input"),
        csv
    );
    assert!(data.join("in/tables/orders.csv.manifest").is_file());
    assert!(data.join("out/tables/orders_out.csv").is_file());
    assert_in_no_file(&data, "debug-secret-1");
    let config = std::fs::read_to_string(data.join("config.json")).expect("config");
    assert!(config.contains("#key"), "{config}");

    // Replay: the archived spec on the archived folder (this home's key opens
    // the sealed secret), out/ starting empty again.
    let out = g.cli(&[
        "run",
        data.join("spec.json").to_str().expect("path"),
        "--data",
        data.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        std::fs::read_to_string(data.join("out/tables/orders_out.csv")).expect("out"),
        std::fs::read_to_string(
            fixtures().join("cases/orders/expected/data/out/tables/orders_out.csv")
        )
        .expect("expected")
    );
}

/// Shared code: a configuration whose rows hold code, used by another
/// configuration's `shared_code_row_ids`; `{{ id }}` in its parameters
/// becomes the code in its config.json, beside `shared_code_row_ids`.
#[tokio::test(flavor = "multi_thread")]
async fn shared_code_rows_are_put_into_the_parameters() {
    ensure_component_image();
    let g = Gantry::up(&[]);
    let api = g.client();
    let (status, _) = api
        .import("in.c-shop.orders", "", "id,amount\n1,10\n")
        .await;
    assert_eq!(status, 201);
    let (status, cfg) = api
        .post(
            "/v1/configs",
            json!({"id": "snippets", "spec": {
                "image": "keboola.shared-code",
                "rows": [
                    {"id": "cleanup", "parameters": {"code_content": ["DELETE FROM t;", "VACUUM;"]}},
                    {"id": "greeting", "parameters": {"code_content": "hello"}},
                ],
            }}),
        )
        .await;
    assert_eq!(status, 201, "{cfg}");
    let mut spec = case_spec("orders");
    spec["shared_code_id"] = json!("snippets");
    spec["shared_code_row_ids"] = json!(["cleanup", "greeting"]);
    spec["parameters"] = json!({
        "report": true, "destination": "out.c-shop.x",
        "queries": ["{{ cleanup }}", "SELECT 1;"], "message": "say {{greeting}} twice", "whole": "{{greeting}}",
    });
    let job = api.run(spec.clone()).await;
    let id = job["id"].as_str().expect("id").to_string();
    assert_eq!(
        job["status"],
        "succeeded",
        "{job} {:?}",
        api.events(&id).await
    );
    let report: serde_json::Value = api
        .messages(&id, "stdout")
        .await
        .iter()
        .find_map(|l| {
            l.strip_prefix("REPORT ")
                .map(|t| serde_json::from_str(t).expect("json"))
        })
        .expect("report");
    assert_eq!(
        report["shared_code_row_ids"],
        json!(["cleanup", "greeting"])
    );
    let p = &report["parameters"];
    assert_eq!(
        p["queries"],
        json!([["DELETE FROM t;", "VACUUM;"], "SELECT 1;"]),
        "{p}"
    );
    assert_eq!(p["message"], "say hello twice", "{p}");
    assert_eq!(p["whole"], "hello", "{p}");

    spec["shared_code_row_ids"] = json!(["missing"]);
    let job = api.run(spec).await;
    assert_eq!(job["status"], "failed");
    assert!(
        job["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("has no row 'missing'")),
        "{job}"
    );
}
