//! What an attempt runs: the caller's function (map, stream with a function) or a request
//! (run, stream without one). Both kinds share one attempt type and one value type, so the
//! executor is compiled once into the wasm, not once per kind.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use js_sys::Function;
use wasm_bindgen::JsValue;

use super::items::Items;
use crate::error::{ErrorKind, Failure};
use crate::providers::Provider;
use crate::web::abort::AbortGuard;
use crate::web::fetch::fetch_spec;
use crate::web::provider::{call_provider, Metered};
use crate::web::task::{start_task, TaskAttempt};

/// The work of one call's items.
pub(super) enum Task {
    /// `fn(item, { signal, attempt, index })`, its signal fired when the attempt is dropped
    /// (timeout, deadline, cancel).
    Map(Rc<Function>),
    /// A fetch spec, or with a provider its request body; the request is aborted when the
    /// attempt is dropped.
    Run(Option<Rc<Provider>>),
}

impl Task {
    /// Starts attempt `attempt` of item `index` now. The item was read once before (its
    /// cost); one that throws only now fails this attempt as `invalid`.
    pub(super) fn start(&self, index: usize, attempt: u32, items: &Items) -> Attempt {
        let item = match items.get(index) {
            Ok(item) => item,
            Err(message) => return Attempt::Unreadable(Some(message)),
        };
        match self {
            Task::Map(f) => Attempt::Map(start_task(f, item, index, attempt)),
            Task::Run(provider) => Attempt::Run(request(provider.clone(), item)),
        }
    }
}

type Request = Pin<Box<dyn Future<Output = Result<Metered, Failure>>>>;

fn request(provider: Option<Rc<Provider>>, item: JsValue) -> Request {
    let guard = AbortGuard::new();
    Box::pin(async move {
        let signal = guard.signal();
        let out = match provider.as_deref() {
            Some(p) => call_provider(p, &item, &signal).await,
            None => fetch_spec(&item, &signal).await.map(Metered::plain),
        };
        guard.disarm();
        out
    })
}

/// One attempt of either kind; a task's value arrives as a [`Metered::plain`] value.
#[must_use = "dropping the attempt aborts it"]
pub(super) enum Attempt {
    Map(TaskAttempt),
    Run(Request),
    /// The item threw when read: fails at once.
    Unreadable(Option<String>),
}

impl Future for Attempt {
    type Output = Result<Metered, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Attempt::Map(task) => Pin::new(task).poll(cx).map(|out| out.map(Metered::plain)),
            Attempt::Run(request) => request.as_mut().poll(cx),
            Attempt::Unreadable(message) => Poll::Ready(Err(Failure::new(
                ErrorKind::Invalid,
                message.take().unwrap_or_default(),
            ))),
        }
    }
}
