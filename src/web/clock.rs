//! The [`Clock`] on JS timers: `performance.now()` and `setTimeout` (through gloo-timers).

use std::time::Duration;

use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::prelude::*;

use crate::core::clock::{Clock, Sleep};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
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
        Box::pin(TimeoutFuture::new(ms))
    }
}
