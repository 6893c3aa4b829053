//! `stream: true`: the event sequences of both APIs read back as a client would, their text
//! and usage against the plain reply to the same request, timing, faults and validation.

use super::*;

/// A stream's events as `(event name, data)`: every event ends with a blank line, and holds
/// one `data:` line, after an `event:` line when the API names its events.
fn read_events(body: &str) -> Vec<(Option<String>, String)> {
    assert!(
        body.ends_with("\n\n"),
        "a stream ends with a whole event: {body:?}"
    );
    body[..body.len() - 2]
        .split("\n\n")
        .map(|frame| {
            let mut name = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event: {frame:?}");
                    data = Some(d.to_owned());
                } else {
                    panic!("unexpected line {line:?} in {frame:?}");
                }
            }
            (name, data.expect("every event has data"))
        })
        .collect()
}

fn json_of(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"))
}

/// The same request without and with `stream: true` (and the fields of `extra`), each on a
/// fresh simulator of the same settings (so ids, headers and jitter line up).
fn plain_and_streamed(
    config: &Config,
    path: &str,
    b: &Value,
    extra: Value,
) -> (Decision, Decision) {
    let mut streamed = b.clone();
    streamed["stream"] = json!(true);
    for (k, v) in extra.as_object().unwrap() {
        streamed[k] = v.clone();
    }
    let plain = send(&mut Simulator::new(config.clone()), path, b, 0.0);
    let stream = send(&mut Simulator::new(config.clone()), path, &streamed, 0.0);
    (plain, stream)
}

#[test]
fn anthropic_events_reassemble_the_plain_reply() {
    let config = Config {
        requests_per_minute: Some(100),
        ..quiet()
    };
    for max_tokens in [None, Some(5)] {
        let b = body(
            MESSAGES,
            "Please summarise the quarterly report",
            max_tokens,
        );
        let (plain, d) = plain_and_streamed(&config, MESSAGES, &b, json!({}));
        let want = parsed(&plain);
        assert_eq!(d.status, 200);
        assert_eq!(
            header(&d, "content-type"),
            Some("text/event-stream; charset=utf-8")
        );
        assert_eq!(header(&d, "cache-control"), Some("no-cache"));
        // The same rate-limit headers and request id as the plain reply.
        for (name, value) in &plain.headers {
            if name != "content-type" {
                assert_eq!(header(&d, name), Some(value.as_str()), "{name}");
            }
        }
        let events = read_events(&d.body);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
        let deltas = names.len() - 6;
        assert!(
            max_tokens.is_some() || deltas >= 3,
            "several deltas: {names:?}"
        );
        let mut expected = vec!["message_start", "content_block_start", "ping"];
        expected.extend(std::iter::repeat_n("content_block_delta", deltas));
        expected.extend(["content_block_stop", "message_delta", "message_stop"]);
        assert_eq!(names, expected);

        let mut text = String::new();
        let mut output_tokens = None;
        for (name, data) in &events {
            let v = json_of(data);
            assert_eq!(v["type"], name.as_deref().unwrap(), "{data}");
            match name.as_deref().unwrap() {
                "message_start" => {
                    let m = &v["message"];
                    assert_eq!((&m["id"], &m["model"]), (&want["id"], &want["model"]));
                    assert_eq!(
                        (&m["type"], &m["role"]),
                        (&json!("message"), &json!("assistant"))
                    );
                    assert_eq!(m["content"], json!([]));
                    assert!(m["stop_reason"].is_null());
                    assert_eq!(m["usage"]["input_tokens"], want["usage"]["input_tokens"]);
                }
                "content_block_start" => {
                    let block = json!({ "type": "text", "text": "" });
                    assert_eq!((&v["index"], &v["content_block"]), (&json!(0), &block));
                }
                "content_block_delta" => {
                    assert_eq!(
                        (&v["index"], &v["delta"]["type"]),
                        (&json!(0), &json!("text_delta"))
                    );
                    text.push_str(v["delta"]["text"].as_str().unwrap());
                }
                "message_delta" => {
                    assert_eq!(v["delta"]["stop_reason"], want["stop_reason"]);
                    assert!(v["delta"]["stop_sequence"].is_null());
                    output_tokens = Some(v["usage"]["output_tokens"].clone());
                }
                _ => {}
            }
        }
        assert_eq!(text, want["content"][0]["text"].as_str().unwrap());
        assert_eq!(
            output_tokens.as_ref(),
            Some(&want["usage"]["output_tokens"])
        );

        // Same total time: the plain reply's generation time is spread over the gaps.
        let Action::Stream { event_ms } = d.action else {
            panic!("{:?}", d.action)
        };
        let total = d.delay_ms + event_ms * (events.len() - 1) as f64;
        assert!(
            (total - plain.delay_ms).abs() < 1e-9,
            "{total} vs {}",
            plain.delay_ms
        );
        assert_eq!(d.delay_ms, 10.0, "the first event after the base latency");
    }
}

