//! Storage for real: SQLite metadata and a local object store in a temp folder.

use bytes::Bytes;
use gantry_core::spec::WhereOperator;
use gantry_core::{ProjectId, TableId};
use gantry_storage::csvscan::Dialect;
use gantry_storage::{CsvInput, DeleteWhere, LoadOptions, ReadFilter, Storage, StorageError};
use gantry_store::Store;
use gantry_store_sqlite::SqliteStore;
use std::io::Write;
use std::sync::Arc;

struct T {
    _dir: tempfile::TempDir,
    s: Storage,
    p: ProjectId,
}

fn setup() -> T {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("db"));
    let s =
        Storage::open(dir.path().join("objects").to_str().expect("path"), store).expect("storage");
    T {
        _dir: dir,
        s,
        p: ProjectId::default_project(),
    }
}

fn tid(s: &str) -> TableId {
    s.parse().expect("table id")
}

fn body(
    text: &str,
) -> futures_util::stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>> {
    // Small chunks, so records cross chunk boundaries.
    let chunks: Vec<Result<Bytes, std::io::Error>> = text
        .as_bytes()
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(chunks)
}

fn csv() -> CsvInput {
    CsvInput {
        name: "upload".into(),
        ..Default::default()
    }
}

fn opts(incremental: bool, pk: Option<&[&str]>) -> LoadOptions {
    LoadOptions {
        incremental,
        primary_key: pk.map(|k| k.iter().map(|s| s.to_string()).collect()),
        delete_where: None,
        made_by: gantry_store::MadeBy::Import,
    }
}

impl T {
    async fn load(&self, table: &str, text: &str, o: LoadOptions) -> Result<u64, StorageError> {
        self.s
            .import(&self.p, &tid(table), body(text), csv(), o)
            .await
            .map(|v| v.version)
    }

    async fn read(&self, table: &str, version: Option<u64>, f: ReadFilter) -> String {
        let mut out: Vec<u8> = Vec::new();
        self.s
            .read_table(&self.p, &tid(table), version, &f, &mut out)
            .await
            .expect("read");
        String::from_utf8(out).expect("utf8")
    }

    async fn rows(&self, table: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .read(table, None, ReadFilter::default())
            .await
            .lines()
            .map(str::to_string)
            .collect();
        lines[1..].sort();
        lines
    }
}

#[tokio::test]
async fn full_loads_replace_and_every_load_is_a_version() {
    let t = setup();
    assert_eq!(
        t.load(
            "in.c-main.people",
            "id,name\n1,ann\n2,bob\n",
            opts(false, None)
        )
        .await
        .expect("v1"),
        1
    );
    assert_eq!(
        t.load("in.c-main.people", "id,name\n3,cid", opts(false, None))
            .await
            .expect("v2"),
        2
    );
    assert_eq!(
        t.read("in.c-main.people", None, ReadFilter::default())
            .await,
        "id,name\n3,cid\n"
    );
    assert_eq!(
        t.read("in.c-main.people", Some(1), ReadFilter::default())
            .await,
        "id,name\n1,ann\n2,bob\n"
    );
    let versions =
        t.s.store()
            .table_versions(&t.p, &tid("in.c-main.people"))
            .await
            .expect("versions");
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(
        (versions[1].loaded_rows, versions[1].made_by.as_str()),
        (2, "import")
    );
    // Restoring an old version makes a new one with its content.
    let restored =
        t.s.restore(&t.p, &tid("in.c-main.people"), 1)
            .await
            .expect("restore");
    assert_eq!(restored.version, 3);
    assert_eq!(restored.note.as_deref(), Some("restored from version 1"));
    assert_eq!(
        t.rows("in.c-main.people").await,
        vec!["id,name", "1,ann", "2,bob"]
    );
}

