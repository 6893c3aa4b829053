//! A batch's side of a [`Permits`] source: its asks (futures the batch waits on beside its
//! backoffs), the releases of the ids its items hold, and the deferrals once the source said
//! "not now". A deferral is per alternative: with fallbacks, the item that met it moves to the
//! next alternative whose source has not deferred, and the deferred one is not asked again in
//! the batch (so a source that keeps deferring cannot bounce an item back and forth); once
//! every alternative deferred, the batch is deferred. Without a source there is nothing to
//! ask, and nothing is ever granted.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::limits::Cost;
use super::permit_source::{Outcome, Permit, Permits};

pub(super) struct PermitWaits<'a> {
    source: Option<&'a dyn Permits>,
    /// By alternative: whether its source deferred (it is not asked again in this batch).
    refused: Vec<bool>,
    /// The earliest deferral so far, until when and why: the batch's once every alternative
    /// deferred.
    earliest: Option<(Duration, String)>,
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
    /// For a batch of `alternatives` (1: no fallbacks).
    pub(super) fn new(source: Option<&'a dyn Permits>, alternatives: usize) -> Self {
        PermitWaits {
            source,
            refused: vec![false; alternatives],
            earliest: None,
        }
    }

    /// With a source, the ask for item `index`'s next attempt on `alternative`: a future of
    /// the item and the answer. Dropping it drops the ask.
    pub(super) fn ask(&self, index: usize, alternative: usize, cost: &Cost) -> Option<Ask<'a>> {
        let permit = self.source?.acquire(index, alternative, cost);
        Some(Ask { index, permit })
    }

    /// Whether `alternative`'s source deferred: it is not asked again in this batch.
    pub(super) fn refused(&self, alternative: usize) -> bool {
        self.refused[alternative]
    }

    /// The first alternative from `from` on, in order and wrapping round, whose source has
    /// not deferred; `None` once every one has.
    pub(super) fn open(&self, from: usize) -> Option<usize> {
        let n = self.refused.len();
        (0..n).map(|k| (from + k) % n).find(|&k| !self.refused[k])
    }

    /// Releases permit `id`, if there is one, with `outcome`.
    pub(super) fn release(&self, id: Option<u64>, outcome: Outcome<'_>) {
        if let (Some(source), Some(id)) = (self.source, id) {
            source.release(id, outcome);
        }
    }

    /// The source asked to start nothing more on `alternative` until `until`. Whether another
    /// alternative's source has not deferred yet; once none is left, the batch is deferred
    /// until the earliest of their times.
    pub(super) fn defer(&mut self, alternative: usize, until: Duration, reason: String) -> bool {
        self.refused[alternative] = true;
        if self.earliest.as_ref().is_none_or(|(t, _)| until < *t) {
            self.earliest = Some((until, reason));
        }
        self.refused.contains(&false)
    }

    /// Once deferred: how long is left at `now`, and why.
    pub(super) fn deferral(&self, now: Duration) -> Option<(Duration, &str)> {
        let (until, reason) = self
            .earliest
            .as_ref()
            .filter(|_| !self.refused.contains(&false))?;
        Some((until.saturating_sub(now), reason))
    }
}
