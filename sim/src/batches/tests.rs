//! The Batch APIs on virtual time: lifecycles, result lines, limits, bad input.

use serde_json::{json, Value};

use super::Settings;
use crate::raw::Raw;
use crate::{Config, Latency, Request, Simulator};

fn sim(delay_ms: f64, spread_ms: f64, window_ms: f64, error_rate: f64) -> Simulator {
    Simulator::new(Config {
        latency: Latency {
            base_ms: 1.0,
            per_output_token_ms: 0.0,
            jitter_ms: 0.0,
            chunk_ms: 1.0,
        },
        batches: Settings {
            delay_ms,
            spread_ms,
            error_rate,
            window_ms,
            ..Settings::default()
        },
        ..Config::default()
    })
}

/// Status and body (JSON, or the text of a JSONL body as a string).
fn call(
    s: &mut Simulator,
    method: &str,
    path: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
    now: f64,
) -> (u16, Value) {
    // `extra` replaces a header of the same name; an empty value removes it.
    let mut headers: Vec<(String, String)> = Vec::new();
    let base = [
        ("x-api-key", "sk-ant-test"),
        ("anthropic-version", "2023-06-01"),
        ("authorization", "Bearer sk-test"),
    ];
    for (k, v) in base.iter().chain(extra) {
        headers.retain(|(name, _)| name != k);
        if !v.is_empty() {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let req = Request {
        method,
        path,
        headers: &headers,
        body: body.as_ref(),
    };
    let d = s.handle(&req, now);
    s.finish(d.id, now);
    let jsonl = d.headers[0] == ("content-type".into(), "application/x-jsonl".into());
    let v = match jsonl {
        true => Value::String(d.body.clone()),
        false => serde_json::from_str(&d.body).unwrap_or_else(|e| panic!("{e}: {}", d.body)),
    };
    (d.status, v)
}

fn message(text: &str) -> Value {
    json!({ "model": "sim-1", "max_tokens": 64, "messages": [{ "role": "user", "content": text }] })
}

fn lines(v: &Value) -> Vec<Value> {
    v.as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn anthropic_round_trip_matches_realtime_replies() {
    let mut s = sim(100.0, 100.0, 86_400_000.0, 0.0);
    let requests = json!([
        { "custom_id": "a", "params": message("first document") },
        { "custom_id": "b", "params": { "model": "sim-1", "messages": [] } },
        { "custom_id": "c", "params": message("third document") },
    ]);
    let (st, b) = call(
        &mut s,
        "POST",
        "/v1/messages/batches",
        Some(json!({ "requests": requests })),
        &[],
        0.0,
    );
    assert_eq!(st, 200, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("msgbatch_"));
    assert_eq!(b["type"], "message_batch");
    assert_eq!(b["processing_status"], "in_progress");
    assert_eq!(b["request_counts"]["processing"], 3);
    assert_eq!(b["results_url"], Value::Null);
    let path = format!("/v1/messages/batches/{id}");
    let (st, early) = call(&mut s, "GET", &format!("{path}/results"), None, &[], 50.0);
    assert_eq!(st, 400, "{early}");
    let (_, done) = call(&mut s, "GET", &path, None, &[], 250.0);
    assert_eq!(done["processing_status"], "ended");
    assert_eq!(
        done["request_counts"],
        json!({ "processing": 0, "succeeded": 2, "errored": 1, "canceled": 0, "expired": 0 })
    );
    assert_eq!(
        done["results_url"],
        format!("/v1/messages/batches/{id}/results")
    );
    let (st, results) = call(&mut s, "GET", &format!("{path}/results"), None, &[], 260.0);
    assert_eq!(st, 200);
    let lines = lines(&results);
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    // The same text and usage a realtime call gets for the same request.
    let (_, realtime) = call(
        &mut s,
        "POST",
        "/v1/messages",
        Some(message("first document")),
        &[],
        300.0,
    );
    let got = &lines[0]["result"];
    assert_eq!(got["type"], "succeeded");
    assert_eq!(got["message"]["content"], realtime["content"]);
    assert_eq!(got["message"]["usage"], realtime["usage"]);
    assert!(got["message"]["id"]
        .as_str()
        .unwrap()
        .starts_with("msg_sim_"));
    assert_eq!(
        lines[1]["result"],
        json!({ "type": "errored", "error": { "type": "error", "error": {
            "type": "invalid_request_error", "message": "max_tokens: Field required" } } })
    );
}

#[test]
fn anthropic_cancel_delete_and_list() {
    let mut s = sim(100.0, 1000.0, 86_400_000.0, 0.0);
    let reqs: Vec<Value> = (0..20)
        .map(|i| json!({ "custom_id": format!("r{i}"), "params": message(&format!("doc {i}")) }))
        .collect();
    let (_, b) = call(
        &mut s,
        "POST",
        "/v1/messages/batches",
        Some(json!({ "requests": reqs })),
        &[],
        0.0,
    );
    let path = format!("/v1/messages/batches/{}", b["id"].as_str().unwrap());
    let (st, c) = call(&mut s, "POST", &format!("{path}/cancel"), None, &[], 600.0);
    assert_eq!(st, 200);
    assert_eq!(c["processing_status"], "canceling");
    assert!(c["cancel_initiated_at"].is_string());
    let (st, _) = call(&mut s, "DELETE", &path, None, &[], 601.0);
    assert_eq!(st, 400, "a batch still canceling cannot be deleted");
    let (_, end) = call(&mut s, "GET", &path, None, &[], 700.0);
    assert_eq!(end["processing_status"], "ended");
    let n = &end["request_counts"];
    let (ok, canceled) = (
        n["succeeded"].as_u64().unwrap(),
        n["canceled"].as_u64().unwrap(),
    );
    assert!(ok > 0 && canceled > 0 && ok + canceled == 20, "{n}");
    let (_, results) = call(&mut s, "GET", &format!("{path}/results"), None, &[], 700.0);
    let canceled_lines = lines(&results)
        .iter()
        .filter(|l| l["result"] == json!({ "type": "canceled" }))
        .count() as u64;
    assert_eq!(canceled_lines, canceled);

    // Four more, then pages of two, newest first.
    for _ in 0..4 {
        let one = json!({ "requests": [{ "custom_id": "x", "params": message("x") }] });
        call(
            &mut s,
            "POST",
            "/v1/messages/batches",
            Some(one),
            &[],
            800.0,
        );
    }
    let (_, p1) = call(
        &mut s,
        "GET",
        "/v1/messages/batches?limit=2",
        None,
        &[],
        900.0,
    );
    assert_eq!(
        (p1["data"].as_array().unwrap().len(), &p1["has_more"]),
        (2, &json!(true))
    );
    let after = p1["last_id"].as_str().unwrap();
    let (_, p2) = call(
        &mut s,
        "GET",
        &format!("/v1/messages/batches?limit=2&after_id={after}"),
        None,
        &[],
        900.0,
    );
    let (_, p3) = call(
        &mut s,
        "GET",
        &format!(
            "/v1/messages/batches?limit=2&after_id={}",
            p2["last_id"].as_str().unwrap()
        ),
        None,
        &[],
        900.0,
    );
    assert_eq!(
        (p3["data"].as_array().unwrap().len(), &p3["has_more"]),
        (1, &json!(false))
    );
    assert_eq!(
        p3["last_id"].as_str(),
        Some(&path["/v1/messages/batches/".len()..])
    );
    let (_, back) = call(
        &mut s,
        "GET",
        &format!(
            "/v1/messages/batches?limit=2&before_id={}",
            p2["first_id"].as_str().unwrap()
        ),
        None,
        &[],
        900.0,
    );
    assert_eq!(back["data"], p1["data"]);
    let (st, _) = call(&mut s, "DELETE", &path, None, &[], 900.0);
    assert_eq!(st, 200);
    let (st, gone) = call(&mut s, "GET", &path, None, &[], 900.0);
    assert_eq!(
        (st, gone["error"]["type"].as_str()),
        (404, Some("not_found_error"))
    );
    // Each bound named as the API names it (the SDKs show the message as it is).
    for (query, want) in [
        ("0", "greater than or equal to 1"),
        ("1001", "less than or equal to 1000"),
        ("-1", "greater than or equal to 1"),
    ] {
        let path = format!("/v1/messages/batches?limit={query}");
        let (st, e) = call(&mut s, "GET", &path, None, &[], 900.0);
        let m = e["error"]["message"].as_str().unwrap_or_default();
        assert!(
            st == 400 && m.starts_with("limit: Input should be") && m.contains(want),
            "{m}"
        );
    }
}

#[test]
fn anthropic_expiry_and_limits() {
    let mut s = sim(100.0, 1000.0, 300.0, 0.0);
    let reqs: Vec<Value> = (0..10)
        .map(|i| json!({ "custom_id": format!("r{i}"), "params": message(&format!("doc {i}")) }))
        .collect();
    let (_, b) = call(
        &mut s,
        "POST",
        "/v1/messages/batches",
        Some(json!({ "requests": reqs })),
        &[],
        0.0,
    );
    let path = format!("/v1/messages/batches/{}", b["id"].as_str().unwrap());
    let (_, end) = call(&mut s, "GET", &path, None, &[], 300.0);
    assert_eq!(end["processing_status"], "ended");
    let expired = end["request_counts"]["expired"].as_u64().unwrap();
    assert!(expired > 0 && expired + end["request_counts"]["succeeded"].as_u64().unwrap() == 10);

    let small = json!([{ "custom_id": "a", "params": {} }]);
    let too_many = Value::Array(vec![small[0].clone(); 100_001]);
    let (st, e) = call(
        &mut s,
        "POST",
        "/v1/messages/batches",
        Some(json!({ "requests": too_many })),
        &[],
        0.0,
    );
    assert_eq!(st, 400);
    assert_eq!(
        e["error"]["message"],
        "requests: List should have at most 100000 items after validation, not 100001"
    );
    let (st, e) = call(
        &mut s,
        "POST",
        "/v1/messages/batches",
        Some(json!({ "requests": small })),
        &[("content-length", "268435457")],
        0.0,
    );
    assert_eq!(st, 413);
    assert_eq!(e["error"]["type"], "request_too_large");
    let bad_id = json!({ "requests": [{ "custom_id": "no spaces", "params": {} }] });
    let (st, e) = call(
        &mut s,
        "POST",
        "/v1/messages/batches",
        Some(bad_id),
        &[],
        0.0,
    );
    assert_eq!(st, 400);
    assert_eq!(
        e["error"]["message"],
        "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
    );
    let twice = json!({ "requests": [{ "custom_id": "a", "params": {} }, { "custom_id": "b", "params": {} }, { "custom_id": "a", "params": {} }] });
    let (st, e) = call(
        &mut s,
        "POST",
        "/v1/messages/batches",
        Some(twice),
        &[],
        0.0,
    );
    assert_eq!(st, 400);
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("requests.2.custom_id: 'a' is already the custom_id of requests.0"));
    let (st, _) = call(
        &mut s,
        "GET",
        "/v1/messages/batches",
        None,
        &[("x-api-key", ""), ("authorization", "")],
        0.0,
    );
    assert_eq!(st, 401);
}

fn upload(s: &mut Simulator, lines: &[Value], now: f64) -> String {
    let content: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let body = json!({ "purpose": "batch", "filename": "in.jsonl", "bytes": content.len(), "content": content, "lines": lines });
    let (st, f) = call(s, "POST", "/v1/files", Some(body), &[], now);
    assert_eq!(st, 200, "{f}");
    assert_eq!(
        (f["object"].as_str(), f["purpose"].as_str()),
        (Some("file"), Some("batch"))
    );
    f["id"].as_str().unwrap().to_owned()
}

fn chat_line(id: &str, text: &str) -> Value {
    json!({ "custom_id": id, "method": "POST", "url": "/v1/chat/completions",
            "body": { "model": "gpt-sim", "messages": [{ "role": "user", "content": text }] } })
}

fn create(s: &mut Simulator, file: &str, now: f64) -> Value {
    let body = json!({ "input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h" });
    let (st, b) = call(s, "POST", "/v1/batches", Some(body), &[], now);
    assert_eq!(st, 200, "{b}");
    b
}

#[test]
fn openai_round_trip_through_every_status() {
    let mut s = sim(100.0, 100.0, 86_400_000.0, 0.0);
    let file = upload(&mut s, &[chat_line("a", "one"), chat_line("b", "two")], 0.0);
    let (_, content) = call(
        &mut s,
        "GET",
        &format!("/v1/files/{file}/content"),
        None,
        &[],
        0.0,
    );
    assert_eq!(content.as_str().unwrap().lines().count(), 2);
    let b = create(&mut s, &file, 0.0);
    assert_eq!(b["status"], "validating");
    assert_eq!(
        b["request_counts"],
        json!({ "total": 2, "completed": 0, "failed": 0 })
    );
    let path = format!("/v1/batches/{}", b["id"].as_str().unwrap());
    let mut seen = Vec::new();
    for t in [10.0, 30.0, 150.0, 199.9, 200.0, 230.0, 260.0] {
        let (_, b) = call(&mut s, "GET", &path, None, &[], t);
        let status = b["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status);
        }
    }
    assert_eq!(
        seen,
        ["validating", "in_progress", "finalizing", "completed"]
    );
    let (_, b) = call(&mut s, "GET", &path, None, &[], 300.0);
    assert_eq!(
        b["request_counts"],
        json!({ "total": 2, "completed": 2, "failed": 0 })
    );
    assert_eq!(b["error_file_id"], Value::Null);
    let out = b["output_file_id"].as_str().unwrap();
    let (_, text) = call(
        &mut s,
        "GET",
        &format!("/v1/files/{out}/content"),
        None,
        &[],
        300.0,
    );
    let out = lines(&text);
    assert_eq!(out.len(), 2);
    let (_, realtime) = call(
        &mut s,
        "POST",
        "/v1/chat/completions",
        Some(chat_line("a", "one")["body"].clone()),
        &[],
        300.0,
    );
    let line = &out[0];
    assert_eq!(line["custom_id"], "a");
    assert!(line["id"].as_str().unwrap().starts_with("batch_req_"));
    assert_eq!(line["error"], Value::Null);
    assert_eq!(line["response"]["status_code"], 200);
    assert!(line["response"]["request_id"].is_string());
    assert_eq!(line["response"]["body"]["choices"], realtime["choices"]);
    assert_eq!(line["response"]["body"]["usage"], realtime["usage"]);
    let (st, e) = call(&mut s, "POST", &format!("{path}/cancel"), None, &[], 300.0);
    assert_eq!(
        (st, e["error"]["message"].as_str()),
        (409, Some("Cannot cancel a batch with status 'completed'."))
    );
    let (_, list) = call(&mut s, "GET", "/v1/batches?limit=1", None, &[], 300.0);
    assert_eq!(
        (list["object"].as_str(), list["has_more"].as_bool()),
        (Some("list"), Some(false))
    );
}

#[test]
fn openai_failures_cancel_and_expiry() {
    // Every item fails: the error file has them all, as 500s.
    let mut s = sim(100.0, 100.0, 86_400_000.0, 1.0);
    let file = upload(&mut s, &[chat_line("a", "one")], 0.0);
    let b = create(&mut s, &file, 0.0);
    let (_, b) = call(
        &mut s,
        "GET",
        &format!("/v1/batches/{}", b["id"].as_str().unwrap()),
        None,
        &[],
        500.0,
    );
    assert_eq!(
        (b["status"].as_str(), b["output_file_id"].as_str()),
        (Some("completed"), None)
    );
    assert_eq!(
        b["request_counts"],
        json!({ "total": 1, "completed": 0, "failed": 1 })
    );
    let (_, text) = call(
        &mut s,
        "GET",
        &format!("/v1/files/{}/content", b["error_file_id"].as_str().unwrap()),
        None,
        &[],
        500.0,
    );
    let line = &lines(&text)[0];
    assert_eq!(line["response"]["status_code"], 500);
    assert_eq!(line["response"]["body"]["error"]["type"], "server_error");

    // Cancel: cancelling, then cancelled with the unfinished items in the error file.
    let mut s = sim(100.0, 1000.0, 86_400_000.0, 0.0);
    let reqs: Vec<Value> = (0..20).map(|i| chat_line(&format!("r{i}"), "x")).collect();
    let file = upload(&mut s, &reqs, 0.0);
    let path = format!(
        "/v1/batches/{}",
        create(&mut s, &file, 0.0)["id"].as_str().unwrap()
    );
    let (_, c) = call(&mut s, "POST", &format!("{path}/cancel"), None, &[], 600.0);
    assert_eq!(c["status"], "cancelling");
    let (_, c) = call(&mut s, "GET", &path, None, &[], 700.0);
    assert_eq!(c["status"], "cancelled");
    let n = &c["request_counts"];
    assert_eq!(n["total"], 20);
    let (_, text) = call(
        &mut s,
        "GET",
        &format!("/v1/files/{}/content", c["error_file_id"].as_str().unwrap()),
        None,
        &[],
        700.0,
    );
    let errs = lines(&text);
    assert_eq!(errs.len() as u64, n["failed"].as_u64().unwrap());
    assert_eq!(errs[0]["error"]["code"], "batch_cancelled");
    assert_eq!(errs[0]["response"], Value::Null);

    // A cancel while validating: cancelling at once, every item cancelled.
    let file = upload(&mut s, &reqs, 800.0);
    let path = format!(
        "/v1/batches/{}",
        create(&mut s, &file, 800.0)["id"].as_str().unwrap()
    );
    let (_, c) = call(&mut s, "POST", &format!("{path}/cancel"), None, &[], 801.0);
    assert_eq!(c["status"], "cancelling");
    let (_, c) = call(&mut s, "GET", &path, None, &[], 900.0);
    assert_eq!(c["status"], "cancelled");
    assert_eq!(
        c["request_counts"],
        json!({ "total": 20, "completed": 0, "failed": 20 })
    );

    // Expiry: the window ends first.
    let mut s = sim(100.0, 1000.0, 300.0, 0.0);
    let file = upload(&mut s, &reqs, 0.0);
    let path = format!(
        "/v1/batches/{}",
        create(&mut s, &file, 0.0)["id"].as_str().unwrap()
    );
    let (_, e) = call(&mut s, "GET", &path, None, &[], 300.0);
    assert_eq!(e["status"], "expired");
    assert!(e["expired_at"].is_u64());
    let (_, text) = call(
        &mut s,
        "GET",
        &format!("/v1/files/{}/content", e["error_file_id"].as_str().unwrap()),
        None,
        &[],
        300.0,
    );
    assert!(lines(&text)
        .iter()
        .all(|l| l["error"]["code"] == "batch_expired"));
}

#[test]
fn openai_bad_input() {
    let mut s = sim(100.0, 100.0, 86_400_000.0, 0.0);
    let failed = |s: &mut Simulator, lines: &[Value]| {
        let file = upload(s, lines, 0.0);
        let b = create(s, &file, 0.0);
        let (_, b) = call(
            s,
            "GET",
            &format!("/v1/batches/{}", b["id"].as_str().unwrap()),
            None,
            &[],
            100.0,
        );
        assert_eq!(b["status"], "failed");
        assert!(b["failed_at"].is_u64());
        b["errors"]["data"].clone()
    };
    let e = failed(
        &mut s,
        &[
            chat_line("a", "x"),
            chat_line("b", "y"),
            chat_line("a", "z"),
        ],
    );
    assert_eq!(
        (e[0]["code"].as_str(), e[0]["line"].as_u64()),
        (Some("duplicate_custom_id"), Some(3))
    );
    let mut wrong_url = chat_line("a", "x");
    wrong_url["url"] = json!("/v1/embeddings");
    let e = failed(
        &mut s,
        &[json!(false), wrong_url, json!({ "custom_id": "c" })],
    );
    let codes: Vec<&str> = e
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "invalid_json_line",
            "invalid_url",
            "missing_required_parameter"
        ]
    );
    assert_eq!(e[2]["message"], "Missing required parameter: 'method'.");
    let e = failed(&mut s, &vec![json!({}); 50_001]);
    assert_eq!(e[0]["code"], "batch_too_large");

    let body =
        json!({ "input_file_id": "file-x", "endpoint": "/v1/nope", "completion_window": "24h" });
    let (st, e) = call(&mut s, "POST", "/v1/batches", Some(body), &[], 0.0);
    assert_eq!(st, 400);
    assert_eq!(e["error"]["message"], "Invalid value: '/v1/nope'. Supported values are: '/v1/chat/completions', '/v1/completions', '/v1/embeddings', and '/v1/responses'.");
    assert_eq!(
        (e["error"]["param"].as_str(), e["error"]["code"].as_str()),
        (Some("endpoint"), Some("invalid_value"))
    );
    let body = json!({ "input_file_id": "file-x", "endpoint": "/v1/chat/completions", "completion_window": "1h" });
    let (st, e) = call(&mut s, "POST", "/v1/batches", Some(body), &[], 0.0);
    assert_eq!(
        (st, e["error"]["param"].as_str()),
        (400, Some("completion_window"))
    );
    let big =
        json!({ "purpose": "batch", "bytes": 200 * 1024 * 1024 + 1, "content": "", "lines": [] });
    let (st, e) = call(&mut s, "POST", "/v1/files", Some(big), &[], 0.0);
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("file")));
    let odd = json!({ "purpose": "batches", "filename": "in.jsonl", "bytes": 3, "content": "{}\n", "lines": [{}] });
    let (st, e) = call(&mut s, "POST", "/v1/files", Some(odd), &[], 0.0);
    assert_eq!(
        (
            st,
            e["error"]["param"].as_str(),
            e["error"]["code"].as_str()
        ),
        (400, Some("purpose"), Some("invalid_value"))
    );
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid value: 'batches'. Supported values are: 'assistants', 'batch',"));
    let (st, e) = call(&mut s, "GET", "/v1/batches/batch_nope", None, &[], 0.0);
    assert_eq!(
        (st, e["error"]["message"].as_str()),
        (404, Some("No batch found with id 'batch_nope'."))
    );
    let (st, _) = call(
        &mut s,
        "GET",
        "/v1/files",
        None,
        &[("authorization", "")],
        0.0,
    );
    assert_eq!(st, 401);
}

