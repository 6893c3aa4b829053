//! A batch's side of a [`Permits`] source: its asks (futures the batch waits on beside its
//! backoffs), the releases of the ids its items hold, and the deferral once the source said
//! "not now". Without a source there is nothing to ask, and nothing is ever granted.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::limits::Cost;
use super::permit_source::{Outcome, Permit, Permits};

pub(super) struct PermitWaits<'a> {
    source: Option<&'a dyn Permits>,
    /// Until when, and why, once a source deferred the batch.
    deferred: Option<(Duration, String)>,
}

/// An ask for item `index`: ends with the item and the answer.
pub(super) struct Ask<'a> {
    index: usize,
    permit: Pin<Box<dyn Future<Output = Permit> + 'a>>,
}

impl Future for Ask<'_> {
    type Output = (usize, Option<Permit>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        self.permit.as_mut().poll(cx).map(|p| (index, Some(p)))
    }
}

impl<'a> PermitWaits<'a> {
    pub(super) fn new(source: Option<&'a dyn Permits>) -> Self {
        PermitWaits {
            source,
            deferred: None,
        }
    }

    /// With a source, the ask for item `index`'s next attempt: a future of the item and the
    /// answer. Dropping it drops the ask.
    pub(super) fn ask(&self, index: usize, cost: &Cost) -> Option<Ask<'a>> {
        let permit = self.source?.acquire(index, cost);
        Some(Ask { index, permit })
    }

    /// Releases permit `id`, if there is one, with `outcome`.
    pub(super) fn release(&self, id: Option<u64>, outcome: Outcome<'_>) {
        if let (Some(source), Some(id)) = (self.source, id) {
            source.release(id, outcome);
        }
    }

    /// The source asked to start nothing more until `until`.
    pub(super) fn defer(&mut self, until: Duration, reason: String) {
        self.deferred = Some((until, reason));
    }

    /// Once deferred: how long is left at `now`, and why.
    pub(super) fn deferral(&self, now: Duration) -> Option<(Duration, &str)> {
        let (until, reason) = self.deferred.as_ref()?;
        Some((until.saturating_sub(now), reason))
    }
}
