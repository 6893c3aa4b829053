//! OpenAI's Files and Batch API: upload a JSONL input file (`purpose: "batch"`), make a
//! batch from it (`endpoint: "/v1/chat/completions"`, `completion_window: "24h"`), follow
//! it (validating → in_progress → finalizing → completed, or failed / expired /
//! cancelling → cancelled), and read its output and error files in OpenAI's line format
//! `{ id, custom_id, response: { status_code, request_id, body }, error }`. Limits as the
//! API's: 50,000 requests and 200 MB an input file (lower with `batches.maxRequests` /
//! `.maxBytes`). As the API does, a wrong input file
//! fails the batch during validation with `errors.data` naming each bad line.
//!
//! The upload's body reaches the sim as the host read the multipart form (the sim has no
//! JSON or multipart parser of its own): `{ purpose, filename, bytes, content, lines }`,
//! `lines` each line parsed, `false` for one that is not JSON (`js/sim-host.mjs`).

use super::lifecycle::{Batch, Item, Outcome, Phase, Reply, State};
use super::{
    invalid, item_tag, limit, method, not_found, opt, page, reply_for, Answer, File, Route,
};
use crate::api::Api;
use crate::error::ApiError;
use crate::json::Json;
use crate::request;
use crate::text::quote;
use crate::Simulator;

/// At most this many requests an input file.
pub const MAX_REQUESTS: usize = 50_000;
/// At most this many bytes an input file (200 MB).
pub const MAX_BYTES: u64 = 200 * 1024 * 1024;
/// The one endpoint the sim runs batches for.
pub const ENDPOINT: &str = "/v1/chat/completions";

/// One line of an input file as read at upload.
#[derive(Clone, Debug)]
pub enum Line {
    /// A request line: its `custom_id`, `url`, and the reply (or the error) its body gets.
    Request {
        /// The caller's id.
        custom_id: String,
        /// Must be the batch's endpoint.
        url: String,
        /// What the body gets.
        outcome: Outcome,
    },
    /// A line the batch's validation rejects: `(code, message, param)`.
    Bad(&'static str, String, Option<String>),
}

/// `Missing required parameter: 'x'.`, as OpenAI says it.
fn missing(param: &str) -> ApiError {
    ApiError {
        param: Some(param.into()),
        code: Some("missing_required_parameter"),
        ..invalid(format!("Missing required parameter: '{param}'."))
    }
}

/// `Invalid value: 'x'. Supported values are: …`, as OpenAI says it.
fn bad_value(param: &str, got: &str, supported: &str) -> ApiError {
    ApiError {
        param: Some(param.into()),
        code: Some("invalid_value"),
        ..invalid(format!(
            "Invalid value: '{got}'. Supported values are: {supported}."
        ))
    }
}

/// Reads one input line (already parsed by the host; `false` when it was not JSON).
pub fn read_line<J: Json>(line: &J, max_tokens: u64) -> Line {
    if line.boolean() == Some(false) {
        let m = "This line is not parseable as valid JSON.";
        return Line::Bad("invalid_json_line", m.into(), None);
    }
    let mut fields = Vec::new();
    for key in ["custom_id", "method", "url"] {
        match line.field(key).and_then(|v| v.text()) {
            Some(v) => fields.push(v),
            None => {
                let e = missing(key);
                return Line::Bad("missing_required_parameter", e.message, e.param);
            }
        }
    }
    let Some(body) = line.field("body") else {
        let e = missing("body");
        return Line::Bad("missing_required_parameter", e.message, e.param);
    };
    if fields[1] != "POST" {
        let m = format!("Invalid method '{}': a batch request is a POST.", fields[1]);
        return Line::Bad("invalid_request", m, Some("method".into()));
    }
    let outcome = match request::parse(Api::OpenAi, Some(&body)) {
        Ok(p) if p.stream => {
            let m = "Chat Completions: Streaming is not supported in the Batch API.";
            return Line::Bad(
                "streaming_unsupported",
                m.into(),
                Some("body.stream".into()),
            );
        }
        Ok(p) => Outcome::Succeeded(reply_for(&p, max_tokens)),
        Err(e) => {
            let param = format!("body.{}", e.param.as_deref().unwrap_or(""));
            return Line::Bad("invalid_request", e.message, Some(param));
        }
    };
    let url = fields.pop().unwrap_or_default();
    Line::Request {
        custom_id: fields.swap_remove(0),
        url,
        outcome,
    }
}

/// One `errors.data` entry.
fn batch_error(code: &str, message: &str, param: Option<&str>, line: Option<usize>) -> String {
    format!(
        r#"{{"code":{},"message":{},"param":{},"line":{}}}"#,
        quote(code),
        quote(message),
        opt(param),
        line.map_or("null".into(), |n| n.to_string()),
    )
}

/// `n` with a comma between thousands, as OpenAI writes its limits (50,000).
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The batch's items from its input file's lines (at most `most` of them), or the validation
/// errors that fail it.
pub fn validate(lines: &[Line], most: usize) -> Result<Vec<(&str, &Outcome)>, String> {
    if lines.len() > most {
        let m = format!(
            "The input file has {} requests; a batch may have at most {}.",
            lines.len(),
            thousands(most as u64)
        );
        return Err(batch_error("batch_too_large", &m, None, None));
    }
    if lines.is_empty() {
        let m = "The batch input file is empty.";
        return Err(batch_error("empty_file", m, None, None));
    }
    let mut errors = Vec::new();
    let mut items = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        match line {
            Line::Bad(code, m, param) => {
                errors.push(batch_error(code, m, param.as_deref(), Some(n + 1)));
            }
            Line::Request { url, .. } if url != ENDPOINT => {
                let m = "The URL provided for this request does not match the batch endpoint.";
                errors.push(batch_error("invalid_url", m, Some("url"), Some(n + 1)));
            }
            Line::Request {
                custom_id, outcome, ..
            } => items.push((custom_id.as_str(), outcome)),
        }
    }
    if errors.is_empty() {
        if let Some((_, i)) = super::repeated(&items.iter().map(|(c, _)| *c).collect::<Vec<_>>()) {
            let m = "The custom_id for this request is a duplicate of another request. The \
                     custom_id parameter must be unique for each request in a batch.";
            errors.push(batch_error(
                "duplicate_custom_id",
                m,
                Some("custom_id"),
                Some(i + 1),
            ));
        }
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors.join(","))
    }
}