#[tokio::test]
async fn incremental_loads_append_and_primary_keys_replace() {
    let t = setup();
    t.load("in.c-main.a", "id,v\n1,x\n", opts(false, None))
        .await
        .expect("load");
    t.load("in.c-main.a", "id,v\n2,y\n", opts(true, None))
        .await
        .expect("load");
    assert_eq!(t.rows("in.c-main.a").await, vec!["id,v", "1,x", "2,y"]);

    t.load(
        "in.c-main.k",
        "id,v\n1,a\n2,b\n2,b2\n",
        opts(false, Some(&["id"])),
    )
    .await
    .expect("load");
    assert_eq!(
        t.rows("in.c-main.k").await,
        vec!["id,v", "1,a", "2,b2"],
        "last row of a key wins within a load"
    );
    t.load("in.c-main.k", "id,v\n2,c\n3,d\n", opts(true, None))
        .await
        .expect("incremental uses the table's key");
    assert_eq!(
        t.rows("in.c-main.k").await,
        vec!["id,v", "1,a", "2,c", "3,d"]
    );
    t.load("in.c-main.k", "id,v\n1,z\n", opts(true, Some(&["id"])))
        .await
        .expect("load");
    assert_eq!(
        t.rows("in.c-main.k").await,
        vec!["id,v", "1,z", "2,c", "3,d"]
    );
    // Old versions stay as they were.
    let mut v2: Vec<String> = t
        .read("in.c-main.k", Some(2), ReadFilter::default())
        .await
        .lines()
        .map(str::to_string)
        .collect();
    v2.sort();
    assert_eq!(v2, vec!["1,a", "2,c", "3,d", "id,v"]);

    let e = t
        .load("in.c-main.k", "v\nq\n", opts(true, None))
        .await
        .expect_err("pk missing");
    assert!(
        e.to_string().contains("primary-key column 'id' is missing"),
        "{e}"
    );
    let e = t
        .load("in.c-main.k", "id,v\n1,q\n", opts(true, Some(&["v"])))
        .await
        .expect_err("other pk");
    assert!(e.to_string().contains("differs"), "{e}");
}

#[tokio::test]
async fn new_columns_extend_and_delete_where_runs_first() {
    let t = setup();
    t.load(
        "in.c-main.t",
        "id,city\n1,Prague\n2,Brno\n3,Prague\n",
        opts(false, None),
    )
    .await
    .expect("load");
    t.load(
        "in.c-main.t",
        "id,city,zip\n4,Brno,60200\n",
        opts(true, None),
    )
    .await
    .expect("load");
    assert_eq!(
        t.rows("in.c-main.t").await,
        vec![
            "id,city,zip",
            "1,Prague,",
            "2,Brno,",
            "3,Prague,",
            "4,Brno,60200"
        ]
    );

    let mut o = opts(true, None);
    o.delete_where = Some(DeleteWhere {
        column: "city".into(),
        values: vec!["Prague".into()],
        operator: WhereOperator::Eq,
    });
    t.load("in.c-main.t", "id,city\n5,Prague\n", o)
        .await
        .expect("load");
    assert_eq!(
        t.rows("in.c-main.t").await,
        vec!["id,city,zip", "2,Brno,", "4,Brno,60200", "5,Prague,"]
    );

    let mut ne = opts(true, None);
    ne.delete_where = Some(DeleteWhere {
        column: "city".into(),
        values: vec!["Prague".into()],
        operator: WhereOperator::Ne,
    });
    t.load("in.c-main.t", "id,city\n6,Ostrava\n", ne)
        .await
        .expect("load");
    assert_eq!(
        t.rows("in.c-main.t").await,
        vec!["id,city,zip", "5,Prague,", "6,Ostrava,"]
    );
}

#[tokio::test]
async fn bad_csv_is_rejected_with_the_reason_and_nothing_changes() {
    let t = setup();
    t.load("in.c-main.t", "a,b\n1,2\n", opts(false, None))
        .await
        .expect("load");
    for (text, want) in [
        ("", "needs a header"),
        ("a,,c\n1,2,3\n", "empty name"),
        ("a,a\n1,2\n", "appears twice"),
        (
            "a,b\n1,2\n3\n",
            "row 2 has 1 fields but there are 2 columns",
        ),
        ("a,b\n1,2,3\n", "row 1 has 3 fields"),
    ] {
        let e = t
            .load("in.c-main.t", text, opts(false, None))
            .await
            .expect_err(want);
        assert!(e.to_string().contains(want), "{text:?}: {e}");
    }
    assert_eq!(t.rows("in.c-main.t").await, vec!["a,b", "1,2"]);
    assert_eq!(
        t.s.store()
            .table_versions(&t.p, &tid("in.c-main.t"))
            .await
            .expect("v")
            .len(),
        1
    );
}

