//! Time, behind a trait: JS timers in wasm, a virtual clock in native tests.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A boxed, single-threaded sleep future.
pub type Sleep = Pin<Box<dyn Future<Output = ()>>>;

/// The executor's only source of time.
pub trait Clock {
    /// Monotonic time since an arbitrary origin.
    fn now(&self) -> Duration;
    /// Wall-clock time in milliseconds since the Unix epoch (to read HTTP dates).
    fn unix_ms(&self) -> f64;
    /// A future that completes after `duration`; dropping it cancels the timer.
    fn sleep(&self, duration: Duration) -> Sleep;
}

impl<C: Clock + ?Sized> Clock for Rc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
    fn unix_ms(&self) -> f64 {
        (**self).unix_ms()
    }
    fn sleep(&self, duration: Duration) -> Sleep {
        (**self).sleep(duration)
    }
}

/// A clock that only moves when told to: deterministic tests of all timing logic.
///
/// [`VirtualClock::block_on`] drives a future to completion, jumping time straight to the
/// next timer whenever the future can make no progress.
#[derive(Clone, Default)]
pub struct VirtualClock {
    state: Rc<RefCell<VirtualState>>,
}

#[derive(Default)]
struct VirtualState {
    now: Duration,
    next_id: u64,
    timers: Vec<Timer>,
}

struct Timer {
    id: u64,
    at: Duration,
    waker: Option<Waker>,
}

/// The wall-clock reading of a virtual clock at its origin (2026-01-01T00:00:00Z).
pub const VIRTUAL_EPOCH_UNIX_MS: f64 = 1_767_225_600_000.0;

impl VirtualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `by`, waking every timer that falls due.
    pub fn advance(&self, by: Duration) {
        let target = self.state.borrow().now + by;
        self.advance_to(target);
    }

    fn advance_to(&self, target: Duration) {
        let wakers: Vec<Waker> = {
            let mut st = self.state.borrow_mut();
            if target > st.now {
                st.now = target;
            }
            let now = st.now;
            st.timers
                .iter_mut()
                .filter(|t| t.at <= now)
                .filter_map(|t| t.waker.take())
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The earliest pending timer, if any.
    pub fn next_timer(&self) -> Option<Duration> {
        self.state.borrow().timers.iter().map(|t| t.at).min()
    }

    /// How many timers are pending (dropped sleeps are not counted).
    pub fn pending_timers(&self) -> usize {
        self.state.borrow().timers.len()
    }

    /// Runs `fut` to completion on this thread. Whenever it is stuck, time jumps to the next
    /// timer. Panics if it is stuck with no timer left: that is a hang in real life.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let flag = Arc::new(WakeFlag(AtomicBool::new(true)));
        let waker = futures::task::waker(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = Box::pin(fut);
        loop {
            if flag.0.swap(false, Ordering::SeqCst) {
                if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                    return out;
                }
                continue;
            }
            match self.next_timer() {
                Some(at) => self.advance_to(at),
                None => panic!("future is stuck with no timer pending: it would hang forever"),
            }
            // Even a timer nobody waits on any more marks progress in time; poll again.
            flag.0.store(true, Ordering::SeqCst);
        }
    }
}

struct WakeFlag(AtomicBool);

impl futures::task::ArcWake for WakeFlag {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.store(true, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        self.state.borrow().now
    }

    fn unix_ms(&self) -> f64 {
        VIRTUAL_EPOCH_UNIX_MS + self.now().as_secs_f64() * 1000.0
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let mut st = self.state.borrow_mut();
        let id = st.next_id;
        st.next_id += 1;
        let at = st.now + duration;
        st.timers.push(Timer {
            id,
            at,
            waker: None,
        });
        Box::pin(VirtualSleep {
            clock: self.clone(),
            id,
            at,
        })
    }
}

struct VirtualSleep {
    clock: VirtualClock,
    id: u64,
    at: Duration,
}

impl Future for VirtualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.clock.state.borrow_mut();
        if st.now >= self.at {
            return Poll::Ready(());
        }
        if let Some(t) = st.timers.iter_mut().find(|t| t.id == self.id) {
            t.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for VirtualSleep {
    fn drop(&mut self) {
        let id = self.id;
        self.clock.state.borrow_mut().timers.retain(|t| t.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_complete_in_deadline_order() {
        let clock = VirtualClock::new();
        let order = Rc::new(RefCell::new(Vec::new()));
        let mk = |ms: u64| {
            let (clock, order) = (clock.clone(), order.clone());
            async move {
                clock.sleep(Duration::from_millis(ms)).await;
                order.borrow_mut().push((ms, clock.now().as_millis()));
            }
        };
        clock.block_on(futures::future::join3(mk(30), mk(10), mk(20)));
        assert_eq!(*order.borrow(), vec![(10, 10), (20, 20), (30, 30)]);
    }

    #[test]
    fn dropped_sleep_removes_its_timer() {
        let clock = VirtualClock::new();
        let s = clock.sleep(Duration::from_secs(5));
        assert_eq!(clock.pending_timers(), 1);
        drop(s);
        assert_eq!(clock.pending_timers(), 0);
    }

    #[test]
    #[should_panic(expected = "stuck")]
    fn a_future_that_can_never_finish_is_reported() {
        VirtualClock::new().block_on(futures::future::pending::<()>());
    }

    #[test]
    fn advance_moves_time_and_wakes_what_fell_due() {
        let clock = VirtualClock::new();
        clock.advance(Duration::from_millis(10));
        let (mut due, mut later) = (
            clock.sleep(Duration::from_millis(20)),
            clock.sleep(Duration::from_millis(40)),
        );
        clock.advance(Duration::from_millis(20));
        assert_eq!(clock.now(), Duration::from_millis(30));
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(due.as_mut().poll(&mut cx).is_ready());
        assert!(later.as_mut().poll(&mut cx).is_pending());
    }

    #[test]
    fn a_shared_clock_is_a_clock() {
        let clock = Rc::new(VirtualClock::new());
        clock.advance(Duration::from_millis(1500));
        let shared: &dyn Clock = &clock;
        assert_eq!(shared.now(), Duration::from_millis(1500));
        assert_eq!(shared.unix_ms(), VIRTUAL_EPOCH_UNIX_MS + 1500.0);
        let _sleep = shared.sleep(Duration::from_secs(1));
        assert_eq!(clock.next_timer(), Some(Duration::from_millis(2500)));
    }
}
