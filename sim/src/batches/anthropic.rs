//! Anthropic's Message Batches: `POST /v1/messages/batches` `{ requests: [{ custom_id,
//! params }] }`, retrieve, list (`before_id`/`after_id`/`limit`), cancel, delete, and the
//! results as JSONL once the batch has ended. Limits as the API's: at most 100,000 requests
//! and 256 MB a batch (lower with `batches.maxRequests` / `.maxBytes`); `custom_id` matching `^[a-zA-Z0-9_-]{1,64}$`, unique in its batch.
//! Params are checked like `/v1/messages` bodies, as the API does, after creation: a bad
//! one's item ends `errored` with the error a realtime call would have got. Items with
//! `cache_control` use the realtime calls' prompt cache (`batch_cache`).

use super::lifecycle::{Batch, Item, Outcome, Phase, Reply, State};
use super::{invalid, limit, method, not_found, opt, page, reply_for, Answer, Route};
use crate::api::Api;
use crate::cache::Breakpoint;
use crate::error::ApiError;
use crate::json::Json;
use crate::request;
use crate::text::quote;
use crate::time::rfc3339_ms;
use crate::{Request, Simulator};

/// At most this many requests a batch.
pub const MAX_REQUESTS: usize = 100_000;
/// At most this many bytes a batch's body (256 MB).
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// `custom_id`'s rule: 1 to 64 of `a-z A-Z 0-9 _ -`.
pub fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `msg_sim_…`: item `i`'s message id, stable for its batch.
pub fn message_id(batch_id: &str, i: usize) -> String {
    format!("msg_sim_{}", super::item_tag(batch_id, i, 0))
}

impl Simulator {
    pub(super) fn message_batches<J: Json>(
        &mut self,
        m: &str,
        route: &Route,
        req: &Request<'_, J>,
        now: f64,
    ) -> Result<Answer, ApiError> {
        let (id, action) = route.target();
        let Some(id) = id else {
            return match m {
                "POST" => self.create_message_batch(req, now),
                "GET" => self.list_message_batches(route, now),
                _ => Err(method(m, "GET or POST")),
            };
        };
        let at = self
            .batches
            .batches
            .iter()
            .position(|b| b.id == id && b.api == Api::Anthropic && !b.deleted)
            .ok_or_else(|| not_found(format!("No message batch found with id '{id}'")))?;
        match (action, m) {
            (None, "GET") => {}
            (None, "DELETE") => {
                let b = &mut self.batches.batches[at];
                if b.phase(now) != Phase::Ended {
                    return Err(invalid(format!(
                        "Message batch {id} is still processing: a batch can be deleted once \
                         it has ended; cancel it first"
                    )));
                }
                b.deleted = true;
                let body = format!(r#"{{"id":{},"type":"message_batch_deleted"}}"#, quote(id));
                return Ok(Answer::ok(body));
            }
            (Some("cancel"), "POST") => {
                let b = &mut self.batches.batches[at];
                if b.phase(now) != Phase::Ended && b.cancel_ms.is_none() {
                    b.cancel_ms = Some(now);
                }
            }
            (Some("results"), "GET") => {
                let b = &self.batches.batches[at];
                if b.phase(now) != Phase::Ended {
                    return Err(invalid(format!(
                        "Message batch {id} has not ended yet: its results are available once \
                         processing_status is \"ended\""
                    )));
                }
                return Ok(Answer {
                    jsonl: true,
                    ..Answer::ok(results(b, now))
                });
            }
            (None | Some("cancel" | "results"), _) => {
                return Err(method(
                    m,
                    if action == Some("cancel") {
                        "POST"
                    } else {
                        "GET"
                    },
                ));
            }
            _ => return Err(not_found(format!("Not found: {}", route.rest))),
        }
        Ok(Answer::ok(
            self.message_batch(&self.batches.batches[at], now),
        ))
    }

    fn create_message_batch<J: Json>(
        &mut self,
        req: &Request<'_, J>,
        now: f64,
    ) -> Result<Answer, ApiError> {
        let bytes = req
            .headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let settings = self.config.batches;
        if bytes > settings.bytes_limit(MAX_BYTES) {
            let body = r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#;
            return Ok(Answer {
                status: 413,
                body: body.into(),
                jsonl: false,
            });
        }
        let Some(body) = req.body else {
            return Err(invalid("The request body is not valid JSON".into()));
        };
        let requests = body
            .field("requests")
            .ok_or_else(|| invalid("requests: Field required".into()))?
            .items();
        let n = requests.len();
        let most = settings.requests_limit(MAX_REQUESTS);
        if n == 0 || n > most {
            let bound = if n == 0 {
                "least 1 item".into()
            } else {
                format!("most {most} items")
            };
            return Err(invalid(format!(
                "requests: List should have at {bound} after validation, not {n}"
            )));
        }
        let tag = self.batch_tag(1);
        let id = format!("msgbatch_sim_{tag}");
        let mut items: Vec<Item> = Vec::with_capacity(n);
        // Items with `cache_control` blocks: their breakpoints (`cache.rs`).
        let mut marked = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let custom_id = r
                .field("custom_id")
                .ok_or_else(|| invalid(format!("requests.{i}.custom_id: Field required")))?
                .text()
                .filter(|c| valid_custom_id(c))
                .ok_or_else(|| {
                    invalid(format!(
                        "requests.{i}.custom_id: String should match pattern \
                         '^[a-zA-Z0-9_-]{{1,64}}$'"
                    ))
                })?;
            let params = r
                .field("params")
                .ok_or_else(|| invalid(format!("requests.{i}.params: Field required")))?;
            let outcome = match request::parse(Api::Anthropic, Some(&params)) {
                Ok(p) if p.stream => Outcome::Errored(invalid(
                    "stream: streaming is not supported in a Message Batch".into(),
                )),
                Ok(p) => {
                    if !p.cache.is_empty() {
                        marked.push((i, p.cache.clone()));
                    }
                    Outcome::Succeeded(reply_for(&p, self.config.max_tokens))
                }
                Err(e) => Outcome::Errored(e),
            };
            let key = crate::reply::prompt_hash(&id) ^ i as u64;
            items.push(Item::new(custom_id, outcome, key, now, &settings));
        }
        if let Some((j, i)) = super::repeated(&ids(&items)) {
            return Err(invalid(format!(
                "requests.{i}.custom_id: '{}' is already the custom_id of requests.{j}: each \
                 must be unique within a batch",
                items[i].custom_id
            )));
        }
        self.batch_cache(&mut items, &marked, now);
        let batch = Batch::new(id, Api::Anthropic, now, &settings, items);
        let body = self.message_batch(&batch, now);
        self.batches.batches.push(batch);
        Ok(Answer::ok(body))
    }