#[tokio::test]
async fn gzip_sliced_and_other_dialects() {
    let t = setup();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"id,v\n1,\"a,b\"\n2,\"say \"\"hi\"\"\"\n")
        .expect("gz");
    let gz = gz.finish().expect("gz");
    let input = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(gz))]);
    let how = CsvInput {
        gzip: true,
        ..csv()
    };
    t.s.import(&t.p, &tid("in.c-main.g"), input, how, opts(false, None))
        .await
        .expect("gz load");
    assert_eq!(
        t.read("in.c-main.g", None, ReadFilter::default()).await,
        "id,v\n1,\"a,b\"\n2,\"say \"\"hi\"\"\"\n"
    );

    // Sliced: headless parts sharing columns.
    let cols = Some(vec!["id".to_string(), "v".to_string()]);
    let parts = vec![
        (
            body("1,a\n2,b\n"),
            CsvInput {
                columns: cols.clone(),
                name: "part1".into(),
                ..Default::default()
            },
        ),
        (
            body("3,c"),
            CsvInput {
                columns: cols.clone(),
                name: "part2".into(),
                ..Default::default()
            },
        ),
    ];
    let load =
        t.s.prepare_load(&t.p, &tid("out.c-x.s"), parts, &[])
            .await
            .expect("prepare");
    let write =
        t.s.plan_load(&t.p, load, &opts(false, None))
            .await
            .expect("plan");
    t.s.store()
        .commit_table(&t.p, write.0)
        .await
        .expect("commit");
    assert_eq!(
        t.read("out.c-x.s", None, ReadFilter::default()).await,
        "id,v\n1,a\n2,b\n3,c\n"
    );

    let semi = CsvInput {
        dialect: Dialect {
            delimiter: b';',
            quote: b'\'',
        },
        ..csv()
    };
    t.s.import(
        &t.p,
        &tid("in.c-main.semi"),
        body("id;v\n1;'x;y'\n"),
        semi,
        opts(false, None),
    )
    .await
    .expect("semi");
    assert_eq!(
        t.read("in.c-main.semi", None, ReadFilter::default()).await,
        "id,v\n1,x;y\n"
    );
}

#[tokio::test]
async fn crlf_line_ends_are_kept_without_blank_rows() {
    let t = setup();
    t.load(
        "in.c-main.crlf",
        "id,v\r\n1,a\r\n2,b\r\n",
        opts(false, None),
    )
    .await
    .expect("load");
    assert_eq!(
        t.read("in.c-main.crlf", None, ReadFilter::default()).await,
        "id,v\n1,a\r\n2,b\r\n"
    );
    let f = ReadFilter {
        columns: vec!["v".into()],
        ..Default::default()
    };
    assert_eq!(t.read("in.c-main.crlf", None, f).await, "v\na\nb\n");
}