/// One line of the output or error file, and whether it goes to the error file.
pub fn output_line(b: &Batch, i: usize, item: &Item, state: State, created: u64) -> (String, bool) {
    let id = item_tag(&b.id, i, 1);
    let request_id = item_tag(&b.id, i, 2);
    let (response, error, failed) = match (state, &item.outcome) {
        (State::Done, Outcome::Succeeded(r)) => {
            let body = Reply::body(r, Api::OpenAi, &format!("chatcmpl-sim{id}"), created);
            (Some((200, body)), None, false)
        }
        (State::Done, Outcome::Errored(e)) => (
            Some((e.kind.status(Api::OpenAi), e.body(Api::OpenAi))),
            None,
            true,
        ),
        (State::Canceled, _) => (
            None,
            Some((
                "batch_cancelled",
                "This request was not executed because the batch was cancelled.",
            )),
            true,
        ),
        _ => (
            None,
            Some((
                "batch_expired",
                "This request could not be executed before the completion window expired.",
            )),
            true,
        ),
    };
    let response = response.map_or("null".into(), |(status, body)| {
        format!(r#"{{"status_code":{status},"request_id":"req_{request_id}","body":{body}}}"#)
    });
    let error = error.map_or("null".into(), |(code, m)| {
        format!(r#"{{"code":"{code}","message":"{m}"}}"#)
    });
    let line = format!(
        r#"{{"id":"batch_req_{id}","custom_id":{},"response":{response},"error":{error}}}"#,
        quote(&item.custom_id)
    );
    (line, failed)
}

impl Simulator {
    fn secs(&self, ms: f64) -> u64 {
        self.wall_ms(ms) / 1000
    }

    pub(super) fn files<J: Json>(
        &mut self,
        m: &str,
        route: &Route,
        body: Option<&J>,
        now: f64,
    ) -> Result<Answer, ApiError> {
        let (id, action) = route.target();
        let Some(id) = id else {
            return match m {
                "POST" => self.upload(body, now),
                "GET" => {
                    let limit = limit(Api::OpenAi, route, 10_000, 10_000)?;
                    let purpose = route.param("purpose");
                    let live: Vec<&File> = (self.batches.files.iter().rev())
                        .filter(|f| purpose.is_none_or(|p| p == f.purpose))
                        .collect();
                    let ids: Vec<&str> = live.iter().map(|f| f.id.as_str()).collect();
                    let (shown, more) = page(&ids, route.param("after"), None, limit);
                    let data: Vec<String> = (live.iter())
                        .filter(|f| shown.contains(&f.id.as_str()))
                        .map(|f| self.file(f))
                        .collect();
                    Ok(list(&data, &shown, more))
                }
                _ => Err(method(m, "GET or POST")),
            };
        };
        let at = (self.batches.files.iter().position(|f| f.id == id)).ok_or_else(|| ApiError {
            param: Some("id".into()),
            ..not_found(format!("No such File object: {id}"))
        })?;
        let f = &self.batches.files[at];
        match (action, m) {
            (None, "GET") => Ok(Answer::ok(self.file(f))),
            (None, "DELETE") => {
                let body = format!(r#"{{"id":{},"object":"file","deleted":true}}"#, quote(id));
                self.batches.files.remove(at);
                Ok(Answer::ok(body))
            }
            (Some("content"), "GET") => Ok(Answer {
                jsonl: true,
                ..Answer::ok(f.content.clone())
            }),
            (None, _) => Err(method(m, "GET or DELETE")),
            (Some("content"), _) => Err(method(m, "GET")),
            _ => Err(not_found(format!("Not found: {}", route.rest))),
        }
    }

    fn upload<J: Json>(&mut self, body: Option<&J>, now: f64) -> Result<Answer, ApiError> {
        let Some(body) = body else {
            return Err(invalid(
                "Expected a multipart/form-data body with the fields 'purpose' and 'file'.".into(),
            ));
        };
        let text = |key: &str| body.field(key).and_then(|v| v.text());
        let purpose = text("purpose").ok_or_else(|| missing("purpose"))?;
        // The SDKs' `FilePurpose` (`batch_output` is the API's own). Another is refused here,
        // not stored as given: a typo'd one would surface only later, as a batch that cannot
        // find its input file.
        let known = "'assistants', 'batch', 'fine-tune', 'vision', 'user_data', and 'evals'";
        if !matches!(
            purpose.as_str(),
            "assistants" | "batch" | "fine-tune" | "vision" | "user_data" | "evals"
        ) {
            return Err(bad_value("purpose", &purpose, known));
        }
        let content = text("content").ok_or_else(|| missing("file"))?;
        let bytes = body.field("bytes").and_then(|b| b.number()).unwrap_or(0.0) as u64;
        let most = self.config.batches.bytes_limit(MAX_BYTES);
        if purpose == "batch" && bytes > most {
            let most = if most == MAX_BYTES {
                "200 MB".into()
            } else {
                format!("{most} bytes")
            };
            return Err(ApiError {
                param: Some("file".into()),
                ..invalid(format!(
                    "File is too large: {bytes} bytes; a file for purpose 'batch' may be at \
                     most {most}."
                ))
            });
        }
        let max_tokens = self.config.max_tokens;
        let lines = match purpose.as_str() {
            "batch" => (body.field("lines").map(|l| l.items()).unwrap_or_default())
                .iter()
                .map(|l| read_line(l, max_tokens))
                .collect(),
            _ => Vec::new(),
        };
        let file = File {
            id: format!("file-sim{}", self.batch_tag(2)),
            filename: text("filename").unwrap_or_else(|| "upload.jsonl".into()),
            purpose,
            created_ms: now,
            content,
            lines,
        };
        let answer = Answer::ok(self.file(&file));
        self.batches.files.push(file);
        Ok(answer)
    }

    /// The `file` object.
    fn file(&self, f: &File) -> String {
        format!(
            r#"{{"id":{},"object":"file","bytes":{},"created_at":{},"filename":{},"purpose":{},"status":"processed","expires_at":null,"status_details":null}}"#,
            quote(&f.id),
            f.content.len(),
            self.secs(f.created_ms),
            quote(&f.filename),
            quote(&f.purpose),
        )
    }

    pub(super) fn openai_batches<J: Json>(
        &mut self,
        m: &str,
        route: &Route,
        body: Option<&J>,
        now: f64,
    ) -> Result<Answer, ApiError> {
        let (id, action) = route.target();
        let Some(id) = id else {
            return match m {
                "POST" => self.create_batch(body, now),
                "GET" => {
                    let limit = limit(Api::OpenAi, route, 20, 100)?;
                    let mine: Vec<usize> = (0..self.batches.batches.len())
                        .rev()
                        .filter(|&i| self.batches.batches[i].api == Api::OpenAi)
                        .collect();
                    let ids: Vec<String> = (mine.iter())
                        .map(|&i| self.batches.batches[i].id.clone())
                        .collect();
                    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                    let (shown, more) = page(&refs, route.param("after"), None, limit);
                    let mut data = Vec::new();
                    for &i in &mine {
                        if shown.contains(&self.batches.batches[i].id.as_str()) {
                            data.push(self.batch_object(i, now));
                        }
                    }
                    Ok(list(&data, &shown, more))
                }
                _ => Err(method(m, "GET or POST")),
            };
        };
        let at = (self.batches.batches.iter())
            .position(|b| b.id == id && b.api == Api::OpenAi)
            .ok_or_else(|| not_found(format!("No batch found with id '{id}'.")))?;
        match (action, m) {
            (None, "GET") => {}
            (Some("cancel"), "POST") => {
                let b = &mut self.batches.batches[at];
                match b.phase(now) {
                    Phase::Validating | Phase::InProgress => b.cancel_ms = Some(now),
                    Phase::Canceling => {}
                    Phase::Ended if b.cut().is_some_and(|(_, s)| s == State::Canceled) => {}
                    _ => {
                        let status = self.status(at, now);
                        let e = invalid(format!("Cannot cancel a batch with status '{status}'."));
                        return Ok(Answer {
                            status: 409,
                            body: e.body(Api::OpenAi),
                            jsonl: false,
                        });
                    }
                }
            }
            (None, _) => return Err(method(m, "GET")),
            (Some("cancel"), _) => return Err(method(m, "POST")),
            _ => return Err(not_found(format!("Not found: {}", route.rest))),
        }
        Ok(Answer::ok(self.batch_object(at, now)))
    }

    fn create_batch<J: Json>(&mut self, body: Option<&J>, now: f64) -> Result<Answer, ApiError> {
        let Some(body) = body else {
            return Err(invalid(
                "We could not parse the JSON body of your request.".into(),
            ));
        };
        let mut v = Vec::new();
        for key in ["input_file_id", "endpoint", "completion_window"] {
            v.push(
                body.field(key)
                    .and_then(|x| x.text())
                    .ok_or_else(|| missing(key))?,
            );
        }
        let endpoint = v[1].as_str();
        if endpoint != ENDPOINT {
            let others = ["/v1/completions", "/v1/embeddings", "/v1/responses"];
            if others.contains(&endpoint) {
                return Err(ApiError {
                    param: Some("endpoint".into()),
                    ..invalid(format!(
                        "The simulator runs batches for '{ENDPOINT}' only, not '{endpoint}'."
                    ))
                });
            }
            let supported = "'/v1/chat/completions', '/v1/completions', '/v1/embeddings', and \
                             '/v1/responses'";
            return Err(bad_value("endpoint", endpoint, supported));
        }
        if v[2] != "24h" {
            return Err(bad_value("completion_window", &v[2], "'24h'"));
        }
        let id = format!("batch_sim{}", self.batch_tag(3));
        let s = self.config.batches;
        let file = (self.batches.files.iter()).find(|f| f.id == v[0] && f.purpose == "batch");
        let checked = match file {
            None => Err(batch_error(
                "invalid_request",
                &format!(
                    "Cannot find file {}, or organization does not have access to it.",
                    v[0]
                ),
                Some("file_id"),
                None,
            )),
            Some(f) => validate(&f.lines, s.requests_limit(MAX_REQUESTS)),
        };
        let (items, errors) = match checked {
            Ok(items) => {
                let key = crate::reply::prompt_hash(&id);
                let items = (items.into_iter().enumerate())
                    .map(|(i, (c, o))| Item::new(c.into(), o.clone(), key ^ i as u64, now, &s))
                    .collect();
                (items, None)
            }
            Err(e) => (Vec::new(), Some(e)),
        };
        self.batches.batches.push(Batch {
            input_file_id: v.swap_remove(0),
            errors,
            ..Batch::new(id, Api::OpenAi, now, &s, items)
        });
        Ok(Answer::ok(
            self.batch_object(self.batches.batches.len() - 1, now),
        ))
    }

    fn status(&self, at: usize, now: f64) -> &'static str {
        let b = &self.batches.batches[at];
        match b.phase(now) {
            Phase::Validating => "validating",
            Phase::Failed => "failed",
            Phase::InProgress => "in_progress",
            Phase::Finalizing => "finalizing",
            Phase::Canceling => "cancelling",
            Phase::Ended => match b.cut() {
                Some((_, State::Canceled)) => "cancelled",
                Some(_) => "expired",
                None => "completed",
            },
        }
    }

    /// Writes an ended batch's output and error files, once.
    fn settle(&mut self, at: usize, now: f64) {
        let b = &self.batches.batches[at];
        if b.files.is_some() || b.phase(now) != Phase::Ended || b.errors.is_some() {
            return;
        }
        let (mut out, mut err) = (String::new(), String::new());
        for (i, item) in b.items.iter().enumerate() {
            let created = self.secs(item.done_ms);
            let (line, failed) = output_line(b, i, item, b.state(item, now), created);
            let file = if failed { &mut err } else { &mut out };
            file.push_str(&line);
            file.push('\n');
        }
        let id = b.id.clone();
        let mut made = [None, None];
        for (slot, (content, kind)) in made.iter_mut().zip([(out, "output"), (err, "error")]) {
            if content.is_empty() {
                continue;
            }
            let file_id = format!("file-sim{}", self.batch_tag(4));
            *slot = Some(file_id.clone());
            self.batches.files.push(File {
                id: file_id,
                filename: format!("{id}_{kind}.jsonl"),
                purpose: "batch_output".into(),
                created_ms: now,
                content,
                lines: Vec::new(),
            });
        }
        let [output, error] = made;
        self.batches.batches[at].files = Some((output, error));
    }

    /// The `batch` object at `now` (writing its files first if it has just ended).
    fn batch_object(&mut self, at: usize, now: f64) -> String {
        self.settle(at, now);
        let status = self.status(at, now);
        let b = &self.batches.batches[at];
        let [_, succeeded, errored, canceled, expired] = b.counts(now);
        let phase = b.phase(now);
        let t = |on: bool, ms: f64| {
            if on {
                self.secs(ms).to_string()
            } else {
                "null".into()
            }
        };
        let validated = phase != Phase::Validating;
        let ended = phase == Phase::Ended;
        let (output, error) = b.files.clone().unwrap_or_default();
        format!(
            r#"{{"id":{},"object":"batch","endpoint":"{ENDPOINT}","errors":{},"input_file_id":{},"completion_window":"24h","status":"{status}","output_file_id":{},"error_file_id":{},"created_at":{},"in_progress_at":{},"expires_at":{},"finalizing_at":{},"completed_at":{},"failed_at":{},"expired_at":{},"cancelling_at":{},"cancelled_at":{},"request_counts":{{"total":{},"completed":{succeeded},"failed":{}}},"metadata":null}}"#,
            quote(&b.id),
            b.errors.as_ref().map_or("null".into(), |d| format!(
                r#"{{"object":"list","data":[{d}]}}"#
            )),
            quote(&b.input_file_id),
            opt(output.as_deref()),
            opt(error.as_deref()),
            self.secs(b.created_ms),
            t(validated && b.errors.is_none(), b.created_ms + b.step_ms),
            self.secs(b.expires_ms),
            t(
                matches!(phase, Phase::Finalizing) || status == "completed",
                b.last_done_ms()
            ),
            t(status == "completed", b.ended_ms()),
            t(phase == Phase::Failed, b.ended_ms()),
            t(status == "expired", b.expires_ms),
            t(b.cancel_ms.is_some(), b.cancel_ms.unwrap_or(0.0)),
            t(ended && status == "cancelled", b.ended_ms()),
            b.items.len(),
            errored + canceled + expired,
        )
    }
}

/// OpenAI's list object.
fn list(data: &[String], shown: &[&str], more: bool) -> Answer {
    Answer::ok(format!(
        r#"{{"object":"list","data":[{}],"first_id":{},"last_id":{},"has_more":{more}}}"#,
        data.join(","),
        opt(shown.first().copied()),
        opt(shown.last().copied()),
    ))
}
