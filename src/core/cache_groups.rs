//! Prompt-cache-aware starts. A provider's prompt cache entry exists only once the first
//! response that writes it has begun: items sent at once with the same cacheable prefix all
//! write it, and none reads it. So items that share a prefix (a key the provider layer
//! computes, never the core) form a group: one primer starts, and the rest of the group waits
//! (taking no slot) until the primer's response has begun (its first byte: the task says so
//! through [`Began`]) or its attempt succeeded. A primer whose attempt fails first hands over:
//! the group's next item becomes its primer. Items without a key, and open groups, start as
//! they always did, so held items never leave a slot idle while other work is ready.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::queue::ReadyQueue;

/// The items whose responses began since the batch last looked. No waker: an attempt tells
/// it while the batch polls it, and the batch looks right after.
type Arrivals = Rc<RefCell<Vec<usize>>>;

/// The item the batch last let start, when it went as its group's primer: every start is
/// admitted just before it, so [`CacheGroups::began`] reads it for the attempt starting.
type Priming = Rc<Cell<Option<usize>>>;

/// What a caller hands [`Executor::cache_groups`](super::executor::Executor::cache_groups):
/// each item's prefix key (asked once, when the item first comes up to start), and the signal
/// its tasks call when a response begins.
pub struct CacheGroups<'a> {
    key: Box<dyn Fn(usize) -> Option<u64> + 'a>,
    arrivals: Arrivals,
    priming: Priming,
}

/// Told by a primer's attempt when its response began (2xx headers in): its group opens.
#[derive(Clone)]
pub struct Began {
    index: usize,
    arrivals: Arrivals,
}

impl Began {
    /// The attempt's response has begun. Call it from inside the attempt's future (while the
    /// executor polls it), as a fetch that just got its headers does.
    pub fn now(&self) {
        self.arrivals.borrow_mut().push(self.index);
    }
}

impl<'a> CacheGroups<'a> {
    /// Groups by `key(index)`: `Some` for an item whose request has a cacheable prefix.
    pub fn new(key: impl Fn(usize) -> Option<u64> + 'a) -> Self {
        CacheGroups {
            key: Box::new(key),
            arrivals: Rc::default(),
            priming: Rc::default(),
        }
    }

    /// The signal for item `index`'s attempt starting now, when it is its group's primer
    /// (the group not open yet): `None` for any other attempt, whose first byte opens
    /// nothing. The rest of the group waits for that first byte, so a task may ask for the
    /// primer's reply as a stream, whose first byte comes when the provider starts it rather
    /// than when it is done.
    #[must_use]
    pub fn began(&self, index: usize) -> Option<Began> {
        (self.priming.get() == Some(index)).then(|| Began {
            index,
            arrivals: self.arrivals.clone(),
        })
    }
}

#[derive(Default)]
struct Group {
    open: bool,
    primer: Option<usize>,
    /// In input order. A `Vec`, as elsewhere in the batch (a hand-over, the rare case, shifts it).
    held: Vec<usize>,
}

/// A batch's side: the groups and who waits in them.
pub(crate) struct Grouping<'a> {
    source: &'a CacheGroups<'a>,
    /// Per item, its key once asked (`None` inside: it has none).
    keys: Vec<Option<Option<u64>>>,
    /// By key. A list, not a map: calls have few groups, and a map's code is KBs of wasm.
    groups: Vec<(u64, Group)>,
    held: usize,
}

impl<'a> Grouping<'a> {
    pub(crate) fn new(source: &'a CacheGroups<'a>, total: usize) -> Self {
        Grouping {
            source,
            keys: (0..total).map(|_| None).collect(),
            groups: Vec::new(),
            held: 0,
        }
    }

    fn group(&mut self, index: usize) -> Option<&mut Group> {
        let key = (*self.keys[index].get_or_insert_with(|| (self.source.key)(index)))?;
        let at = match self.groups.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                self.groups.push((key, Group::default()));
                self.groups.len() - 1
            }
        };
        Some(&mut self.groups[at].1)
    }

    /// Whether item `index`, next to start, may start now: it has no group, its group is
    /// open, or it becomes (or is) the primer (noted for [`CacheGroups::began`]). `false`: it is
    /// held until the group opens or it is its turn to prime.
    pub(crate) fn admit(&mut self, index: usize) -> bool {
        let priming = &self.source.priming;
        priming.set(None);
        let Some(g) = self.group(index) else {
            return true;
        };
        if g.open {
            return true;
        }
        if *g.primer.get_or_insert(index) == index {
            // A call of one item has nobody to release: its request goes as it is.
            if self.keys.len() > 1 {
                priming.set(Some(index));
            }
            return true;
        }
        g.held.push(index);
        self.held += 1;
        false
    }

    /// Items held now.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// The responses that began since the last look: the items they release go to `ready`.
    /// Whether there were any.
    pub(crate) fn arrivals(&mut self, ready: &mut ReadyQueue) -> bool {
        let begun = std::mem::take(&mut *self.source.arrivals.borrow_mut());
        for &index in &begun {
            self.ended(index, true, ready);
        }
        !begun.is_empty()
    }

    /// Item `index`'s attempt ended (or the item ended without one): `true` when its response
    /// began. A primer's group opens then (all its held items go to `ready`); otherwise the
    /// primer hands over to the next held item. Anything else: nothing. (An item released
    /// here that a stop ends before it starts is skipped by the batch.)
    pub(crate) fn ended(&mut self, index: usize, began: bool, ready: &mut ReadyQueue) {
        let Some(Some(Some(key))) = self.keys.get(index).copied() else {
            return;
        };
        let found = self.groups.iter_mut().find(|(k, _)| *k == key);
        let Some((_, g)) = found.filter(|(_, g)| g.primer == Some(index) && !g.open) else {
            return;
        };
        let before = g.held.len();
        if began {
            g.open = true;
            for &i in &g.held {
                ready.push_retry(i);
            }
            g.held.clear();
        } else {
            g.primer = (!g.held.is_empty()).then(|| g.held.remove(0));
            g.primer.into_iter().for_each(|i| ready.push_retry(i));
        }
        self.held -= before - g.held.len();
    }
}