#[test]
fn openai_chunks_with_and_without_usage() {
    let config = Config {
        epoch_ms: 1_700_000_000_000,
        ..quiet()
    };
    for include_usage in [false, true] {
        let b = body(CHAT, "Tell me about the report, briefly please", Some(12));
        let options = json!({ "stream_options": { "include_usage": include_usage } });
        let (plain, d) = plain_and_streamed(&config, CHAT, &b, options);
        let want = parsed(&plain);
        assert_eq!(
            header(&d, "content-type"),
            Some("text/event-stream; charset=utf-8")
        );
        let events = read_events(&d.body);
        assert!(
            events.iter().all(|(name, _)| name.is_none()),
            "OpenAI names no events"
        );
        assert_eq!(events.last().unwrap().1, "[DONE]");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|(_, data)| json_of(data))
            .collect();
        let (body_chunks, usage_chunk) = if include_usage {
            let (last, rest) = chunks.split_last().unwrap();
            (rest, Some(last))
        } else {
            (&chunks[..], None)
        };
        let mut text = String::new();
        for (i, c) in body_chunks.iter().enumerate() {
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!((&c["id"], &c["model"]), (&want["id"], &want["model"]));
            assert_eq!(c["created"], want["created"]);
            assert_eq!(c.get("usage"), include_usage.then_some(&Value::Null));
            let choice = &c["choices"][0];
            assert_eq!(c["choices"].as_array().unwrap().len(), 1);
            assert_eq!(choice["index"], 0);
            let last = i == body_chunks.len() - 1;
            if i == 0 {
                assert_eq!(choice["delta"]["role"], "assistant");
            }
            if last {
                assert_eq!(choice["delta"], json!({}));
                assert_eq!(choice["finish_reason"], want["choices"][0]["finish_reason"]);
            } else {
                assert!(choice["finish_reason"].is_null());
                text.push_str(choice["delta"]["content"].as_str().unwrap());
            }
        }
        assert!(
            body_chunks.len() >= 4,
            "several chunks: {}",
            body_chunks.len()
        );
        assert_eq!(
            text,
            want["choices"][0]["message"]["content"].as_str().unwrap()
        );
        match usage_chunk {
            Some(u) => {
                assert_eq!(u["choices"], json!([]));
                assert_eq!(u["usage"], want["usage"]);
            }
            None => assert!(chunks.iter().all(|c| c.get("usage").is_none())),
        }
        let Action::Stream { event_ms } = d.action else {
            panic!("{:?}", d.action)
        };
        let total = d.delay_ms + event_ms * (events.len() - 1) as f64;
        assert!(
            (total - plain.delay_ms).abs() < 1e-9,
            "{total} vs {}",
            plain.delay_ms
        );
    }
}

#[test]
fn a_stream_error_breaks_off_halfway() {
    let config = Config {
        faults: Faults {
            stream_error: 1.0,
            ..Faults::default()
        },
        ..quiet()
    };
    let mut sim = Simulator::new(config.clone());
    let mut b = body(MESSAGES, "Summarise the annual report for me", None);
    b["stream"] = json!(true);
    let d = send(&mut sim, MESSAGES, &b, 0.0);
    assert_eq!(d.status, 200);
    assert!(matches!(d.action, Action::Stream { .. }));
    let events = read_events(&d.body);
    let (name, data) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"));
    let error = json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } });
    assert_eq!(json_of(data), error);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert!(!names.contains(&"message_stop") && !names.contains(&"content_block_stop"));
    assert!(
        names.contains(&"content_block_delta"),
        "some text came first: {names:?}"
    );
    // Charged as admitted, counted as a broken stream.
    let s = sim.stats();
    assert_eq!((s.streams, s.stream_errors), (1, 1));
    assert!(s.output_tokens > 0);

    let mut b = body(CHAT, "Summarise the annual report for me", None);
    b["stream"] = json!(true);
    let d = send(&mut sim, CHAT, &b, 0.0);
    let events = read_events(&d.body);
    let last = json_of(&events.last().unwrap().1);
    assert_eq!(last["error"]["type"], "server_error");
    assert!(events.iter().all(|(_, data)| data != "[DONE]"));
    assert!(events.len() >= 2, "a chunk before the error");

    // A plain request's roll of the same fault is a normal reply.
    let d = send(&mut sim, MESSAGES, &body(MESSAGES, "plain", None), 0.0);
    assert_eq!((d.status, d.action), (200, Action::Reply));
    assert_eq!(parsed(&d)["type"], "message");
}