    /// The prompt cache of a batch's `marked` items, decided at creation with the same model
    /// as realtime calls: each item is a call that arrives `latency.baseMs` before its reply
    /// begins (its output's generation time before it is done), in the order of arrival. So
    /// an item reads an entry written by a call whose reply began before it arrived (a
    /// realtime primer's, or an earlier item's), and the items that arrive together at the
    /// batch's start all write. Entries written later by realtime calls are not seen. (The
    /// replies' usage says it; `stats()` counts realtime calls only, as before.)
    fn batch_cache(&mut self, items: &mut [Item], marked: &[(usize, Vec<Breakpoint>)], now: f64) {
        let lat = self.config.latency;
        // When item `i`'s call arrives and its reply begins (sim ms).
        let times = |done_ms: f64, r: &Reply| {
            let begins = done_ms - lat.per_output_token_ms * r.output_tokens as f64;
            let arrives = (begins - lat.base_ms).max(now);
            (arrives, begins.max(arrives))
        };
        // By arrival: microseconds after `now` (under 2^38: two days' delay and spread), then
        // the place in `marked` (under 2^20), packed in one u64 for a small sort.
        let mut order: Vec<u64> = Vec::with_capacity(marked.len());
        for (j, (i, _)) in marked.iter().enumerate() {
            if let Outcome::Succeeded(r) = &items[*i].outcome {
                let after = crate::micros(times(items[*i].done_ms, r).0 - now);
                order.push(after << 20 | j as u64);
            }
        }
        heap_sort(&mut order);
        for packed in order {
            let (i, marks) = &marked[(packed & 0xF_FFFF) as usize];
            let item = &mut items[*i];
            if let Outcome::Succeeded(r) = &mut item.outcome {
                let (arrives, begins) = times(item.done_ms, r);
                let (arrives, begins) = (crate::micros(arrives), crate::micros(begins));
                let plan = self.cache.plan(&r.model, marks, arrives);
                self.cache.apply(&plan, arrives, begins);
                r.cache = Some(plan.usage);
            }
        }
    }