#[tokio::test]
async fn filtered_reads() {
    let t = setup();
    t.load(
        "in.c-main.f",
        "id,country,n\n1,CZ,a\n2,SK,b\n3,DE,c\n4,CZ,d\n",
        opts(false, None),
    )
    .await
    .expect("load");
    let f = ReadFilter {
        columns: vec!["n".into(), "id".into()],
        ..Default::default()
    };
    assert_eq!(
        t.read("in.c-main.f", None, f).await,
        "n,id\na,1\nb,2\nc,3\nd,4\n"
    );
    let f = ReadFilter {
        where_column: Some("country".into()),
        where_values: vec!["CZ".into(), "SK".into()],
        ..Default::default()
    };
    assert_eq!(
        t.read("in.c-main.f", None, f).await,
        "id,country,n\n1,CZ,a\n2,SK,b\n4,CZ,d\n"
    );
    let f = ReadFilter {
        where_column: Some("country".into()),
        where_values: vec!["CZ".into()],
        where_operator: WhereOperator::Ne,
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(
        t.read("in.c-main.f", None, f).await,
        "id,country,n\n2,SK,b\n"
    );
    let cut = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as i64
        + 1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    t.load("in.c-main.f", "id,country,n\n5,AT,e\n", opts(true, None))
        .await
        .expect("load");
    let f = ReadFilter {
        changed_since: Some(cut),
        ..Default::default()
    };
    assert_eq!(
        t.read("in.c-main.f", None, f).await,
        "id,country,n\n5,AT,e\n"
    );
    let mut out: Vec<u8> = Vec::new();
    let bad = ReadFilter {
        columns: vec!["nope".into()],
        ..Default::default()
    };
    let e =
        t.s.read_table(&t.p, &tid("in.c-main.f"), None, &bad, &mut out)
            .await
            .expect_err("bad column");
    assert!(e.to_string().contains("no column 'nope'"));
}

/// Rewrites (dedupe within a load, delete_where) stream across many read
/// chunks: a segment of several MiB comes out exactly right.
#[tokio::test]
async fn rewrites_of_large_segments_stream_correctly() {
    let t = setup();
    let mut text = String::from("id,group,pad\n");
    let pad = "p".repeat(40);
    for i in 0..100_000u32 {
        text.push_str(&format!("{},{},{pad}\n", i % 60_000, i % 3));
    }
    assert!(text.len() > 4 << 20, "spans several 1 MiB chunks");
    // 40,000 keys appear twice; the later row wins.
    let one = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(text))]);
    t.s.import(
        &t.p,
        &tid("in.c-main.big"),
        one,
        csv(),
        opts(false, Some(&["id"])),
    )
    .await
    .expect("load");
    let rows = t.rows("in.c-main.big").await;
    assert_eq!(rows.len() - 1, 60_000);
    assert!(
        rows.contains(&format!("0,{},{pad}", 60_000 % 3)),
        "the later row of key 0 wins"
    );
    assert!(rows.contains(&format!("59999,{},{pad}", 59_999 % 3)));

    let mut o = opts(true, None);
    o.delete_where = Some(DeleteWhere {
        column: "group".into(),
        values: vec!["0".into()],
        operator: WhereOperator::Eq,
    });
    t.load("in.c-main.big", "id,group,pad\n999999,9,x\n", o)
        .await
        .expect("delete_where load");
    let rows = t.rows("in.c-main.big").await;
    assert!(
        rows[1..].iter().all(|r| r.split(',').nth(1) != Some("0")),
        "group 0 deleted"
    );
    let expected = (0..100_000u32)
        .filter(|i| *i >= 40_000 || *i + 60_000 >= 100_000) // the surviving row of each key
        .filter(|i| i % 3 != 0)
        .count();
    assert_eq!(rows.len() - 1, expected + 1, "kept rows plus the new one");
}

/// Stages `mapping` (an input mapping as JSON) into `data`.
async fn staged(
    t: &T,
    data: &std::path::Path,
    mapping: serde_json::Value,
) -> gantry_storage::StagedInputs {
    for d in ["in/tables", "in/files"] {
        std::fs::create_dir_all(data.join(d)).expect("dirs");
    }
    let input: gantry_core::spec::InputMapping = serde_json::from_value(mapping).expect("mapping");
    t.s.stage_inputs(&t.p, &input, data).await.expect("stage")
}

fn inode(p: &std::path::Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).expect("stat"))
}

