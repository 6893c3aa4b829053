//! The options' rules, natively.

use super::*;

use serde_json::json;

/// Options as serde reads them (natively from JSON; the wasm build reads JS values).
fn from(v: serde_json::Value) -> RawOptions {
    serde_json::from_value(v).unwrap()
}

#[test]
fn defaults() {
    // The declared defaults, as docs/API.md gives them (Config::default() is these).
    let o = RawOptions::default().validate().unwrap();
    let ms = Duration::from_millis;
    let c = &o.config;
    assert_eq!((c.concurrency, c.max_retries), (8, 4));
    assert_eq!((c.timeout, c.deadline), (Some(ms(60_000)), None));
    assert_eq!(
        c.backoff,
        Backoff::new(ms(500), ms(30_000), Jitter::Full).unwrap()
    );
    assert_eq!((c.max_retry_after, c.max_attempts), (ms(60_000), None));
    assert_eq!(o.config, Config::default());
    assert_eq!(o.seed, None);
    assert_eq!(o.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
    assert_eq!(
        DEFAULT_MAX_RESPONSE_BYTES,
        16 << 20,
        "16 MiB, as docs/API.md says"
    );
    let bad = from(json!({"maxResponseBytes": 0}));
    assert_eq!(
        bad.validate().unwrap_err().message,
        "maxResponseBytes must be an integer in 1..=1073741824, got 0"
    );
}

#[test]
fn messages_name_the_option_and_value() {
    let cases: Vec<(RawOptions, OptionErrorKind, &str)> = vec![
        (
            from(json!({"concurrency": "abc"})),
            OptionErrorKind::Type,
            "concurrency must be an integer in 1..=10000, got \"abc\"",
        ),
        (
            from(json!({"concurrency": 0})),
            OptionErrorKind::Range,
            "concurrency must be an integer in 1..=10000, got 0",
        ),
        (
            // A negative integer (serde's i64, not u64) is a number too.
            from(json!({"concurrency": -3})),
            OptionErrorKind::Range,
            "concurrency must be an integer in 1..=10000, got -3",
        ),
        (
            from(json!({"maxRetries": 1.5})),
            OptionErrorKind::Range,
            "maxRetries must be an integer in 0..=100, got 1.5",
        ),
        (
            RawOptions {
                timeout_ms: Raw::Number(f64::NAN),
                ..Default::default()
            },
            OptionErrorKind::Range,
            "timeoutMs must be an integer in 1..=2147483647, got NaN",
        ),
        (
            from(json!({"deadlineMs": true})),
            OptionErrorKind::Type,
            "deadlineMs must be an integer in 1..=2147483647, got true",
        ),
        (
            from(json!({"backoff": {"jitter": "wild"}})),
            OptionErrorKind::Range,
            "backoff.jitter must be \"full\", \"decorrelated\" or \"none\", got \"wild\"",
        ),
        (
            from(json!({"backoff": {"baseMs": 1000, "maxMs": 10}})),
            OptionErrorKind::Range,
            "backoff.maxMs must be at least backoff.baseMs (1000), got 10",
        ),
        (
            from(json!({"seed": {}})),
            OptionErrorKind::Type,
            "seed must be an integer in 0..=9007199254740991, got a value of type object",
        ),
    ];
    for (raw, kind, message) in cases {
        let err = raw.validate().unwrap_err();
        assert_eq!((err.kind, err.message.as_str()), (kind, message));
    }
}

#[test]
fn values_are_applied() {
    let raw = from(
        json!({"concurrency": 3, "maxRetries": 0, "timeoutMs": 250, "deadlineMs": 9000, "backoff": {"baseMs": 40000, "jitter": "none"}, "maxRetryAfterMs": 0, "maxAttempts": 50, "seed": 42}),
    );
    let o = raw.validate().unwrap();
    let ms = Duration::from_millis;
    assert_eq!(o.config.concurrency, 3);
    assert_eq!(o.config.max_retries, 0);
    assert_eq!(o.config.timeout, Some(ms(250)));
    assert_eq!(o.config.deadline, Some(ms(9000)));
    // maxMs defaults to 30 s but never below baseMs.
    assert_eq!(
        o.config.backoff,
        Backoff::new(ms(40_000), ms(40_000), Jitter::None).unwrap()
    );
    assert_eq!(o.config.max_retry_after, ms(0));
    assert_eq!(o.config.max_attempts, Some(50));
    assert_eq!(o.seed, Some(42));
}

#[test]
fn pacing_options() {
    let o = RawOptions::default().validate().unwrap();
    assert_eq!(o.pacing, PacingConfig::default());
    let raw = from(
        json!({"rateLimit": {"requestsPerMinute": 50, "outputTokensPerMinute": 8000}, "adaptive": false, "breaker": {"failures": 0, "cooldownMs": 250}}),
    );
    let p = raw.validate().unwrap().pacing;
    assert_eq!(
        (
            p.requests_per_minute,
            p.input_tokens_per_minute,
            p.output_tokens_per_minute
        ),
        (Some(50), None, Some(8000))
    );
    assert!(!p.adaptive);
    assert_eq!(
        (p.breaker_failures, p.breaker_cooldown),
        (0, Duration::from_millis(250))
    );
    let bad = from(json!({"adaptive": "yes"}));
    assert_eq!(
        bad.validate().unwrap_err().message,
        "adaptive must be a boolean, got \"yes\""
    );
    let bad = from(json!({"rateLimit": {"requestsPerMinute": 0}}));
    assert_eq!(
        bad.validate().unwrap_err().message,
        "rateLimit.requestsPerMinute must be an integer in 1..=1000000000000, got 0"
    );
}

#[test]
fn unknown_keys_are_named() {
    assert_eq!(
        unknown_key("", "concurency").message,
        "unknown option \"concurency\""
    );
    assert_eq!(
        unknown_key("backoff.", "base").message,
        "unknown option \"backoff.base\""
    );
}

#[test]
fn every_jitter_mode_is_accepted() {
    let ms = Duration::from_millis;
    for (name, mode) in [
        ("full", Jitter::Full),
        ("decorrelated", Jitter::Decorrelated),
        ("none", Jitter::None),
    ] {
        let raw = from(json!({"backoff": {"jitter": name}}));
        assert_eq!(
            raw.validate().unwrap().config.backoff,
            Backoff::new(ms(500), ms(30_000), mode).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn messages_print_exactly() {
    let err = from(json!({"concurrency": 0})).validate().unwrap_err();
    assert_eq!(err.to_string(), err.message);
    assert!(err.message.starts_with("concurrency must be"), "{err}");
}

#[test]
fn each_budget_reaches_its_own_field_and_seeds_stop_at_2_to_the_53() {
    let raw = from(
        json!({"rateLimit": {"requestsPerMinute": 50, "inputTokensPerMinute": 40000, "outputTokensPerMinute": 8000}, "seed": 9007199254740991u64}),
    );
    let o = raw.validate().unwrap();
    let p = o.pacing;
    assert_eq!(
        (
            p.requests_per_minute,
            p.input_tokens_per_minute,
            p.output_tokens_per_minute
        ),
        (Some(50), Some(40_000), Some(8000))
    );
    assert_eq!(o.seed, Some(9_007_199_254_740_991));
    let too_big = from(json!({"seed": 9007199254740992u64}));
    assert_eq!(
        too_big.validate().unwrap_err().message,
        "seed must be an integer in 0..=9007199254740991, got 9007199254740992"
    );
}

#[test]
fn each_kind_says_what_it_expects() {
    let spec = |kind| OptionSpec::new("x", "x", kind, DefaultValue::Absent("none"), "");
    let table = [
        (Kind::Int { min: 0, max: 5 }, "an integer in 0..=5"),
        (Kind::Bool, "a boolean"),
        (Kind::OneOf(&["a"]), "\"a\""),
        (Kind::OneOf(&["a", "b"]), "\"a\" or \"b\""),
        (Kind::OneOf(&["a", "b", "c"]), "\"a\", \"b\" or \"c\""),
        (Kind::Text, "a string"),
        (Kind::Object(&[]), "an object"),
        (Kind::Function, "a function"),
        (Kind::AbortSignal, "an AbortSignal"),
        (Kind::Methods(&[]), "an object"),
    ];
    for (kind, want) in table {
        assert_eq!(spec(kind).expected(), want);
    }
    let err = spec(Kind::Function).refuse(OptionErrorKind::Type, "5");
    assert_eq!(
        (err.kind, err.message.as_str()),
        (OptionErrorKind::Type, "x must be a function, got 5")
    );
}

#[test]
fn null_is_a_wrong_type_and_unknown_keys_are_refused_by_serde_too() {
    let err = from(json!({"concurrency": null})).validate().unwrap_err();
    assert_eq!(err.kind, OptionErrorKind::Type);
    assert_eq!(
        err.message,
        "concurrency must be an integer in 1..=10000, got a value of type null"
    );
    let err = from(json!({"backoff": {"jitter": ["full"]}}))
        .validate()
        .unwrap_err();
    assert!(err.message.ends_with("got a value of type object"), "{err}");
    assert!(serde_json::from_value::<RawOptions>(json!({"backoff": {"base": 1}})).is_err());
    assert!(serde_json::from_value::<RawOptions>(json!({"timeout": 1})).is_err());
}

#[test]
fn accessors_pair_each_value_with_its_own_declaration() {
    let raw = RawOptions::default();
    assert_eq!(raw.concurrency().spec.name, "concurrency");
    assert_eq!(raw.max_response_bytes().spec.name, "maxResponseBytes");
    assert_eq!(raw.cost().spec.kind, Kind::Function);
    let backoff = RawBackoff::default();
    assert_eq!(backoff.jitter().spec.name, "backoff.jitter");
    assert_eq!(backoff.jitter().spec.key, "jitter");
    // A choice not given reads as its declared default (not only as the reader's fallback).
    assert_eq!(backoff.jitter().choice(), Ok(Some("full")));
    assert_eq!(
        RawBreaker::default().cooldown_ms().spec.default,
        DefaultValue::Int(500)
    );
    assert_eq!(
        RawCallOptions::default().signal().spec.kind,
        Kind::AbortSignal
    );
    // A limiter's shared keys are BatchProcessor's declared options.
    for key in LIMITER_SHARED {
        assert!(OptionSpec::find(OPTIONS, key).is_some(), "{key}");
    }
    assert_eq!(OptionSpec::find(OPTIONS, "nope"), None);
}

/// What a serde reader of JS values hands serde for a value of no JSON type: its `typeof`
/// name in bytes; or (here, as no reader does) borrowed bytes.
enum Unusual {
    TypeName(&'static str),
    Bytes(&'static [u8]),
}

impl<'de> serde::Deserializer<'de> for Unusual {
    type Error = serde::de::value::Error;
    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self {
            Unusual::TypeName(name) => v.visit_byte_buf(name.as_bytes().to_vec()),
            Unusual::Bytes(b) => v.visit_bytes(b),
        }
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

#[test]
fn a_js_value_of_no_json_type_is_read_by_its_type_name() {
    use serde::Deserialize;
    assert_eq!(
        Raw::deserialize(Unusual::TypeName("function")),
        Ok(Raw::Other("function".into()))
    );
    let err = Raw::deserialize(Unusual::Bytes(b"x")).unwrap_err();
    assert!(err.to_string().ends_with("expected any value"), "{err}");
}

/// A JSON value as the JS edge's [`Source`] sees an options object (`null` is given, a
/// missing key is not).
struct JsonSource(serde_json::Value);

impl Source for JsonSource {
    fn field(&self, key: &str) -> Option<Self> {
        self.0.get(key).cloned().map(JsonSource)
    }
    fn raw(&self) -> Raw {
        use serde_json::Value;
        match &self.0 {
            Value::Null => Raw::Other("null".into()),
            Value::Bool(b) => Raw::Bool(*b),
            Value::Number(n) => Raw::Number(n.as_f64().unwrap()),
            Value::String(s) => Raw::Text(s.clone()),
            Value::Array(_) | Value::Object(_) => Raw::Other("object".into()),
        }
    }
    fn is_null(&self) -> bool {
        self.0.is_null()
    }
}

/// The wasm build reads options through [`Fields`], not serde: both give the same structs.
#[test]
fn fields_read_what_serde_reads() {
    let given = json!({
        "concurrency": 3, "maxRetries": "2", "timeoutMs": null, "adaptive": false,
        "seed": [1], "deadlineMs": {"a": 1}, "signal": 5, "maxCostUsd": 0.5,
        "backoff": {"baseMs": 10, "jitter": "none"}, "rateLimit": null,
        "breaker": {}, "prices": {"m": {"inputPerMTok": 1}},
    });
    let by_serde: RawOptions = serde_json::from_value(given.clone()).unwrap();
    let by_fields = <RawOptions as Fields>::read(&JsonSource(given));
    assert_eq!(format!("{by_fields:?}"), format!("{by_serde:?}"));
    assert_eq!(by_fields.concurrency, Raw::Number(3.0));
    assert_eq!(by_fields.timeout_ms, Raw::Other("null".into()));
    assert_eq!(by_fields.deadline_ms, Raw::Other("object".into()));
    assert!(by_fields.rate_limit.is_none() && by_fields.breaker.is_some());
    assert_eq!(by_fields.backoff.unwrap().jitter, Raw::Text("none".into()));
    let entry = json!({"model": "m", "overrides": {"max_tokens": 5}});
    let by_serde: RawFallback = serde_json::from_value(entry.clone()).unwrap();
    let by_fields = <RawFallback as Fields>::read(&JsonSource(entry));
    assert_eq!(format!("{by_fields:?}"), format!("{by_serde:?}"));
}
