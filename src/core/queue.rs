//! The order in which a batch's items start: retries whose wait is over go first, in the
//! order their waits ended; then new items, in input order. An item at the head keeps its
//! place while the pacer holds it back.

use std::collections::VecDeque;

/// Items ready to start, see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadyQueue {
    retries: VecDeque<usize>,
    next_new: usize,
    total: usize,
}

impl ReadyQueue {
    /// Items `0..total`, none started.
    #[must_use]
    pub fn new(total: usize) -> Self {
        ReadyQueue {
            retries: VecDeque::new(),
            next_new: 0,
            total,
        }
    }

    /// The item that starts next, if any.
    #[must_use]
    pub fn peek(&self) -> Option<usize> {
        self.retries
            .front()
            .copied()
            .or((self.next_new < self.total).then_some(self.next_new))
    }

    /// Takes the head off the queue; call it only after [`ReadyQueue::peek`] gave one.
    pub fn pop(&mut self) {
        if self.retries.pop_front().is_none() {
            self.next_new += 1;
        }
    }

    /// An item whose retry wait is over: it goes before every new item.
    pub fn push_retry(&mut self, index: usize) {
        self.retries.push_back(index);
    }

    /// Items ready and waiting for a slot.
    #[must_use]
    pub fn len(&self) -> usize {
        self.retries.len() + (self.total - self.next_new)
    }

    /// Whether nothing is ready.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nothing more starts (the attempt budget is spent).
    pub fn close(&mut self) {
        self.retries.clear();
        self.next_new = self.total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut ReadyQueue) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(i) = q.peek() {
            out.push(i);
            q.pop();
        }
        out
    }

    #[test]
    fn new_items_in_input_order() {
        let mut q = ReadyQueue::new(3);
        assert_eq!((q.len(), q.is_empty()), (3, false));
        assert_eq!(drain(&mut q), [0, 1, 2]);
        assert!(q.is_empty());
    }

    #[test]
    fn retries_go_first_in_the_order_their_waits_ended() {
        let mut q = ReadyQueue::new(5);
        q.pop();
        q.pop();
        q.push_retry(1);
        q.push_retry(0);
        assert_eq!(q.peek(), Some(1), "peek does not take");
        assert_eq!(q.len(), 5);
        assert_eq!(drain(&mut q), [1, 0, 2, 3, 4]);
    }

    #[test]
    fn a_closed_queue_starts_nothing() {
        let mut q = ReadyQueue::new(4);
        q.pop();
        q.push_retry(0);
        q.close();
        assert_eq!((q.peek(), q.len()), (None, 0));
    }
}
