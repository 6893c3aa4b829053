//! What the native test files share (each declares `mod support;`; a folder's `mod.rs` is not
//! a test target of its own): an observer that keeps everything a batch reports, events,
//! progress, and the order results came in.

use edgebatch::core::executor::{Event, ItemResult, Observer, Progress};

#[derive(Default)]
pub struct Recorder {
    pub events: Vec<Event>,
    pub progress: Vec<Progress>,
    pub completion_order: Vec<usize>,
}

impl<V> Observer<V> for Recorder {
    fn event(&mut self, e: &Event) {
        self.events.push(e.clone());
    }
    fn progress(&mut self, p: &Progress) {
        self.progress.push(*p);
    }
    fn result(&mut self, r: &ItemResult<V>) {
        self.completion_order.push(r.index);
    }
}
