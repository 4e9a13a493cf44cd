//! The OpenAPI document is the contract, and a schema-driven fuzzer holds the server to it: schemathesis
//! (pinned, installed on first use like cfn-lint) generates requests from `functions/openapi.yaml`, valid and
//! invalid, and sends them through the gateway of a real local deploy (the same stack, functions and
//! DynamoDB emulator a user runs). Any finding fails the test: a 5xx, a status or body the document does
//! not declare, a schema-invalid request accepted, or a schema-valid one refused as invalid. Every
//! `operationId` of the document must appear in schemathesis's JUnit report as run (not skipped), so an
//! operation the fuzzer cannot reach fails the test instead of going untested.
//!
//! The run is bounded (a fixed number of examples per operation, a fixed seed so a finding reproduces, a
//! wall-clock limit) so it fits the suite on a loaded 2-core machine.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::cli::{LocalEnv, output_text};

/// Examples per operation and phase; ~1,000 requests in all with the stateful phase.
const MAX_EXAMPLES: &str = "25";
/// The seed: the same requests on every run, so a finding in CI reproduces on a laptop.
const SEED: &str = "1";
/// Generous for 2 busy cores; a run takes about a minute.
const WALL_CLOCK_LIMIT: Duration = Duration::from_secs(600);

/// Which statuses answer which kind of request (the rest of schemathesis's defaults is stricter).
const CONFIG: &str = r#"
[checks.positive_data_acceptance]
# A schema-valid request may still meet the state of the log (404 no such aggregate, 409 version conflict),
# a size limit of the store (413) or a rule of the domain (422: unknown event type, an event the state does
# not allow). It is never a 400: whatever the schema allows, the server parses.
expected-statuses = ["2xx", "404", "409", "413", "422"]

[checks.negative_data_rejection]
# A request the schema refuses is refused: 400 invalid_request from the functions, 404/405/413/415 from
# the gateway or the router when the path, method, size or media type itself is wrong, and 422 when the
# refused part is the domain's own vocabulary: an `eventType` the domain does not know (`unknown_event_type`)
# or an `aggregateType` other than the one the event type names (`wrong_aggregate_type`).
expected-statuses = ["400", "404", "405", "413", "415", "422"]

[[operations]]
include-operation-id = "listEventsByType"
# Two rules span values and cannot be written in a schema: `cursor` is only ever a `nextCursor` the
# server issued, and `from` must not be after `to`. Both are documented as 400 on this operation.
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]
"#;

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,negative_data_rejection,positive_data_acceptance";

#[test]
fn the_deployed_api_keeps_its_openapi_contract_under_schema_driven_fuzzing() {
    let st = tests::tools::schemathesis();
    let env = LocalEnv::new();
    let deploy = env.run(&["deploy", "--yes"]);
    assert!(
        deploy.status.success(),
        "deploy failed:\n{}",
        output_text(&deploy)
    );
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("schemathesis.toml");
    let schema = tests::repo_root().join("functions/openapi.yaml");
    std::fs::write(&config, config_for(&schema)).unwrap();

    let mut cmd = Command::new(&st);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(&schema)
        .args(["--url", &env.url()])
        .args(["--checks", CHECKS])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        // Every phase: the document's examples, coverage of each keyword's edges, fuzzing, and stateful
        // sequences that follow the append's links to the reads of the same aggregate.
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        // No example database: what a run tries depends on the seed alone, not on earlier runs.
        .args(["--generation-database", "none"])
        .args(["--workers", "2"])
        .args(["--request-timeout", "30"])
        // The JUnit report names each operation it ran: the proof below that every one was exercised.
        .args(["--report", "junit"])
        .arg("--report-junit-path")
        .arg(work.path().join("junit.xml"))
        .arg("--no-color")
        .current_dir(work.path())
        .stdin(Stdio::null())
        // Files, not pipes: a run with findings prints more than a pipe holds before it is read.
        .stdout(std::fs::File::create(work.path().join("out.txt")).unwrap())
        .stderr(std::fs::File::create(work.path().join("err.txt")).unwrap());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("schemathesis starts");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WALL_CLOCK_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("schemathesis did not finish within {WALL_CLOCK_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = std::fs::read_to_string(work.path().join("out.txt")).unwrap_or_default();
    let err = std::fs::read_to_string(work.path().join("err.txt")).unwrap_or_default();
    let summary = out
        .lines()
        .filter(|l| l.contains("generated") || l.contains(" in ") && l.contains("=="))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!(
        "schemathesis finished in {:.1?} ({status}):\n{summary}",
        started.elapsed()
    );
    assert!(
        status.success(),
        "schemathesis found requests the server answers against its OpenAPI document \
         (reproduce with the curl lines below, or run this test again: the seed is fixed):\n{out}\n{err}"
    );
    assert!(
        out.contains("generated"),
        "schemathesis ran no test case:\n{out}\n{err}"
    );
    let junit = std::fs::read_to_string(work.path().join("junit.xml"))
        .unwrap_or_else(|e| panic!("schemathesis wrote no JUnit report ({e}):\n{out}\n{err}"));
    let ran = exercised_operations(&junit);
    for (operation_id, label) in operations(&schema) {
        assert!(
            ran.contains(&label),
            "operation `{operation_id}` ({label}) was not exercised by the fuzzer (not in its report, or skipped); ran: {ran:?}"
        );
    }
}

/// `CONFIG`, plus the same `cursor` rule for each view the domain declares (`GET /views/<view>/{key}`: its
/// `cursor` is only ever a `nextCursor` the server issued for that view and key, documented as 400).
fn config_for(schema: &std::path::Path) -> String {
    let mut config = CONFIG.to_string();
    for (id, label) in operations(schema) {
        if label.starts_with("GET /views/") {
            config.push_str(&format!(
                "\n[[operations]]\ninclude-operation-id = \"{id}\"\nchecks.positive_data_acceptance.expected-statuses = [\"2xx\", \"400\"]\n"
            ));
        }
    }
    config
}

/// Every operation of the document: (`operationId`, `METHOD /path` as schemathesis labels it).
fn operations(schema: &std::path::Path) -> Vec<(String, String)> {
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(schema).unwrap())
        .expect("functions/openapi.yaml parses");
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_mapping().expect("the document has paths") {
        for (method, op) in item.as_mapping().expect("a path item is a mapping") {
            let (Some(path), Some(method)) = (path.as_str(), method.as_str()) else {
                continue;
            };
            if let Some(id) = op.get("operationId").and_then(serde_yaml::Value::as_str) {
                found.push((id.to_string(), format!("{} {path}", method.to_uppercase())));
            }
        }
    }
    assert!(!found.is_empty(), "no operationId in {}", schema.display());
    found
}

/// The operations a schemathesis JUnit report ran: each `<testcase name="METHOD /path">` without `<skipped`.
fn exercised_operations(junit: &str) -> std::collections::BTreeSet<String> {
    junit
        .split("<testcase ")
        .skip(1)
        .filter(|case| {
            !case
                .split("</testcase>")
                .next()
                .unwrap_or("")
                .contains("<skipped")
        })
        .filter_map(|case| {
            let name = case.split("name=\"").nth(1)?.split('"').next()?;
            Some(name.replace("&amp;", "&").replace("&quot;", "\""))
        })
        .collect()
}