    fn list_message_batches(&self, route: &Route, now: f64) -> Result<Answer, ApiError> {
        let limit = limit(Api::Anthropic, route, 20, 1000)?;
        let live: Vec<&Batch> = self
            .batches
            .batches
            .iter()
            .rev()
            .filter(|b| b.api == Api::Anthropic && !b.deleted)
            .collect();
        let ids: Vec<&str> = live.iter().map(|b| b.id.as_str()).collect();
        let (shown, more) = page(
            &ids,
            route.param("after_id"),
            route.param("before_id"),
            limit,
        );
        let data: Vec<String> = shown
            .iter()
            .filter_map(|id| live.iter().find(|b| b.id == *id))
            .map(|b| self.message_batch(b, now))
            .collect();
        Ok(Answer::ok(format!(
            r#"{{"data":[{}],"has_more":{more},"first_id":{},"last_id":{}}}"#,
            data.join(","),
            opt(shown.first().copied()),
            opt(shown.last().copied()),
        )))
    }

    /// The `message_batch` object at `now`.
    fn message_batch(&self, b: &Batch, now: f64) -> String {
        let phase = b.phase(now);
        let [processing, succeeded, errored, canceled, expired] = b.counts(now);
        let time = |ms: f64| quote(&rfc3339_ms(self.wall_ms(ms)));
        let ended = phase == Phase::Ended;
        let status = match phase {
            Phase::Ended => "ended",
            Phase::Canceling => "canceling",
            _ => "in_progress",
        };
        format!(
            r#"{{"id":{},"type":"message_batch","processing_status":"{status}","request_counts":{{"processing":{processing},"succeeded":{succeeded},"errored":{errored},"canceled":{canceled},"expired":{expired}}},"ended_at":{},"created_at":{},"expires_at":{},"archived_at":null,"cancel_initiated_at":{},"results_url":{}}}"#,
            quote(&b.id),
            if ended {
                time(b.ended_ms())
            } else {
                "null".into()
            },
            time(b.created_ms),
            time(b.expires_ms),
            b.cancel_ms.map_or("null".into(), time),
            // A path under the API's base URL: the SDKs join it to theirs, so it is right
            // however the sim is mounted (`/sim/s/<id>/…`).
            if ended {
                quote(&format!("/v1/messages/batches/{}/results", b.id))
            } else {
                "null".into()
            },
        )
    }
}

fn ids(items: &[Item]) -> Vec<&str> {
    items.iter().map(|x| x.custom_id.as_str()).collect()
}

/// The results file: one line per request, in input order.
pub fn results(b: &Batch, now: f64) -> String {
    let mut out = String::new();
    for (i, item) in b.items.iter().enumerate() {
        let result = match (b.state(item, now), &item.outcome) {
            (State::Done, Outcome::Succeeded(r)) => format!(
                r#"{{"type":"succeeded","message":{}}}"#,
                r.body(Api::Anthropic, &message_id(&b.id, i), 0)
            ),
            (State::Done, Outcome::Errored(e)) => {
                format!(r#"{{"type":"errored","error":{}}}"#, e.body(Api::Anthropic))
            }
            (State::Canceled, _) => r#"{"type":"canceled"}"#.into(),
            _ => r#"{"type":"expired"}"#.into(),
        };
        out.push_str(&format!(
            r#"{{"custom_id":{},"result":{result}}}"#,
            quote(&item.custom_id)
        ));
        out.push('\n');
    }
    out
}

/// Sorts `v` ascending in place (a heap sort: the slice sorts bring about 2 KB gzip into the
/// wasm, this a few hundred bytes).
fn heap_sort(v: &mut [u64]) {
    // Restores the max-heap below `root` within `v[..end]`.
    fn sift(v: &mut [u64], mut root: usize, end: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v[child] < v[child + 1] {
                child += 1;
            }
            if v[root] >= v[child] {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    for root in (0..v.len() / 2).rev() {
        sift(v, root, v.len());
    }
    for end in (1..v.len()).rev() {
        v.swap(0, end);
        sift(v, 0, end);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn heap_sort_sorts() {
        let mut v: Vec<u64> = (0..1000u64).map(|i| crate::reply::mix(i) % 500).collect();
        let mut want = v.clone();
        want.sort_unstable();
        super::heap_sort(&mut v);
        assert_eq!(v, want);
        super::heap_sort(&mut []);
    }
}
