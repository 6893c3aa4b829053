//! The `postProcess` call option: read (in JS, src/web/post.js) into a job of the host's
//! runner. One value's processing runs like a task attempt (`web::task`): a future that,
//! dropped before it settles (the core drops it on the deadline or a cancel), fires the
//! job's signal, which terminates the worker running it.

use std::rc::Rc;

use js_sys::Function;
use wasm_bindgen::prelude::*;

use crate::core::post::Processing;
use crate::options::OptionSpec;
use crate::redact::Secrets;
use crate::web::provider::Metered;
use crate::web::task::start_task;
use crate::web::{get, set};

#[wasm_bindgen(module = "/src/web/post.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = openPost)]
    fn open_post(spec: &JsValue, items: &JsValue) -> Result<JsValue, JsValue>;
}

/// One call's post-processing job; its pool is stopped when the call is over (dropped).
pub(super) struct PostJob {
    job: JsValue,
    /// `(value, ctx) => Promise`: one value's processing, cancelled by `ctx.signal`.
    task: Function,
    /// At most this many values in processing at once.
    pub(super) threads: usize,
    /// The call's secrets: scrubbed from a failure's message, as from an attempt's.
    secrets: Rc<Secrets>,
}

impl PostJob {
    /// `postProcess` of the call options (its declaration: `spec`), if set; a bad one
    /// throws (TypeError / RangeError naming the field).
    pub(super) fn read(
        call_options: &JsValue,
        spec: &OptionSpec,
        items: &JsValue,
        secrets: &Rc<Secrets>,
    ) -> Result<Option<Self>, JsValue> {
        let Some(spec) = get(call_options, spec.key).filter(|v| !v.is_undefined()) else {
            return Ok(None);
        };
        let job = open_post(&spec, items)?;
        let threads = get(&job, "threads").and_then(|t| t.as_f64()).unwrap_or(1.0);
        Ok(Some(PostJob {
            task: get(&job, "task").unwrap_or_default().unchecked_into(),
            job,
            threads: (threads as usize).max(1),
            secrets: secrets.clone(),
        }))
    }

    /// Processes item `index`'s value; the value's pacer feedback (usage) is kept.
    pub(super) fn process(&self, index: usize, value: Metered) -> Processing<Metered> {
        let work = start_task(&self.task, value.value, index, 0);
        let feedback = value.feedback;
        let secrets = self.secrets.clone();
        Box::pin(async move {
            let out = work.await.map_err(|mut f| {
                f.message = secrets.scrub(&f.message);
                f
            });
            (index, out.map(|value| Metered { value, feedback }))
        })
    }
}

impl Drop for PostJob {
    fn drop(&mut self) {
        // `closed = true` stops the pool (a setter in post.js): no idle worker outlives the call.
        set(&self.job, "closed", true);
    }
}