#[test]
fn settings_are_validated() {
    let get = |k: &str| match k {
        "batches.windowMs" => Raw::Number(0.0),
        _ => Raw::Missing,
    };
    let e = Settings::from_options(&get).unwrap_err();
    assert_eq!(
        e.message,
        "batches.windowMs must be a number in 1..=9007199254740991, got 0"
    );
    let get = |k: &str| match k {
        "batches.errorRate" => Raw::Number(0.25),
        _ => Raw::Missing,
    };
    assert_eq!(Settings::from_options(&get).unwrap().error_rate, 0.25);
}

#[test]
fn anthropic_batch_items_read_the_prompt_cache_once_written() {
    let mut s = sim(1000.0, 1000.0, 86_400_000.0, 0.0);
    s.config.latency.base_ms = 100.0;
    // 1,250 tokens of cached system prompt: over sim-1's 1,024-token minimum.
    let system = json!([{ "type": "text", "text": "x".repeat(5000), "cache_control": { "type": "ephemeral" } }]);
    let params = |i: usize| {
        json!({ "model": "sim-1", "max_tokens": 20, "system": system,
            "messages": [{ "role": "user", "content": format!("ticket {i}") }] })
    };
    let batch = |s: &mut Simulator, now: f64| {
        let requests: Vec<Value> = (0..20)
            .map(|i| json!({ "custom_id": format!("r{i}"), "params": params(i) }))
            .collect();
        let (st, b) = call(
            s,
            "POST",
            "/v1/messages/batches",
            Some(json!({ "requests": requests })),
            &[],
            now,
        );
        assert_eq!(st, 200, "{b}");
        let path = format!("/v1/messages/batches/{}/results", b["id"].as_str().unwrap());
        let (st, results) = call(s, "GET", &path, None, &[], now + 3000.0);
        assert_eq!(st, 200, "{results}");
        let usage: Vec<Value> = lines(&results)
            .iter()
            .map(|l| l["result"]["message"]["usage"].clone())
            .collect();
        let n = |key: &str| {
            usage
                .iter()
                .filter(|u| u[key].as_u64() == Some(1250))
                .count()
        };
        for u in &usage {
            // The cached part is not counted again as plain input.
            assert!(u["input_tokens"].as_u64().unwrap() <= 3, "{u}");
        }
        (
            n("cache_creation_input_tokens"),
            n("cache_read_input_tokens"),
        )
    };
    // A cold batch: the items that arrive before the first writer's reply began write too,
    // the later ones read.
    let (writes, reads) = batch(&mut s, 0.0);
    assert!(
        writes >= 1 && reads >= 1 && writes + reads == 20,
        "{writes} writes, {reads} reads"
    );
    // Warmed: a realtime call wrote the entry (its reply began 100 ms after it arrived), and
    // its lifetime is refreshed by each read: every item of a batch made after reads it.
    let mut s = sim(1000.0, 1000.0, 86_400_000.0, 0.0);
    s.config.latency.base_ms = 100.0;
    let (st, primer) = call(&mut s, "POST", "/v1/messages", Some(params(99)), &[], 0.0);
    assert_eq!(
        (st, &primer["usage"]["cache_creation_input_tokens"]),
        (200, &json!(1250))
    );
    assert_eq!(batch(&mut s, 200.0), (0, 20));
}

