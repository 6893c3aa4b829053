//! `maxCostUsd`: the dollars one call may spend, a budget like `maxAttempts`. Before each
//! attempt the batch asks whether what is spent, plus what the attempts in flight may still
//! cost (their estimates, held until they end), plus this attempt's estimate, stays within the
//! cap; when it would not, the attempt does not start. While attempts are in flight the item
//! waits for them (they may cost less than held); with none in flight nothing can change, so
//! every item still waiting ends with [`ErrorKind::CostCap`].

use super::{usd, Pico};
use crate::error::{ErrorKind, Failure, ItemError};
use crate::text::format_number;

/// The cap of one call, what it has spent and what its attempts in flight hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostCap {
    max: Option<Pico>,
    spent: Pico,
    held: Pico,
    open: usize,
    /// The estimate that was refused with nothing in flight: the batch is closed.
    refused: Option<Pico>,
}

impl CostCap {
    /// A cap of `max` pico-dollars (`None`: unlimited), nothing spent.
    pub fn new(max: Option<Pico>) -> Self {
        CostCap {
            max,
            ..CostCap::default()
        }
    }

    /// Whether an attempt expected to cost at most `estimate` may start now. Once the spent
    /// dollars reach the cap nothing starts, even an attempt whose cost is not known.
    pub fn admits(&self, estimate: Pico) -> bool {
        self.max.is_none_or(|max| {
            self.spent < max && self.spent.saturating_add(self.held + estimate) <= max
        })
    }

    /// An attempt starts (or waits for its permit): its estimate is held.
    pub fn hold(&mut self, estimate: Pico) {
        self.held += estimate;
        self.open += 1;
    }

    /// An attempt ended: its estimate is let go and what it cost is spent.
    pub fn settle(&mut self, estimate: Pico, cost: Pico) {
        self.held -= estimate;
        self.open -= 1;
        self.spent = self.spent.saturating_add(cost);
    }

    /// Attempts holding an estimate now.
    pub fn open(&self) -> usize {
        self.open
    }

    /// What the call has spent, as far as the replies said.
    pub fn spent(&self) -> Pico {
        self.spent
    }

    /// Nothing is in flight and `estimate` is refused: the batch starts nothing more.
    pub fn close(&mut self, estimate: Pico) {
        self.refused = Some(estimate);
    }

    /// Whether [`CostCap::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.refused.is_some()
    }

    fn said(&self) -> String {
        let dollars = |p| format_number(usd(p));
        format!(
            "cost cap reached: this call's maxCostUsd is ${}, ${} is spent and the next attempt could cost up to ${}",
            dollars(self.max.unwrap_or_default()),
            dollars(self.spent),
            dollars(self.refused.unwrap_or_default()),
        )
    }

    /// The error of an item that never started because of the cap.
    pub fn unstarted(&self) -> ItemError {
        ItemError::bare(ErrorKind::CostCap, self.said())
    }

    /// The error of an item whose retry the cap refused: its last failure, with a message that
    /// says why it was not retried.
    pub fn refused(&self, last: Failure) -> ItemError {
        let mut error = ItemError::from_failure(last, true);
        error.after_head(format!("retry refused, {}", self.said()));
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_estimates_until_attempts_end() {
        let mut cap = CostCap::new(Some(100));
        assert!(cap.admits(60));
        cap.hold(60);
        assert!(!cap.admits(41), "60 held + 41 passes 100");
        assert!(cap.admits(40));
        cap.settle(60, 30);
        assert_eq!((cap.spent(), cap.open()), (30, 0));
        assert!(cap.admits(70) && !cap.admits(71));
        cap.hold(0);
        cap.settle(0, 70);
        assert!(
            !cap.admits(0),
            "the cap is spent: even an unknown cost is refused"
        );
        assert!(CostCap::new(None).admits(u64::MAX));
    }

    #[test]
    fn errors_name_the_cap() {
        let mut cap = CostCap::new(Some(10_000_000_000));
        cap.hold(0);
        cap.settle(0, 9_500_000_000);
        cap.close(1_000_000_000);
        let e = cap.unstarted();
        assert_eq!((e.kind, e.retryable), (ErrorKind::CostCap, false));
        assert_eq!(
            e.message,
            "cost cap reached: this call's maxCostUsd is $0.01, $0.0095 is spent and the next \
             attempt could cost up to $0.001"
        );
        let e = cap.refused(Failure::http(529, "busy"));
        assert_eq!(
            (e.kind, e.status, e.retryable),
            (ErrorKind::Http, Some(529), true)
        );
        assert!(e.message.starts_with("retry refused, cost cap reached: "));
        assert!(e.message.ends_with("; last error: busy"));
    }
}
