//! Reply shapes, validation and auth errors, paths.

use super::*;

#[test]
fn anthropic_reply_shape() {
    let mut sim = Simulator::new(quiet());
    let text = "Please summarise: the \"quick\" brown fox jumps over the lazy dog";
    let d = send(&mut sim, MESSAGES, &body(MESSAGES, text, None), 0.0);
    assert_eq!((d.status, d.action), (200, Action::Reply));
    let v = parsed(&d);
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "sim-1");
    assert!(v["id"].as_str().unwrap().starts_with("msg_sim_"));
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    let out = v["usage"]["output_tokens"].as_u64().unwrap();
    assert_eq!(
        v["usage"]["input_tokens"],
        (text.chars().count() as u64).div_ceil(4)
    );
    assert!((20..=256).contains(&out), "{out}");
    let hash = reply::prompt_hash(text);
    let reply = v["content"][0]["text"].as_str().unwrap();
    let prefix = format!(
        "Summary {:08x}: Please summarise: the \"quick\"",
        hash >> 32
    );
    assert!(reply.starts_with(&prefix), "{reply}");
    assert_eq!(d.delay_ms, 10.0 + out as f64);
    assert!(header(&d, "request-id").unwrap().starts_with("req_sim_"));
    assert_eq!(header(&d, "content-type"), Some("application/json"));

    // A lower max_tokens cuts the same reply short.
    let d = send(&mut sim, MESSAGES, &body(MESSAGES, text, Some(5)), 0.0);
    let v = parsed(&d);
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 5);
    assert_eq!(v["content"][0]["text"], reply[..20].trim_end());
}

#[test]
fn openai_reply_shape() {
    let mut sim = Simulator::new(Config {
        epoch_ms: 1_700_000_000_000,
        ..quiet()
    });
    let b = json!({ "model": "gpt-sim", "max_completion_tokens": 3, "messages": [
        { "role": "system", "content": "Be brief." },
        { "role": "user", "content": [{ "type": "text", "text": "Hello there" }] }] });
    let d = send(&mut sim, CHAT, &b, 2500.0);
    assert_eq!(d.status, 200);
    let v = parsed(&d);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["created"], 1_700_000_002);
    assert_eq!(v["model"], "gpt-sim");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-sim"));
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(choice["message"]["content"].as_str().unwrap().len(), 12);
    // "Be brief." + "Hello there" = 20 chars = 5 tokens.
    let usage = json!({ "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8 });
    assert_eq!(v["usage"], usage);
    assert!(header(&d, "x-request-id").unwrap().starts_with("req_"));
    let full = send(&mut sim, CHAT, &body(CHAT, "Hello there", None), 0.0);
    assert_eq!(parsed(&full)["choices"][0]["finish_reason"], "stop");
}

/// method, path, headers, body, then the status, error type and a piece of the message.
type Row<'a> = (
    &'a str,
    &'a str,
    &'a Headers,
    Option<Value>,
    u16,
    &'a str,
    &'a str,
);
type Headers = Vec<(String, String)>;