/// Unfiltered input tables are hard links to their stored object when one
/// object is the whole table, kernel copies when several are, streamed when
/// rows replace others; every way gives the bytes an export gives, and
/// nothing staged later writes through a link into a stored object.
#[tokio::test]
async fn staged_tables_are_links_or_copies_and_never_write_into_storage() {
    use gantry_storage::Staged;
    use std::os::unix::fs::PermissionsExt;
    let t = setup();
    let objects = t._dir.path().join("objects");
    let object_of = |v: &gantry_store::TableVersion, i: usize| objects.join(&v.segments[i].key);
    let work = tempfile::tempdir().expect("tmp");
    let data = work.path();
    let tables = data.join("in/tables");

    // One segment: a link to the object, which is read-only.
    t.load(
        "in.c-main.one",
        "id,\"na me\"\n1,a\n2,\"b,c\"\n",
        opts(false, None),
    )
    .await
    .expect("load");
    let one =
        t.s.store()
            .table_version(&t.p, &tid("in.c-main.one"), None)
            .await
            .expect("v");
    let exported = t.read("in.c-main.one", None, ReadFilter::default()).await;
    let s = staged(
        &t,
        data,
        serde_json::json!({"tables": [{"source": "in.c-main.one"}]}),
    )
    .await;
    assert_eq!(s.tables, vec![Staged::Linked]);
    let path = tables.join("in.c-main.one.csv");
    assert_eq!(inode(&path), inode(&object_of(&one, 0)));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), exported);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o444, "stored objects are read-only");

    // Two plain segments: a copy, header once.
    t.load("in.c-main.two", "a,b\n1,2\n", opts(false, None))
        .await
        .expect("load");
    t.load("in.c-main.two", "a,b\n3,4\n", opts(true, None))
        .await
        .expect("append");
    // Rows replaced by a later load: streamed.
    t.load(
        "in.c-main.pk",
        "id,v\n1,x\n2,y\n",
        opts(false, Some(&["id"])),
    )
    .await
    .expect("load");
    t.load("in.c-main.pk", "id,v\n1,z\n", opts(true, None))
        .await
        .expect("upsert");
    // The same destination again, now a copy: the link there is replaced,
    // not written through. A manifest named like the linked file likewise.
    let s = staged(
        &t,
        data,
        serde_json::json!({"tables": [
            {"source": "in.c-main.two", "destination": "in.c-main.one.csv"},
            {"source": "in.c-main.pk"},
            {"source": "in.c-main.one", "destination": "x.csv.manifest"},
            {"source": "in.c-main.two", "destination": "x.csv"},
        ]}),
    )
    .await;
    assert_eq!(
        s.tables,
        vec![
            Staged::Copied,
            Staged::Streamed,
            Staged::Linked,
            Staged::Copied
        ]
    );
    assert_eq!(
        s.to_string(),
        "tables: 1 linked to stored objects, 2 copied, 1 streamed; files: 0"
    );
    let two = t.read("in.c-main.two", None, ReadFilter::default()).await;
    assert_eq!(two, "a,b\n1,2\n3,4\n");
    assert_eq!(
        std::fs::read_to_string(tables.join("in.c-main.one.csv")).expect("read"),
        two
    );
    assert_eq!(
        std::fs::read_to_string(tables.join("x.csv")).expect("read"),
        two
    );
    let pk = std::fs::read_to_string(tables.join("in.c-main.pk.csv")).expect("read");
    assert_eq!(
        pk,
        t.read("in.c-main.pk", None, ReadFilter::default()).await
    );
    assert!(std::fs::read_to_string(tables.join("x.csv.manifest"))
        .expect("read")
        .contains("\"columns\""));
    assert_eq!(
        t.read("in.c-main.one", None, ReadFilter::default()).await,
        exported,
        "the stored object is untouched"
    );
    assert_eq!(
        std::fs::read_to_string(object_of(&one, 0)).expect("read"),
        exported
    );
}

/// Segments stored before objects carried their header (rows only) read,
/// filter and stage as before.
#[tokio::test]
async fn segments_without_a_stored_header_still_read() {
    use gantry_storage::Staged;
    use gantry_store::{Segment, TableWrite, WriteKind};
    let t = setup();
    let key = format!("{}/tables/in.c-main.old/legacy", t.p);
    t.s.objects()
        .put(
            &object_store::path::Path::from(key.as_str()),
            Bytes::from_static(b"1,a\n2,b\n").into(),
        )
        .await
        .expect("put");
    let columns = vec!["id".to_string(), "v".to_string()];
    t.s.store()
        .commit_table(
            &t.p,
            TableWrite {
                table: tid("in.c-main.old"),
                kind: WriteKind::Replace,
                columns: columns.clone(),
                primary_key: Vec::new(),
                segments: vec![Segment {
                    key,
                    columns,
                    rows: 2,
                    bytes: 8,
                    header: 0,
                    created_at: 0,
                }],
                loaded_rows: 2,
                loaded_bytes: 8,
                made_by: gantry_store::MadeBy::Import,
                note: None,
                metadata: None,
            },
        )
        .await
        .expect("commit");
    assert_eq!(
        t.read("in.c-main.old", None, ReadFilter::default()).await,
        "id,v\n1,a\n2,b\n"
    );
    let filter = ReadFilter {
        where_column: Some("v".into()),
        where_values: vec!["b".into()],
        ..Default::default()
    };
    assert_eq!(t.read("in.c-main.old", None, filter).await, "id,v\n2,b\n");
    let work = tempfile::tempdir().expect("tmp");
    let s = staged(
        &t,
        work.path(),
        serde_json::json!({"tables": [{"source": "in.c-main.old"}]}),
    )
    .await;
    assert_eq!(s.tables, vec![Staged::Copied]);
    let text =
        std::fs::read_to_string(work.path().join("in/tables/in.c-main.old.csv")).expect("read");
    assert_eq!(text, "id,v\n1,a\n2,b\n");
    // An incremental load on top rewrites nothing and reads both forms.
    t.load("in.c-main.old", "id,v\n3,c\n", opts(true, None))
        .await
        .expect("append");
    assert_eq!(
        t.rows("in.c-main.old").await,
        vec!["id,v", "1,a", "2,b", "3,c"]
    );
}
