//! The [`Clock`] on JS timers: `performance.now()` and `setTimeout`.

use std::future::poll_fn;
use std::time::Duration;

use wasm_bindgen::prelude::*;

use super::task::settled_by;
use crate::core::clock::{Clock, Sleep};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

// A timer answers through the settle callback of the JS tasks (`web::task`): no closure, oneshot
// channel and waker of its own per timer, as gloo-timers' has (0.6 KB of wasm gzipped).
#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = startTimer)]
    fn start_timer(ms: u32, id: f64, settle: &JsValue) -> JsValue;
}

/// Real time from the host. Dropping a sleep clears its timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsClock;

impl Clock for JsClock {
    fn now(&self) -> Duration {
        Duration::from_nanos((performance_now().max(0.0) * 1e6) as u64)
    }

    fn unix_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        // Round up: a timer must never fire before the duration has passed. Whole microseconds
        // to ms in u64 (`as_micros()` is a u128, and dividing one links ~1 KB of 128-bit
        // division into the wasm).
        let ms = duration
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(duration.subsec_micros().div_ceil(1000) as u64)
            .min(i32::MAX as u64) as u32;
        // Dropping the sleep drops `timer`, which clears it (glue.js `abortTask`).
        let mut timer = settled_by(|id, settle| start_timer(ms, id, settle));
        Box::pin(poll_fn(move |cx| timer.poll_settled(cx).map(|_| ())))
    }
}
