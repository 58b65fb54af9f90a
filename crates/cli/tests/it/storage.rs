//! Storage end to end: tables and files through the API and CLI, input and
//! output mapping through real jobs, and exactly-once commits under crashes.

use crate::util::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn tables_import_export_versions_and_restore() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let csv = g.write_spec("people.csv", "id,name\n1,ann\n2,bob\n");
    let out = g.cli(&[
        "tables",
        "import",
        "in.c-main.people",
        csv.to_str().expect("p"),
        "--primary-key",
        "id",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, v) = api
        .import(
            "in.c-main.people",
            "incremental=true",
            "id,name\n2,bea\n3,cid\n",
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(
        api.rows("in.c-main.people").await,
        vec!["id,name", "1,ann", "2,bea", "3,cid"]
    );

    let exported = g.home_path().join("v1.csv");
    let out = g.cli(&[
        "tables",
        "export",
        "in.c-main.people",
        "--version",
        "1",
        "-o",
        exported.to_str().expect("p"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&exported).expect("read"),
        "id,name\n1,ann\n2,bob\n"
    );

    let out = g.cli(&["tables", "versions", "in.c-main.people", "--output", "json"]);
    let versions: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(versions["versions"][0]["version"], 2);
    assert_eq!(versions["versions"][1]["made_by"], "import");
    assert_eq!(versions["versions"][1]["loaded_rows"], 2);

    let out = g.cli(&["tables", "restore", "in.c-main.people", "--version", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        api.rows("in.c-main.people").await,
        vec!["id,name", "1,ann", "2,bob"]
    );
    assert_eq!(
        api.versions("in.c-main.people").await.len(),
        3,
        "restoring adds a version, it deletes none"
    );

    // Bad input: a clear 400 and the table unchanged.
    let (status, e) = api.import("in.c-main.people", "", "id,name\n1\n").await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_data")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("row 1 has 1 fields")),
        "{e}"
    );
    let (status, e) = api.import("in.c-main.people", "", "id,id\n1,2\n").await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = api
        .import("in.c-main.people", "incremental=true", "name\nx\n")
        .await;
    assert!(
        status == 400
            && e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("primary-key column 'id' is missing")),
        "{e}"
    );
    for bad in [
        "in.c-main..x",
        "in.main.t",
        "x.c-a.b",
        "in.c-a.b%3Bdrop",
        "in.c-a.b%2F..%2Fetc",
    ] {
        let (status, _) = api.get(&format!("/v1/tables/{bad}")).await;
        assert_eq!(status, 400, "{bad}");
    }
    assert_eq!(api.versions("in.c-main.people").await.len(), 3);
    assert_eq!(api.get("/v1/tables/in.c-main.nothing").await.0, 404);

    // Explicit creation: an empty first version with columns and key.
    let out = g.cli(&[
        "tables",
        "create",
        "in.c-main.empty",
        "--columns",
        "id,v",
        "--primary-key",
        "id",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(api.export("in.c-main.empty").await, "id,v\n");
    let (_, t) = api.get("/v1/tables/in.c-main.empty").await;
    assert_eq!(
        (t["version"].as_u64(), t["primary_key"].clone()),
        (Some(1), json!(["id"]))
    );
    assert_eq!(
        g.cli(&["tables", "create", "in.c-main.empty", "--columns", "id"])
            .status
            .code(),
        Some(2),
        "exists"
    );
    let (status, v) = api
        .import("in.c-main.empty", "incremental=true", "id,v\n1,a\n")
        .await;
    assert_eq!(status, 201, "{v}");

    // gzip import; delete.
    let gz = g.home_path().join("t.csv.gz");
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf 'a,b\\n1,2\\n' | gzip > {}", gz.display()))
        .status()
        .expect("gzip");
    let out = g.cli(&["tables", "import", "in.c-main.gz", gz.to_str().expect("p")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(api.export("in.c-main.gz").await, "a,b\n1,2\n");
    assert!(g
        .cli(&["tables", "delete", "in.c-main.gz"])
        .status
        .success());
    assert_eq!(api.get("/v1/tables/in.c-main.gz").await.0, 404);
}

/// On a terminal, imports, exports, uploads and downloads draw a progress
/// bar on stderr (a spinner with the bytes so far when the length is not
/// known ahead); piped, they print only their result.
#[tokio::test(flavor = "multi_thread")]
async fn transfers_show_progress_bars_on_a_terminal_only() {
    let g = Gantry::up(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("big.csv");
    let mut text = String::from("id,v\n");
    for i in 0..300_000 {
        text.push_str(&format!("{i},value-{i}\n"));
    }
    std::fs::write(&csv, &text).expect("write csv");
    // `script` gives the CLI a terminal and copies what it drew to stdout.
    let on_terminal = |args: String| -> String {
        let o = std::process::Command::new("script")
            .args(["-qec", &format!("{} {args}", bin().display()), "/dev/null"])
            .env("GANTRY_URL", &g.url)
            .env("GANTRY_HOME", g.home_path())
            .output()
            .expect("run script");
        let shown = stdout(&o);
        assert!(o.status.success(), "{shown}");
        shown
    };
    let bar = |shown: &str, what: &str| {
        assert!(
            shown.contains(what) && shown.contains("B/s"),
            "a {what} bar: {shown}"
        );
    };
    let shown = on_terminal(format!("tables import in.c-main.big {}", csv.display()));
    bar(&shown, "importing");
    assert!(shown.contains("in.c-main.big: version 1"), "{shown}");
    let out = dir.path().join("out.csv");
    bar(
        &on_terminal(format!("tables export in.c-main.big -o {}", out.display())),
        "exporting",
    );
    assert_eq!(std::fs::read_to_string(&out).expect("export"), text);
    bar(
        &on_terminal(format!("files upload {} --tag big", csv.display())),
        "uploading",
    );
    let (status, files) = g.client().get("/v1/files?tag=big").await;
    assert_eq!(status, 200, "{files}");
    let id = files["files"][0]["id"].to_string();
    assert!(id.parse::<u64>().is_ok(), "{files}");
    let got = dir.path().join("got.csv");
    bar(
        &on_terminal(format!("files download {id} -o {}", got.display())),
        "downloading",
    );
    assert_eq!(std::fs::read_to_string(&got).expect("download"), text);

    // Piped: the result alone.
    let o = g.cli(&[
        "tables",
        "import",
        "in.c-main.big",
        csv.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("B/s"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("in.c-main.big: version 2"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn input_mapping_stages_filtered_tables_and_tagged_files() {
    let g = Gantry::up(&[]);
    let api = g.client();
    api.import(
        "in.c-main.customers",
        "primary_key=id",
        "id,name,country\n1,ann,CZ\n2,bob,SK\n3,cid,DE\n4,dan,CZ\n",
    )
    .await;
    for (name, tags) in [
        ("model-old.bin", "tag=model"),
        ("model-new.bin", "tag=model&tag=prod"),
        ("other.txt", "tag=misc"),
    ] {
        let resp = api
            .req(
                reqwest::Method::POST,
                &format!("/v1/files?name={name}&{tags}"),
            )
            .body(format!("content of {name}"))
            .send()
            .await
            .expect("upload");
        assert_eq!(resp.status(), 201);
    }
    let script = "for f in /data/in/tables/*.csv; do echo \"== $f\"; cat $f; done; \
                  grep -h '\"rows_count\"' /data/in/tables/cz.csv.manifest; \
                  ls /data/in/files; cat /data/in/files/*_model-new.bin; echo";
    let mut spec = sh(script);
    spec["storage"] = json!({"input": {
        "tables": [
            {"source": "in.c-main.customers", "destination": "cz.csv", "columns": ["name", "id"],
             "where_column": "country", "where_values": ["CZ"]},
            {"source": "in.c-main.customers", "where_column": "country", "where_values": ["CZ"], "where_operator": "ne", "limit": 1},
            {"source": "in.c-main.customers", "destination": "recent.csv", "changed_since": "-1 hours"}
        ],
        "files": [{"tags": ["model", "prod"]}]
    }});
    let job = api.run(spec).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let out = api
        .messages(job["id"].as_str().expect("id"), "stdout")
        .await
        .join("\n");
    assert!(
        out.contains("== /data/in/tables/cz.csv\nname,id\nann,1\ndan,4"),
        "{out}"
    );
    assert!(
        out.contains("== /data/in/tables/in.c-main.customers.csv\nid,name,country\n2,bob,SK\n=="),
        "{out}"
    );
    assert!(
        out.contains("== /data/in/tables/recent.csv\nid,name,country\n1,ann,CZ"),
        "{out}"
    );
    assert!(out.contains("\"rows_count\": 4"), "{out}");
    assert!(
        out.contains("_model-new.bin\n") && !out.contains("model-old"),
        "files with all tags only: {out}"
    );
    assert!(out.contains("content of model-new.bin"), "{out}");

    // A job sees only what its mapping names; a missing table is the user's error.
    let mut missing = sh("true");
    missing["storage"] = json!({"input": {"tables": [{"source": "in.c-main.nothing"}]}});
    let job = api.run(missing).await;
    assert_eq!(job["error"]["kind"], "user_error", "{job}");
    assert!(
        job["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("in.c-main.nothing not found")),
        "{job}"
    );
}

/// An unfiltered table is staged as a link to its stored object, so
/// `/data/in` is read-only: even a job running as root (the owner of the
/// stored files) can neither write, chmod, remove nor add anything there.
#[tokio::test(flavor = "multi_thread")]
async fn staged_inputs_are_read_only_even_for_root() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let csv = "id,name\n1,ann\n2,bob\n";
    api.import("in.c-main.plain", "", csv).await;
    let o = g.cli(&["projects", "update", "default", "--allow", "root-user"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = "/data/in/tables/in.c-main.plain.csv";
    let script = format!(
        "id -u; stat -c 'links=%h' {f}; cat {f}; \
         echo x >> {f} && echo WROTE; chmod 666 {f} && echo CHMOD; \
         rm -f {f} && echo REMOVED; touch /data/in/tables/new && echo CREATED; \
         echo y > /data/in/state.json && echo STATE; \
         cp {f} /data/out/tables/copy.csv && echo COPIED"
    );
    let mut spec = sh(&script);
    spec["user"] = json!("0:0");
    spec["storage"] = json!({"input": {"tables": [{"source": "in.c-main.plain"}]}});
    let job = api.run(spec).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let id = job["id"].as_str().expect("id");
    let out = api.messages(id, "stdout").await.join("\n");
    assert!(
        out.starts_with("0\nlinks=2\nid,name\n1,ann\n2,bob"),
        "{out}"
    );
    for verb in ["WROTE", "CHMOD", "REMOVED", "CREATED", "STATE"] {
        assert!(!out.contains(verb), "{verb}: {out}");
    }
    assert!(out.contains("COPIED"), "{out}");
    let system = api.messages(id, "system").await.join("\n");
    assert!(
        system.contains("tables: 1 linked to stored objects, 0 copied, 0 streamed; files: 0"),
        "{system}"
    );
    assert_eq!(api.export("in.c-main.plain").await, csv);
    assert_eq!(api.export("out.c-adhoc.copy").await, csv);
}

#[tokio::test(flavor = "multi_thread")]
async fn output_mapping_resolves_destinations_and_honours_manifests() {
    let g = Gantry::up(&[]);
    let api = g.client();
    api.import(
        "out.c-main.target",
        "primary_key=id",
        "id,v\n1,old\n2,keep\n",
    )
    .await;
    let script = r#"cd /data/out/tables
printf 'id,v\n1,new\n' > mapped.csv
printf 'id,v\n9,via manifest\n' > anything.csv
echo '{"destination": "out.c-main.from_manifest"}' > anything.csv.manifest
printf 'x\n1\n' > out.c-main.dotted.csv
printf 'y\n2\n' > plain.csv
mkdir sliced.csv
printf '1,a\n2,b\n' > sliced.csv/part1
printf '3,c\n' | gzip > sliced.csv/part2.gz
echo '{"columns": ["id", "letter"]}' > sliced.csv.manifest
printf 'a;b\n1;"x;y"\n' > semi.csv
echo '{"delimiter": ";"}' > semi.csv.manifest
echo report > /data/out/files/report.txt
echo '{"tags": ["from-manifest"]}' > /data/out/files/report.txt.manifest
"#;
    let mut spec = sh(script);
    spec["storage"] = json!({"output": {
        "tables": [{"source": "mapped.csv", "destination": "out.c-main.target", "incremental": true}],
        "files": [{"source": "report.txt", "tags": ["from-mapping"]}]
    }});
    let job = api.run(spec).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        api.rows("out.c-main.target").await,
        vec!["id,v", "1,new", "2,keep"],
        "incremental with the table's key"
    );
    assert_eq!(
        api.rows("out.c-main.from_manifest").await,
        vec!["id,v", "9,via manifest"]
    );
    assert_eq!(api.rows("out.c-main.dotted").await, vec!["x", "1"]);
    assert_eq!(
        api.rows("out.c-adhoc.plain").await,
        vec!["y", "2"],
        "default bucket"
    );
    assert_eq!(
        api.rows("out.c-adhoc.sliced").await,
        vec!["id,letter", "1,a", "2,b", "3,c"]
    );
    assert_eq!(api.rows("out.c-adhoc.semi").await, vec!["a,b", "1,x;y"]);
    let v = api.versions("out.c-main.target").await;
    assert_eq!(v[0]["made_by"], "job");
    assert_eq!(v[0]["job"], job["id"]);
    let (_, files) = api
        .get("/v1/files?tag=from-manifest&tag=from-mapping")
        .await;
    assert_eq!(files["files"].as_array().map(Vec::len), Some(1), "{files}");
    assert_eq!(files["files"][0]["job"], job["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_outputs_fail_as_invalid_output_and_store_nothing() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let cases = [
        ("true", json!([{"source": "missing.csv"}]), "out/tables/missing.csv does not exist"),
        ("printf 'a,b\\n1\\n' > /data/out/tables/bad.csv", json!([]), "row 1 has 1 fields"),
        ("printf 'a,a\\n1,2\\n' > /data/out/tables/dup.csv", json!([]), "appears twice"),
        ("printf 'a\\n1\\n' > /data/out/tables/t.csv", json!([{"source": "t.csv", "destination": "nope"}]), "invalid destination"),
        ("ln -s /etc/passwd /data/out/tables/link.csv", json!([]), "is a symlink"),
        ("mkfifo /data/out/tables/fifo.csv", json!([]), "not a regular file"),
        ("printf 'a\\n1\\n' > /data/out/tables/h.csv; ln /data/out/tables/h.csv /data/out/tables/h2.csv", json!([]), "hard link"),
        ("mkdir /data/out/tables/s.csv; printf '1\\n' > /data/out/tables/s.csv/p", json!([]), "needs 'columns'"),
        ("printf 'a\\n1\\n' > /data/out/tables/ok.csv; echo '{not json' > /data/out/tables/ok.csv.manifest", json!([]), "not valid JSON"),
    ];
    for (script, tables, want) in cases {
        let mut spec = sh(&format!(
            "printf 'x\\n1\\n' > /data/out/tables/good.csv; {script}"
        ));
        spec["storage"] = json!({"output": {"tables": tables}});
        let job = api.run(spec).await;
        assert_eq!(job["error"]["kind"], "invalid_output", "{script}: {job}");
        let msg = job["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{script}: {msg}");
    }
    // Not even the good table of those jobs was stored.
    let (_, tables) = api.get("/v1/tables").await;
    assert_eq!(
        tables["tables"].as_array().map(Vec::len),
        Some(0),
        "{tables}"
    );
    // Nothing orphaned in the object store either.
    let leftovers = files_under(&g.home_path().join("objects"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn write_always_outputs_are_stored_when_the_job_fails() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let mut spec = sh("printf 'e\\nboom\\n' > /data/out/tables/errors.csv; printf 'x\\n1\\n' > /data/out/tables/result.csv; exit 1");
    spec["storage"] =
        json!({"output": {"tables": [{"source": "errors.csv", "write_always": true}]}});
    let job = api.run(spec).await;
    assert_eq!(job["error"]["kind"], "user_error");
    assert_eq!(api.rows("out.c-adhoc.errors").await, vec!["e", "boom"]);
    assert_eq!(
        api.get("/v1/tables/out.c-adhoc.result").await.0,
        404,
        "only write_always outputs of a failed job"
    );
}

/// A crash at each point of the commit leaves exactly one visible result:
/// one table version, one success.
#[tokio::test(flavor = "multi_thread")]
async fn outputs_commit_exactly_once_whatever_the_crash_point() {
    for point in [
        "after-exit",
        "during-upload",
        "before-commit",
        "after-commit",
    ] {
        let mut g = Gantry::up(&[]);
        g.env = vec![("GANTRY_FAULTS".into(), point.into())];
        let st = g.stop_with("TERM", Duration::from_secs(10));
        assert!(st.success());
        g.start();
        let api = g.client();
        let mut spec = sh("printf 'id\\n1\\n' > /data/out/tables/once.csv");
        spec["storage"] =
            json!({"output": {"tables": [{"source": "once.csv", "incremental": true}]}});
        spec["retry"] = json!({"attempts": 3, "backoff": "10ms"});
        let id = api.submit(spec).await;
        let st = g.wait_exit(Duration::from_secs(60));
        assert_eq!(st.code(), Some(86), "{point}: crashed at the fault");
        g.env.clear();
        g.start();
        let api = g.client();
        let job = api.wait(&id).await;
        assert_eq!(job["status"], "succeeded", "{point}: {job}");
        let versions = api.versions("out.c-adhoc.once").await;
        assert_eq!(
            versions.len(),
            1,
            "{point}: exactly one version: {versions:?}"
        );
        assert_eq!(
            api.rows("out.c-adhoc.once").await,
            vec!["id", "1"],
            "{point}"
        );
        let expected_attempts = if point == "after-commit" { 1 } else { 2 };
        assert_eq!(job["attempt"], expected_attempts, "{point}: {job}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_works_on_an_s3_compatible_bucket() {
    let s3 = S3::start();
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    // Create the bucket (S3 CreateBucket is a PUT on the bucket).
    let resp = reqwest::Client::new()
        .put(format!("{endpoint}/gantry-bucket"))
        .send()
        .await
        .expect("create bucket");
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    let url =
        format!("s3://gantry-bucket/team-a?endpoint={endpoint}&allow_http=true&region=us-east-1");
    let mut g = Gantry::up(&["--storage-url", &url]);
    g.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
    ];
    g.stop_with("TERM", Duration::from_secs(10));
    g.start();
    let api = g.client();
    let (status, v) = api
        .import("in.c-main.s3", "primary_key=id", "id,v\n1,a\n2,b\n")
        .await;
    assert_eq!(status, 201, "{v}");
    let mut spec = sh("sed 's/a/A/' /data/in/tables/in.c-main.s3.csv > /data/out/tables/upper.csv");
    spec["storage"] = json!({"input": {"tables": [{"source": "in.c-main.s3"}]}});
    let job = api.run(spec).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        api.rows("out.c-adhoc.upper").await,
        vec!["id,v", "1,A", "2,b"]
    );
    // The bytes are in the bucket, under the prefix, not on local disk.
    let listing = reqwest::Client::new()
        .get(format!("{endpoint}/gantry-bucket?list-type=2"))
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("xml");
    assert!(
        listing.contains("<Key>team-a/default/tables/in.c-main.s3/"),
        "{listing}"
    );
    assert!(
        listing.contains("<Key>team-a/default/tables/out.c-adhoc.upper/"),
        "{listing}"
    );
    assert!(
        !g.home_path().join("objects").exists(),
        "nothing in the local object folder"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_past_the_limits_or_with_bad_names_store_nothing() {
    let g = Gantry::up(&["--max-output-files", "50", "--max-output-bytes", "1m"]);
    let api = g.client();
    let cases = [
        (
            "i=0; while [ $i -lt 60 ]; do echo $i > /data/out/files/f$i; i=$((i+1)); done",
            "more than 50 files and folders",
        ),
        (
            "mkdir /data/out/tables/s.csv; i=0; while [ $i -lt 60 ]; do echo $i > /data/out/tables/s.csv/p$i; i=$((i+1)); done",
            "more than 50 files and folders",
        ),
        (
            "dd if=/dev/zero of=/data/out/files/big bs=1k count=1100 2>/dev/null",
            "larger than 1048576 bytes together",
        ),
        ("printf 'a\\n1\\n' > \"/data/out/tables/$(printf 'x\\ny').csv\"", "control characters"),
        ("printf 'a\\n1\\n' > \"/data/out/files/$(printf 'n\\377')\"", "not UTF-8"),
        (
            "mkdir -p /data/out/tables/d.csv/deeper; printf '1\\n' > /data/out/tables/d.csv/deeper/p; echo '{\"columns\":[\"a\"]}' > /data/out/tables/d.csv.manifest",
            "slices must be files, not folders",
        ),
    ];
    for (script, want) in cases {
        let job = api
            .run(sh(&format!(
                "printf 'x\\n1\\n' > /data/out/tables/good.csv; {script}"
            )))
            .await;
        assert_eq!(job["error"]["kind"], "invalid_output", "{script}: {job}");
        let msg = job["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{script}: {msg}");
    }
    let (_, tables) = api.get("/v1/tables").await;
    assert_eq!(tables["tables"], json!([]), "{tables}");
    let (_, files) = api.get("/v1/files").await;
    assert_eq!(files["files"], json!([]), "{files}");
    assert!(files_under(&g.home_path().join("objects")).is_empty());
    // Within the limits, the same kind of job stores its outputs.
    let job = api
        .run(sh(
            "printf 'x\\n1\\n' > /data/out/tables/good.csv; echo hi > /data/out/files/note",
        ))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
}

/// A small filesystem of its own (tmpfs), unmounted when dropped.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(st.success(), "mounting a tmpfs needs root");
        Self(dir)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_while_storing_outputs_stores_nothing_and_says_so() {
    let small = SmallFs::new("3m");
    let objects = small.0.path().to_str().expect("path").to_string();
    let g = Gantry::up(&["--storage-url", &objects]);
    let api = g.client();

    // A job's 5 MB output does not fit: infrastructure, named, nothing kept.
    let job = api
        .run(sh("i=0; echo id,v > /data/out/tables/big.csv; \
                 yes 1234567890,abcdefghijklmnopqrstuvwxyz | head -n 200000 >> /data/out/tables/big.csv; \
                 printf 'a\\n1\\n' > /data/out/tables/small.csv"))
        .await;
    assert_eq!(job["error"]["kind"], "infrastructure", "{job}");
    let msg = job["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("disk is full") && msg.contains("nothing was stored"),
        "{msg}"
    );
    let (_, tables) = api.get("/v1/tables").await;
    assert_eq!(
        tables["tables"],
        json!([]),
        "not even the small table: {tables}"
    );
    assert!(
        files_under(small.0.path()).is_empty(),
        "no partial objects left"
    );

    // An import that does not fit: 507, the table untouched.
    let (s, _) = api.import("in.c-main.t", "", "id\n1\n").await;
    assert_eq!(s, 201);
    let big = format!("id\n{}", "1234567890\n".repeat(400_000));
    let (s, body) = api.import("in.c-main.t", "", &big).await;
    assert_eq!(s, 507, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
    assert_eq!(api.rows("in.c-main.t").await, vec!["id", "1"]);
    assert_eq!(api.versions("in.c-main.t").await.len(), 1);

    // Space is back once the failed writes are gone: loads work again.
    let (s, _) = api
        .import("in.c-main.t", "incremental=true", "id\n2\n")
        .await;
    assert_eq!(s, 201);
    assert_eq!(api.rows("in.c-main.t").await, vec!["id", "1", "2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_job_stores_none_of_its_outputs() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let mut spec = sh(
        "printf 'a\\n1\\n' > /data/out/tables/late.csv; echo x > /data/out/files/late.txt; \
                       echo '{\"n\": 1}' > /data/out/state.json; echo written; sleep 30",
    );
    spec["storage"] = json!({"output": {"tables": [{"source": "late.csv", "write_always": true}]}});
    let id = api.submit(spec).await;
    let t = std::time::Instant::now();
    while !api
        .messages(&id, "stdout")
        .await
        .iter()
        .any(|m| m == "written")
    {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(30),
            "never wrote"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (s, _) = api.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(s, 200);
    let job = api.wait(&id).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    let (_, tables) = api.get("/v1/tables").await;
    assert_eq!(
        tables["tables"],
        json!([]),
        "even write_always outputs are dropped: {tables}"
    );
    let (_, files) = api.get("/v1/files").await;
    assert_eq!(files["files"], json!([]), "{files}");
    assert!(files_under(&g.home_path().join("objects")).is_empty());
}

/// Regression: an import refused before its body was read (here a bad
/// query; in the flaky full-disk test a 507 halfway) left the connection
/// unusable without saying so; a client reusing it for its next request got
/// `IncompleteMessage`. Now the rest of a small body is drained before the
/// answer (the connection stays good), and an answer to a large one says
/// `Connection: close` and the server closes the connection after it.
#[tokio::test(flavor = "multi_thread")]
async fn an_error_answered_before_the_body_was_read_closes_the_connection() {
    use std::io::{Read, Write};
    let g = Gantry::server_only();
    let addr = g.url.trim_start_matches("http://").to_string();
    let mut tcp = std::net::TcpStream::connect(&addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        tcp,
        "POST /v1/tables/in.c-main.t/import?delimiter=xx HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Type: text/csv\r\nContent-Length: 10000000\r\n\r\nid\n1\n",
        g.token
    )
    .expect("send");
    // The whole answer, then the end of the stream (not a timeout): the
    // server closed the connection instead of waiting for 10 MB.
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer)
        .expect("the server closes cleanly");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 400"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");

    // A real client alternating refused imports and other requests on one
    // pool never gets a broken answer.
    let api = g.client();
    let big = format!("id\n{}", "1234567890\n".repeat(200_000));
    for _ in 0..20 {
        let (s, body) = api.import("in.c-main.t", "delimiter=xx", &big).await;
        assert_eq!(s, 400, "{body}");
        let (s, body) = api.get("/v1/tables").await;
        assert_eq!(s, 200, "{body}");
    }
    // Answers to requests without a body keep the connection.
    let resp = api
        .req(reqwest::Method::GET, "/v1/tables/in.c-main.nope")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get("connection").is_none());
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).expect("write"));
    let out = child.wait_with_output().expect("gzip output");
    writer.join().expect("writer");
    out.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_past_the_projects_cap_is_refused_with_413() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let o = g.cli(&["projects", "update", "default", "--import-max-size", "1M"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, p) = api.get("/v1/projects/default").await;
    assert_eq!(p["import_max_bytes"], 1 << 20, "{p}");

    // 2 MB of CSV in a few KB of gzip: refused, named, nothing stored.
    let (s, _) = api.import("in.c-main.t", "", "id\n1\n").await;
    assert_eq!(s, 201);
    let bomb = gzip(format!("id\n{}", "1\n".repeat(1_000_000)).as_bytes());
    assert!(bomb.len() < 100_000);
    let resp = api
        .req(
            reqwest::Method::POST,
            "/v1/tables/in.c-main.t/import?gzip=true",
        )
        .body(bomb)
        .send()
        .await
        .expect("import");
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_large", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("more than 1m"),
        "{body}"
    );
    // Plain CSV past the cap too.
    let (s, body) = api
        .import("in.c-main.t", "", &format!("id\n{}", "1\n".repeat(600_000)))
        .await;
    assert_eq!(s, 413, "{body}");
    assert_eq!(api.versions("in.c-main.t").await.len(), 1);
    assert_eq!(api.rows("in.c-main.t").await, vec!["id", "1"]);

    // Under the cap, gzip loads as before.
    let small = gzip(b"id\n2\n");
    let resp = api
        .req(
            reqwest::Method::POST,
            "/v1/tables/in.c-main.t/import?gzip=true&incremental=true",
        )
        .body(small)
        .send()
        .await
        .expect("import");
    assert_eq!(resp.status(), 201);

    // A job's gzip part past the cap: its outputs are refused, named.
    let job = api
        .run(sh(
            "mkdir /data/out/tables/big.csv; \
                 yes 1 | head -n 1000000 | gzip > /data/out/tables/big.csv/part1.gz; \
                 echo '{\"columns\": [\"id\"]}' > /data/out/tables/big.csv.manifest",
        ))
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "invalid_output", "{job}");
    assert!(
        job["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cap on an import"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_after_1000_primary_key_loads_compacts_into_one_segment_with_the_same_rows() {
    let g = Gantry::server_only();
    let api = g.client();
    let first: String = (0..1000).map(|i| format!("{i},0\n")).collect();
    let (s, _) = api
        .import("in.c-main.pk", "primary_key=id", &format!("id,v\n{first}"))
        .await;
    assert_eq!(s, 201);
    // Each load replaces one row and adds one.
    for i in 0..1000 {
        let (s, b) = api
            .import(
                "in.c-main.pk",
                "incremental=true",
                &format!("id,v\n{i},\"{i},x\"\n{},new\n", 1000 + i),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let before = api.export("in.c-main.pk").await;
    let (_, t) = api.get("/v1/tables/in.c-main.pk/versions").await;
    assert_eq!(t["versions"][0]["segments"], 1001, "{}", t["versions"][0]);

    let o = g.cli(&["tables", "compact", "in.c-main.pk"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("compacted into one segment"),
        "{}",
        stderr(&o)
    );
    let v = &api.versions("in.c-main.pk").await[0];
    assert_eq!(v["segments"], 1, "{v}");
    assert_eq!(v["made_by"], "compact", "{v}");
    assert_eq!(v["rows"], 2000, "{v}");
    assert_eq!(api.export("in.c-main.pk").await, before, "the same bytes");
    // Older versions stay readable; compacting again changes nothing.
    let (s, _) = api.get("/v1/tables/in.c-main.pk/versions").await;
    assert_eq!(s, 200);
    let o = g.cli(&["tables", "compact", "in.c-main.pk"]);
    assert!(stderr(&o).contains("already one segment"), "{}", stderr(&o));
    // Loads on the compacted table replace rows as before.
    let (s, _) = api
        .import("in.c-main.pk", "incremental=true", "id,v\n5,late\n")
        .await;
    assert_eq!(s, 201);
    let rows = api.rows("in.c-main.pk").await;
    assert_eq!(rows.len(), 2001);
    assert!(rows.contains(&"5,late".to_string()) && !rows.contains(&"5,\"5,x\"".to_string()));
}

/// A crash between the upload of a job's outputs and their commit leaves an
/// object no row names; the sweep finds it and deletes it, and never an
/// object a running attempt may still commit, nor a named one.
#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_deletes_what_a_crash_before_the_commit_left_and_nothing_else() {
    let mut g = Gantry::up(&[]);
    g.env = vec![("GANTRY_FAULTS".into(), "before-commit".into())];
    g.stop_with("TERM", Duration::from_secs(10));
    g.start();
    let api = g.client();
    let mut spec = sh("printf 'id\\n1\\n' > /data/out/tables/once.csv");
    spec["retry"] = json!({"attempts": 3, "backoff": "10ms"});
    let id = api.submit(spec).await;
    assert_eq!(g.wait_exit(Duration::from_secs(60)).code(), Some(86));
    g.env.clear();
    g.start();
    let api = g.client();
    assert_eq!(api.wait(&id).await["status"], "succeeded");
    let objects = g.home_path().join("objects");
    assert_eq!(
        files_under(&objects).len(),
        2,
        "the orphan and the committed one"
    );
    // Make them an hour old (the grace and running attempts are about age).
    for f in files_under(&objects) {
        let st = std::process::Command::new("touch")
            .args(["-m", "-d", "1 hour ago"])
            .arg(&f)
            .status()
            .expect("touch");
        assert!(st.success());
    }

    // Too young for the default grace: kept.
    let o = g.cli(&["sweep", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("would delete 0 orphaned objects"),
        "{}",
        stderr(&o)
    );
    // A dry run past the grace names it and deletes nothing.
    let o = g.cli(&["sweep", "--dry-run", "--grace", "0s"]);
    assert!(
        stderr(&o).contains("would delete 1 orphaned objects"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).starts_with("default/tables/out.c-adhoc.once/"),
        "{}",
        stdout(&o)
    );
    assert_eq!(files_under(&objects).len(), 2);

    // An object that appears while an attempt runs is kept, whatever the grace.
    let running = api.submit(sh("sleep 30")).await;
    api.wait_status(&running, "running").await;
    let stray =
        objects.join("default/tables/out.c-adhoc.once/0190aaaa-0000-7000-8000-000000000000");
    std::fs::write(&stray, "id\n9\n").expect("stray");
    let o = g.cli(&["sweep", "--grace", "0s"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("deleted 1 orphaned objects"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("1 too young"), "{}", stderr(&o));
    assert!(stray.exists(), "a running attempt may yet name it");
    let (s, _) = api
        .post(&format!("/v1/jobs/{running}/cancel"), json!({}))
        .await;
    assert_eq!(s, 200);
    api.wait(&running).await;
    let o = g.cli(&["sweep", "--grace", "0s"]);
    assert!(
        stderr(&o).contains("deleted 1 orphaned objects"),
        "{}",
        stderr(&o)
    );
    assert!(!stray.exists());
    // The committed object stays and reads.
    assert_eq!(files_under(&objects).len(), 1);
    assert_eq!(api.rows("out.c-adhoc.once").await, vec!["id", "1"]);
}