#[test]
fn errors_before_the_stream_are_json() {
    let mut sim = Simulator::new(Config {
        requests_per_minute: Some(1),
        ..quiet()
    });
    let mut b = body(MESSAGES, "one", None);
    b["stream"] = json!(true);
    assert_eq!(send(&mut sim, MESSAGES, &b, 0.0).status, 200);
    let d = send(&mut sim, MESSAGES, &b, 1.0);
    assert_eq!((d.status, d.action), (429, Action::Reply));
    assert_eq!(header(&d, "content-type"), Some("application/json"));
    assert!(header(&d, "retry-after-ms").is_some());
    assert_eq!(parsed(&d)["error"]["type"], "rate_limit_error");

    let mut sim = Simulator::new(Config {
        faults: Faults {
            rate529: 1.0,
            ..Faults::default()
        },
        ..quiet()
    });
    let d = send(&mut sim, MESSAGES, &b, 0.0);
    assert_eq!(d.status, 529);
    assert_eq!(parsed(&d)["error"]["type"], "overloaded_error");
    assert_eq!(sim.stats().streams, 0);
}

#[test]
fn other_faults_on_a_stream() {
    let faults = |f: Faults| {
        let mut sim = Simulator::new(Config {
            faults: f,
            ..quiet()
        });
        let mut b = body(MESSAGES, "Summarise the report", None);
        b["stream"] = json!(true);
        send(&mut sim, MESSAGES, &b, 0.0)
    };
    let slow = faults(Faults {
        slow_body: 1.0,
        ..Faults::default()
    });
    assert!(matches!(slow.action, Action::SlowBody { .. }));
    assert_eq!(
        read_events(&slow.body)[0].0.as_deref(),
        Some("message_start")
    );
    // Malformed: the stream is cut off in the middle of an event.
    let cut = faults(Faults {
        malformed: 1.0,
        ..Faults::default()
    });
    assert_eq!(cut.action, Action::Malformed);
    assert!(cut.body.starts_with("event: message_start\n"));
    assert!(!cut.body.contains("message_stop"));
}

#[test]
fn stream_flags_are_checked() {
    let msgs = json!([{ "role": "user", "content": "hi" }]);
    let mut sim = Simulator::new(quiet());
    let bad = json!({ "model": "m", "max_tokens": 5, "messages": msgs, "stream": "yes" });
    let d = send(&mut sim, MESSAGES, &bad, 0.0);
    assert_eq!(d.status, 400);
    assert_eq!(
        parsed(&d)["error"]["message"],
        "stream: Input should be a valid boolean"
    );
    let bad =
        json!({ "model": "m", "messages": msgs, "stream_options": { "include_usage": true } });
    let d = send(&mut sim, CHAT, &bad, 0.0);
    assert_eq!(d.status, 400);
    let e = &parsed(&d)["error"];
    assert_eq!(e["param"], "stream_options");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("only allowed when 'stream' is enabled"));
    let bad = json!({ "model": "m", "messages": msgs, "stream": true, "stream_options": { "include_usage": 1 } });
    let d = send(&mut sim, CHAT, &bad, 0.0);
    assert_eq!(parsed(&d)["error"]["param"], "stream_options.include_usage");
    // `stream: false` is a plain reply.
    let plain = json!({ "model": "m", "max_tokens": 5, "messages": msgs, "stream": false });
    assert_eq!(send(&mut sim, MESSAGES, &plain, 0.0).action, Action::Reply);
    assert_eq!(sim.stats().input_tokens, 1, "the bad ones were not charged");
}

#[test]
fn pieces_join_back() {
    for text in [
        "",
        "one",
        "a b c d e f g",
        "Summary 0a1b2c3d: x  y",
        " lead",
    ] {
        let parts = stream::pieces(text);
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| !p.is_empty()));
    }
    assert_eq!(stream::pieces("a b c d e f g"), ["a b c", " d e f", " g"]);
}
