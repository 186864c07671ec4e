//! Produced reports, compare and client alike, match the committed JSON Schema, checked by
//! a maintained validator (the `jsonschema` crate, every keyword of draft 2020-12); and the
//! schema is strict enough to catch a wrong report.

mod common;

use serde_json::{json, Value};

fn schema() -> Value {
    common::schema()
}

fn validate(report: &Value) -> Vec<String> {
    common::validate(report)
}

#[test]
fn the_schema_is_a_valid_json_schema() {
    jsonschema::meta::validate(&schema()).expect("a valid draft 2020-12 schema");
}

#[test]
fn a_compare_report_matches_the_schema() {
    let dir = common::fresh_dir("schema");
    let json = dir.join("compare.json");
    let (r, _, stderr) = common::run(&[
        "compare",
        "--transport",
        "unix",
        "--quick",
        "--count",
        "30",
        "--conns",
        "4",
        "--warmup",
        "0",
        "--repeat",
        "2",
        "--rate",
        "5000",
        "--out",
        dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    r.unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    let report = common::read_json(&json);
    let errors = validate(&report);
    assert!(errors.is_empty(), "{errors:#?}");
    let runs = report["runs"].as_array().unwrap();
    assert!(runs.iter().any(|r| r["rate"] == 5000));
    let uring = runs
        .iter()
        .find(|r| r["engine"].is_object())
        .expect("uring runs are in it");
    // Every counter is required: a report without `enters` per message is wrong.
    let mut bad = report.clone();
    let i = runs.iter().position(|r| r == uring).unwrap();
    bad["runs"][i]["engine"]["per_msg"]
        .as_object_mut()
        .unwrap()
        .remove("enters");
    let place = format!("/runs/{i}/engine/per_msg: ");
    assert!(
        validate(&bad).iter().any(|e| e.starts_with(&place)),
        "a missing enters was not caught"
    );
    assert!(!report["ratios"].as_array().unwrap().is_empty());
    assert!(
        !report["scaling"].as_array().unwrap().is_empty(),
        "a compare with uring and epoll has scaling figures"
    );
}

#[test]
fn a_client_report_against_a_remote_server_matches_the_schema() {
    let serve = common::Serve::start("schema-client", "blocking", 2);
    let dir = common::fresh_dir("schema-client");
    let json = dir.join("client.json");
    let (r, _, stderr) = common::run(&[
        "client",
        "--workload",
        "stream",
        "--connect",
        &serve.endpoint,
        "--backends",
        "epoll",
        "--sizes",
        "4k",
        "--count",
        "20",
        "--warmup",
        "0",
        "--repeat",
        "2",
        "--out",
        dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    r.unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    assert!(serve.wait(), "the server saw a failed connection");
    let report = common::read_json(&json);
    let errors = validate(&report);
    assert!(errors.is_empty(), "{errors:#?}");
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["local_server"], false);
        assert!(r["server"].is_null());
        assert_eq!(r["bytes_verified"], 20 * 4096);
    }
}

/// A change that makes a report wrong.
type Change = fn(&mut Value);

#[test]
fn the_schema_catches_a_wrong_report() {
    let dir = common::fresh_dir("schema-bad");
    let json = dir.join("r.json");
    let (r, _, stderr) = common::run(&[
        "pingpong",
        "--transport",
        "unix",
        "--backends",
        "blocking",
        "--count",
        "3",
        "--warmup",
        "0",
        "--out",
        dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    r.unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    let good = common::read_json(&json);
    assert!(validate(&good).is_empty(), "{:#?}", validate(&good));
    // Each change alone must be caught, at its place.
    let cases: [(&str, Change); 10] = [
        ("/machine/cores", |v| v["machine"]["cores"] = json!(0)),
        ("/runs/0/backend", |v| {
            v["runs"][0]["backend"] = json!("carrier-pigeon")
        }),
        ("/runs/0", |v| {
            v["runs"][0]
                .as_object_mut()
                .unwrap()
                .remove("bytes_verified");
        }),
        ("/runs/0", |v| v["runs"][0]["surprise"] = json!(1)),
        ("/runs/0/latency_curve/0/percentile", |v| {
            v["runs"][0]["latency_curve"][0]["percentile"] = json!(101)
        }),
        // Only stream runs have the harness's ceiling.
        ("/runs/0/harness_gbytes_per_s", |v| {
            v["runs"][0]["harness_gbytes_per_s"] = json!(1.5)
        }),
        // Only uring runs have engine counters.
        ("/runs/0/engine", |v| {
            v["runs"][0]["engine"] = json!({ "totals": {} })
        }),
        ("/runs/0/server/connections", |v| {
            v["runs"][0]["server"]["connections"] = json!("one")
        }),
        ("", |v| {
            v.as_object_mut().unwrap().remove("scaling");
        }),
        // A scaling figure of zero means a run moved nothing.
        ("/scaling/0/median", |v| {
            v["scaling"] = json!([{ "transport": "unix", "config": "rr 64 B x4",
                "backend": "uring", "workers": 2, "base_workers": 1,
                "median": 0.0, "min": 0.5, "max": 1.0, "repeats": 1 }])
        }),
    ];
    for (place, change) in cases {
        let mut bad = good.clone();
        change(&mut bad);
        let errors = validate(&bad);
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{place}: "))),
            "a change at {place} was not caught: {errors:#?}"
        );
    }
}