#[test]
fn validation_and_auth_errors() {
    let no_headers: Vec<(String, String)> = Vec::new();
    let only_key = vec![("x-api-key".to_string(), "k".to_string())];
    let basic = vec![("authorization".to_string(), "Basic abc".to_string())];
    let empty_bearer = vec![("authorization".to_string(), "Bearer ".to_string())];
    let a = auth(MESSAGES);
    let o = auth(CHAT);
    let ok_a = body(MESSAGES, "hi", None);
    let ok_o = body(CHAT, "hi", None);
    let msgs = json!([{ "role": "user", "content": "hi" }]);
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("POST", MESSAGES, &no_headers, Some(ok_a.clone()), 401, "authentication_error", "x-api-key"),
        ("POST", MESSAGES, &only_key, Some(ok_a.clone()), 400, "invalid_request_error", "anthropic-version"),
        ("POST", MESSAGES, &a, None, 400, "invalid_request_error", "not valid JSON"),
        ("POST", MESSAGES, &a, Some(json!({ "max_tokens": 5, "messages": msgs })), 400, "invalid_request_error", "model: Field required"),
        ("POST", MESSAGES, &a, Some(json!({ "model": "m", "messages": msgs })), 400, "invalid_request_error", "max_tokens: Field required"),
        ("POST", MESSAGES, &a, Some(json!({ "model": "m", "max_tokens": 0, "messages": msgs })), 400, "invalid_request_error", "max_tokens: Input should be"),
        ("POST", MESSAGES, &a, Some(json!({ "model": "m", "max_tokens": 1.5, "messages": msgs })), 400, "invalid_request_error", "max_tokens: Input should be"),
        ("POST", MESSAGES, &a, Some(json!({ "model": "m", "max_tokens": 5 })), 400, "invalid_request_error", "messages: Field required"),
        ("POST", MESSAGES, &a, Some(json!({ "model": "m", "max_tokens": 5, "messages": [] })), 400, "invalid_request_error", "non-empty list"),
        ("POST", MESSAGES, &a, Some(json!({ "model": "m", "max_tokens": 5, "messages": [{ "role": "system", "content": "x" }] })), 400, "invalid_request_error", "messages.0.role"),
        ("POST", MESSAGES, &a, Some(json!({ "model": "m", "max_tokens": 5, "messages": [{ "role": "user" }] })), 400, "invalid_request_error", "messages.0.content: Field required"),
        ("POST", MESSAGES, &a, Some(json!({ "model": "m", "max_tokens": 5, "messages": [{ "role": "user", "content": [{ "text": "x" }] }] })), 400, "invalid_request_error", "messages.0.content.0.type"),
        ("POST", MESSAGES, &a, Some(json!({ "model": "m", "max_tokens": 5, "messages": [{ "role": "user", "content": [{ "type": "text" }] }] })), 400, "invalid_request_error", "messages.0.content.0.text"),
        ("GET", MESSAGES, &a, None, 405, "invalid_request_error", "Method GET"),
        ("POST", "/v1/complete", &a, Some(ok_a.clone()), 404, "not_found_error", "Not found"),
        ("POST", CHAT, &no_headers, Some(ok_o.clone()), 401, "invalid_request_error", "API key"),
        ("POST", CHAT, &basic, Some(ok_o.clone()), 401, "invalid_request_error", "Bearer"),
        ("POST", CHAT, &empty_bearer, Some(ok_o.clone()), 401, "invalid_request_error", "Bearer"),
        ("POST", CHAT, &o, None, 400, "invalid_request_error", "not valid JSON"),
        ("POST", CHAT, &o, Some(json!({ "messages": msgs })), 400, "invalid_request_error", "'model'"),
        ("POST", CHAT, &o, Some(json!({ "model": "m" })), 400, "invalid_request_error", "'messages'"),
        ("POST", CHAT, &o, Some(json!({ "model": "m", "messages": [{ "role": "robot", "content": "x" }] })), 400, "invalid_request_error", "'messages[0].role'"),
        ("POST", CHAT, &o, Some(json!({ "model": "m", "max_tokens": -1, "messages": msgs })), 400, "invalid_request_error", "'max_tokens'"),
    ];
    let mut sim = Simulator::new(Config {
        requests_per_minute: Some(1000),
        ..quiet()
    });
    for (method, path, headers, b, status, ty, needle) in table {
        let req = Request {
            method,
            path,
            headers,
            body: b.as_ref(),
        };
        let d = sim.handle(&req, 0.0);
        let v = parsed(&d);
        let (got_ty, message) = if path == CHAT {
            assert!(v.get("type").is_none());
            (&v["error"]["type"], &v["error"]["message"])
        } else {
            assert_eq!(v["type"], "error");
            (&v["error"]["type"], &v["error"]["message"])
        };
        let message = message.as_str().unwrap();
        assert_eq!(
            (d.status, got_ty.as_str().unwrap()),
            (status, ty),
            "{message}"
        );
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    // Errors are not charged.
    assert_eq!(sim.stats().input_tokens, 0);
}

#[test]
fn paths_may_carry_a_prefix_and_a_query() {
    let table = [
        ("/v1/messages", Some(Api::Anthropic)),
        ("/sim/v1/messages/", Some(Api::Anthropic)),
        ("/v1/messages?beta=true", Some(Api::Anthropic)),
        ("/v1/chat/completions", Some(Api::OpenAi)),
        ("/v1/messages/count_tokens", None),
        ("/", None),
    ];
    for (path, want) in table {
        assert_eq!(Api::from_path(path), want, "{path}");
    }
}