#[test]
fn limits_lowered_by_settings_keep_the_apis_errors() {
    let mut s = sim(100.0, 100.0, 86_400_000.0, 0.0);
    s.config.batches.max_requests = 2.0;
    s.config.batches.max_bytes = 1000.0;
    let req = |i: usize| json!({ "custom_id": format!("r{i}"), "params": message("x") });
    // Anthropic: the requests, then the body's bytes (its content-length).
    let (st, _) = call(
        &mut s,
        "POST",
        "/v1/messages/batches",
        Some(json!({ "requests": [req(0), req(1)] })),
        &[("content-length", "1000")],
        0.0,
    );
    assert_eq!(st, 200);
    let (st, e) = call(
        &mut s,
        "POST",
        "/v1/messages/batches",
        Some(json!({ "requests": [req(0), req(1), req(2)] })),
        &[],
        0.0,
    );
    assert_eq!(st, 400);
    assert_eq!(
        e["error"]["message"],
        "requests: List should have at most 2 items after validation, not 3"
    );
    let (st, e) = call(
        &mut s,
        "POST",
        "/v1/messages/batches",
        Some(json!({ "requests": [req(0)] })),
        &[("content-length", "1001")],
        0.0,
    );
    assert_eq!(st, 413);
    assert_eq!(e["error"]["type"], "request_too_large");
    // OpenAI: the input file's bytes at upload, its lines at the batch's validation.
    let body = |bytes: usize| json!({ "purpose": "batch", "filename": "in.jsonl", "bytes": bytes, "content": "", "lines": [] });
    let (st, _) = call(&mut s, "POST", "/v1/files", Some(body(1000)), &[], 0.0);
    assert_eq!(st, 200);
    let (st, e) = call(&mut s, "POST", "/v1/files", Some(body(1001)), &[], 0.0);
    assert_eq!(st, 400);
    assert_eq!(
        e["error"]["message"],
        "File is too large: 1001 bytes; a file for purpose 'batch' may be at most 1000 bytes."
    );
    let lines = [
        chat_line("a", "x"),
        chat_line("b", "y"),
        chat_line("c", "z"),
    ];
    let file = upload(&mut s, &lines, 0.0);
    let b = create(&mut s, &file, 0.0);
    let path = format!("/v1/batches/{}", b["id"].as_str().unwrap());
    let (_, b) = call(&mut s, "GET", &path, None, &[], 100.0);
    assert_eq!(b["status"], "failed");
    assert_eq!(b["errors"]["data"][0]["code"], "batch_too_large");
    assert_eq!(
        b["errors"]["data"][0]["message"],
        "The input file has 3 requests; a batch may have at most 2."
    );
    // Over the APIs' own limits, or not whole: refused.
    for (key, n) in [
        ("batches.maxRequests", 100_001.0),
        ("batches.maxBytes", 0.0),
        ("batches.maxRequests", 1.5),
    ] {
        let get = |k: &str| {
            if k == key {
                Raw::Number(n)
            } else {
                Raw::Missing
            }
        };
        assert!(Settings::from_options(&get).is_err(), "{key} {n}");
    }
    let get = |k: &str| match k {
        "batches.maxRequests" => Raw::Number(20.0),
        _ => Raw::Missing,
    };
    let set = Settings::from_options(&get).unwrap();
    assert_eq!(
        (set.requests_limit(50_000), set.bytes_limit(200 << 20)),
        (20, 200 << 20)
    );
    let d = Settings::default();
    assert_eq!(
        (d.requests_limit(50_000), d.requests_limit(100_000)),
        (50_000, 100_000)
    );
}
