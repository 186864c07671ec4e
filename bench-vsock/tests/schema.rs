//! A produced report matches the committed JSON schema. The check is a small hand-written
//! validator for the keywords the schema uses (type, required, properties, items, enum,
//! minimum, maximum, $ref), so the test needs no heavy validator crate.

mod common;

use serde_json::Value;

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "null" => v.is_null(),
        other => panic!("schema uses unknown type {other}"),
    }
}

fn check(root: &Value, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return check(root, &root["$defs"][name], v, path, errors);
    }
    if let Some(t) = schema.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
            _ => panic!("bad type in schema"),
        };
        if !ok {
            errors.push(format!("{path}: {v} is not {t}"));
            return;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{path}: {v} not in {e:?}"));
        }
    }
    if let (Some(min), Some(x)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if x < min {
            errors.push(format!("{path}: {x} < minimum {min}"));
        }
    }
    if let (Some(max), Some(x)) = (schema.get("maximum").and_then(Value::as_f64), v.as_f64()) {
        if x > max {
            errors.push(format!("{path}: {x} > maximum {max}"));
        }
    }
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for k in req {
            if v.get(k.as_str().unwrap()).is_none() {
                errors.push(format!("{path}: missing {k}"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        v.as_object(),
    ) {
        for (k, sub) in props {
            if let Some(x) = obj.get(k) {
                check(root, sub, x, &format!("{path}.{k}"), errors);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(root, items, x, &format!("{path}[{i}]"), errors);
        }
    }
}

fn validate(report: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(include_str!("../schema/report.schema.json")).unwrap();
    let mut errors = Vec::new();
    check(&schema, &schema, report, "$", &mut errors);
    errors
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
    assert!(report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["rate"] == 5000));
}

#[test]
fn the_validator_catches_a_bad_report() {
    let bad = serde_json::json!({
        "tool": "x", "command": "x", "started_unix": 0, "ratios": [],
        "machine": { "cores": 0, "kernel": "k", "cpu_model": "c", "hostname": "h", "vsock_loopback": false },
        "runs": [ { "backend": "carrier-pigeon" } ]
    });
    let errors = validate(&bad);
    assert!(
        errors.iter().any(|e| e.contains("$.machine.cores")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("carrier-pigeon")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("missing \"bytes_verified\"")),
        "{errors:#?}"
    );
}
