//! The attempt budget of one call (`maxAttempts`): how many attempts a batch may start in all,
//! retries included, and the errors of the items it leaves without one. A Worker's subrequest
//! limit is such a budget: past it, a fetch throws instead of going out.

use crate::error::{BudgetRefusal, ErrorKind, Failure, ItemError};

/// Counts the attempts a batch starts against an optional cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttemptBudget {
    max: Option<u64>,
    started: u64,
}

impl AttemptBudget {
    /// A budget of `max` attempts (`None`: unlimited), none used.
    pub fn new(max: Option<u64>) -> Self {
        AttemptBudget { max, started: 0 }
    }

    /// Counts one started attempt.
    pub fn take(&mut self) {
        self.started += 1;
    }

    /// Attempts started so far.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Whether no attempt is left: an item that needs one will not get it.
    pub fn is_spent(&self) -> bool {
        matches!(self.max, Some(max) if self.started >= max)
    }

    /// The refusal, and what its message says first.
    fn refusal(&self) -> (BudgetRefusal, String) {
        let max = self.max.unwrap_or(self.started);
        let said = format!("attempt budget exhausted: all {max} attempts of this call are used");
        let refusal = BudgetRefusal {
            max,
            last_error_at: None,
        };
        (refusal, said)
    }

    /// The error of an item that never started because the budget was spent.
    pub fn unstarted(&self) -> ItemError {
        let (refusal, said) = self.refusal();
        let mut error = ItemError::bare(ErrorKind::Budget, said);
        error.budget = Some(refusal);
        error
    }

    /// The error of an item whose retry the budget refused: its last real failure (kind,
    /// status, type), so nothing is hidden, with a message that says why it was not retried.
    pub fn refused(&self, last: Failure) -> ItemError {
        let mut error = ItemError::from_failure(last, true);
        let (mut refusal, said) = self.refusal();
        let mut head = String::from("retry refused, ");
        head.push_str(&said);
        refusal.last_error_at = Some(error.after_head(head) as u32);
        error.budget = Some(refusal);
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_against_the_cap() {
        let mut b = AttemptBudget::new(Some(2));
        assert!(!b.is_spent());
        b.take();
        assert!(!b.is_spent());
        b.take();
        assert!(b.is_spent());
        assert_eq!(b.started(), 2);
        let mut unlimited = AttemptBudget::new(None);
        (0..1000).for_each(|_| unlimited.take());
        assert!(!unlimited.is_spent());
    }

    #[test]
    fn errors_say_why() {
        let b = AttemptBudget::new(Some(50));
        let e = b.unstarted();
        assert_eq!(
            (e.kind, e.retryable, e.status),
            (ErrorKind::Budget, false, None)
        );
        assert_eq!(
            e.message,
            "attempt budget exhausted: all 50 attempts of this call are used"
        );
        let said = |max, last_error_at| Some(BudgetRefusal { max, last_error_at });
        assert_eq!(e.budget, said(50, None));
        let last = Failure {
            error_type: Some("rate_limit_error".into()),
            ..Failure::http(429, "slow down")
        };
        let e = b.refused(last);
        assert_eq!(
            (e.kind, e.status, e.error_type.as_deref(), e.retryable),
            (ErrorKind::Http, Some(429), Some("rate_limit_error"), true)
        );
        assert_eq!(
            e.message,
            "retry refused, attempt budget exhausted: all 50 attempts of this call are used; \
             last error: slow down"
        );
        assert_eq!(e.budget, said(50, Some(92)));
        assert_eq!(&e.message[92..], "slow down", "the last error starts there");
        assert_eq!(ItemError::bare(ErrorKind::Http, "x").budget, None);
    }
}
