//! The OpenAPI document checked by schemathesis (a schema-driven fuzzer,
//! from PyPI; `scripts/test.sh` installs it) against a real `gantry server`:
//! every operation, every check, with an admin token. It fails on any
//! failure schemathesis reports: an undocumented status, a response that
//! does not match its schema, a 500, a schema-valid request refused or an
//! invalid one accepted.

use crate::util::Gantry;
use std::process::Command;

fn schemathesis() -> String {
    std::env::var("GANTRY_TEST_SCHEMATHESIS")
        .unwrap_or_else(|_| "/var/tmp/gantry-schemathesis/bin/schemathesis".into())
}

#[test]
fn schemathesis_finds_nothing_in_the_openapi_document() {
    let bin = schemathesis();
    assert!(
        std::path::Path::new(&bin).exists(),
        "schemathesis not found at {bin}: run scripts/test.sh (it installs it) \
         or set GANTRY_TEST_SCHEMATHESIS"
    );
    let g = Gantry::server_only();
    let report = tempfile::tempdir().expect("report dir");
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/schemathesis.toml");
    let out = Command::new(&bin)
        .args([
            "--config-file",
            &config.display().to_string(),
            "run",
            &format!("{}/v1/openapi.json", g.url),
            "--url",
            &g.url,
            "--checks",
            "all",
            "--header",
            &format!("Authorization: Bearer {}", g.token),
            // Bounded: a few examples per operation keep the run under a
            // couple of minutes on a busy 2-core machine.
            "--max-examples",
            "25",
            "--seed",
            "1",
            // One worker: with two threads, hypothesis's `ast.parse` of
            // its strategies' lambdas raced in CPython 3.11 ("AST
            // constructor recursion depth mismatch", a SystemError inside
            // the tool, not an answer of Gantry's).
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(report.path())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}\nserver log:\n{}",
        g.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    );
}
