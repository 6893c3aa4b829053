//! An AbortController that aborts when dropped: dropping an attempt's future (timeout,
//! deadline, cancel) aborts its request or tells its task through the signal.

use wasm_bindgen::UnwrapThrowExt;
use web_sys::{AbortController, AbortSignal};

/// Owns one AbortController; aborts it on drop unless [`AbortGuard::disarm`]ed.
#[must_use = "dropping the guard aborts at once"]
pub struct AbortGuard {
    controller: AbortController,
    armed: bool,
}

impl AbortGuard {
    /// A fresh controller. Every host edgebatch supports has AbortController; one without it
    /// gets a JS error saying so (`expect_throw`: no panic, and no `Debug` of a `JsValue`,
    /// which would bring wasm-bindgen's debug-string import into the wasm).
    pub fn new() -> Self {
        AbortGuard {
            controller: AbortController::new().expect_throw("AbortController is available"),
            armed: true,
        }
    }

    /// The signal to hand to `fetch` or to the task.
    pub fn signal(&self) -> AbortSignal {
        self.controller.signal()
    }

    /// The attempt finished on its own: nothing to abort.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Default for AbortGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if self.armed {
            self.controller.abort();
        }
    }
}
