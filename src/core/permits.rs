//! A permit source over the pacer, for callers that are not one executor: the shared limiter
//! of the Worker's `/v1/batches`, where many consumer invocations of many batches ask one
//! object "may I send now?" and report back what the reply said.
//!
//! Check-and-take is one call ([`PermitPool::acquire`]): the answer is a lease or a typed
//! refusal ("not before D"), never a bool to act on later. Leases expire, so a caller that
//! crashed between acquire and release cannot hold a permit for ever. Owners (batches) take
//! turns: while another owner is waiting, the one served least recently goes first, and none
//! holds more than its share of the concurrency.

use std::time::Duration;

use super::limits::{Cost, Feedback};
use super::observation::{Observation, Observed};
use super::pacer::{Admission, Pacer, PacingConfig, Ticket};
use super::retry::FailureClass;
use crate::error::Failure;

/// How soon a caller refused for lack of a free slot (or behind the breaker's probe) should
/// ask again: slots free when replies arrive, which no clock can predict.
pub const BUSY_RETRY: Duration = Duration::from_millis(100);
/// How soon an owner asked to let a less recently served one go first should ask again.
pub const TURN_RETRY: Duration = Duration::from_millis(20);
/// An owner refused within this long counts as waiting for its turn.
const WAITING_WINDOW: Duration = Duration::from_millis(500);

/// Settings of a pool.
#[derive(Clone, Debug, PartialEq)]
pub struct PermitConfig {
    /// Budgets, 429 pause, adaptive concurrency, breaker.
    pub pacing: PacingConfig,
    /// Attempts in flight at once over every owner (the adaptive limit's ceiling).
    pub max_in_flight: usize,
    /// How long a permit lives without a release.
    pub lease: Duration,
}

/// The answer to an acquire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Send now; release this id with the outcome.
    Granted(u64),
    /// Not before this long from now.
    Wait(Duration),
    /// This request can never fit a budget.
    Never(String),
}

/// What became of a granted attempt (borrowed: the caller keeps its failure).
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// A reply the caller counts as success, with its usage and rate-limit headers.
    Success(&'a Feedback),
    /// A failed attempt; `wait` is the server's Retry-After when it gave one.
    Failure {
        /// The failure, classified as the executor would.
        failure: &'a Failure,
        /// The server's wait (zero when none was given).
        wait: Duration,
    },
    /// Nothing came of it (cancelled before an answer).
    Abandoned,
}

#[derive(Clone, Debug)]
struct Lease {
    owner: String,
    cost: Cost,
    ticket: Ticket,
    started: Duration,
    /// Leases held when this one was granted, itself included.
    in_flight_at_start: usize,
    expires: Duration,
}

#[derive(Clone, Debug, Default)]
struct Owner {
    in_flight: usize,
    last_grant: Option<Duration>,
    refused_at: Option<Duration>,
}

/// See the module docs.
#[derive(Debug)]
pub struct PermitPool {
    pacer: Pacer,
    lease: Duration,
    /// By id, ascending (ids only grow): a few hundred at most, so a vector does.
    leases: Vec<(u64, Lease)>,
    /// A handful of batches at a time.
    owners: Vec<(String, Owner)>,
    next_id: u64,
    granted: u64,
    expired: u64,
}

/// Counters for a status view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Permits held now.
    pub in_flight: usize,
    /// The adaptive concurrency limit now.
    pub concurrency: usize,
    /// Permits granted so far.
    pub granted: u64,
    /// Leases that ran out without a release.
    pub expired: u64,
    /// Owners known to the pool.
    pub owners: usize,
}

impl PermitPool {
    /// A pool at `now` (any origin, as long as later calls use the same one).
    pub fn new(config: &PermitConfig, now: Duration) -> Self {
        PermitPool {
            pacer: Pacer::new(&config.pacing, config.max_in_flight.max(1), now),
            lease: config.lease,
            leases: Vec::new(),
            owners: Vec::new(),
            next_id: 1,
            granted: 0,
            expired: 0,
        }
    }

    /// Check and take in one step: a lease for `owner`, or how long to wait.
    pub fn acquire(&mut self, owner: &str, cost: &Cost, now: Duration) -> Grant {
        self.take(owner, cost, now, true)
    }

    /// As [`PermitPool::acquire`], for a caller that holds its waiters and has already picked
    /// who goes next (the Worker's limiter object, which serves realtime calls before batch
    /// items): no owner is asked to let another go first.
    pub fn acquire_next(&mut self, owner: &str, cost: &Cost, now: Duration) -> Grant {
        self.take(owner, cost, now, false)
    }

    fn take(&mut self, owner: &str, cost: &Cost, now: Duration, turns: bool) -> Grant {
        self.sweep(now);
        let limit = self.pacer.concurrency();
        let grant = if self.leases.len() >= limit {
            Grant::Wait(BUSY_RETRY)
        } else {
            match self.pacer.admit(cost, now) {
                Admission::Go if !turns => Grant::Granted(0),
                Admission::Go => self.turn(owner, limit, now),
                Admission::Until(t) => Grant::Wait(t.saturating_sub(now).max(TURN_RETRY)),
                Admission::Blocked => Grant::Wait(BUSY_RETRY),
                Admission::Never(why) => return Grant::Never(why),
            }
        };
        let at = match self.owners.iter().position(|(name, _)| name == owner) {
            Some(at) => at,
            None => {
                self.owners.push((owner.to_owned(), Owner::default()));
                self.owners.len() - 1
            }
        };
        let state = &mut self.owners[at].1;
        if !matches!(grant, Grant::Wait(_)) {
            let ticket = self.pacer.start(cost, now);
            let id = self.next_id;
            self.next_id += 1;
            self.granted += 1;
            state.in_flight += 1;
            state.last_grant = Some(now);
            state.refused_at = None;
            self.leases.push((
                id,
                Lease {
                    owner: owner.to_owned(),
                    cost: *cost,
                    ticket,
                    started: now,
                    in_flight_at_start: self.leases.len() + 1,
                    expires: now + self.lease,
                },
            ));
            return Grant::Granted(id);
        }
        state.refused_at = Some(now);
        grant
    }

    /// Whether `owner` may take a free slot now, or must let a waiting owner go first.
    fn turn(&self, owner: &str, limit: usize, now: Duration) -> Grant {
        let me = self
            .owners
            .iter()
            .find(|(name, _)| name == owner)
            .map(|(_, o)| o.clone())
            .unwrap_or_default();
        let waiting = |o: &Owner| {
            o.refused_at
                .is_some_and(|t| now.saturating_sub(t) <= WAITING_WINDOW)
        };
        let others: Vec<&Owner> = self
            .owners
            .iter()
            .filter(|(name, o)| name.as_str() != owner && (waiting(o) || o.in_flight > 0))
            .map(|(_, o)| o)
            .collect();
        if others.is_empty() {
            return Grant::Granted(0);
        }
        // Only an owner that may go itself (waiting, under its share) is let go first: else
        // owners could each wait for the other and leave the slot idle. With none, the slot
        // goes to whoever asks (work-conserving).
        let share = limit.div_ceil(others.len() + 1);
        let next: Vec<&&Owner> = others
            .iter()
            .filter(|o| waiting(o) && o.in_flight < share)
            .collect();
        if !next.is_empty() && me.in_flight >= share {
            return Grant::Wait(TURN_RETRY);
        }
        let served_less = next.iter().any(|o| o.last_grant < me.last_grant);
        if served_less {
            return Grant::Wait(TURN_RETRY);
        }
        Grant::Granted(0)
    }

    /// Reports what became of a permit. False when the lease is unknown (it expired, or was
    /// released already): the outcome is then dropped, as its reservation already came back.
    pub fn release(&mut self, id: u64, outcome: Outcome<'_>, now: Duration) -> bool {
        self.sweep(now);
        let Ok(at) = self.leases.binary_search_by_key(&id, |(i, _)| *i) else {
            return false;
        };
        let (_, lease) = self.leases.remove(at);
        self.forget(&lease.owner);
        let observed = match outcome {
            Outcome::Success(feedback) => Observed::Success(feedback),
            Outcome::Failure { failure, wait } => Observed::Failure {
                failure,
                class: FailureClass::of(failure),
                pause: wait,
            },
            Outcome::Abandoned => {
                self.pacer
                    .on_abandoned(&lease.cost, &lease.ticket, lease.in_flight_at_start, now);
                return true;
            }
        };
        self.pacer.observe(&Observation {
            cost: &lease.cost,
            ticket: &lease.ticket,
            started: lease.started,
            ended: now,
            in_flight_at_start: lease.in_flight_at_start,
            outcome: observed,
        });
        true
    }

    /// Until when every send is paused after a 429, if it is.
    pub fn paused_until(&self, now: Duration) -> Option<Duration> {
        self.pacer.paused_until(now)
    }

    /// Counters now (expired leases swept first).
    pub fn stats(&mut self, now: Duration) -> PoolStats {
        self.sweep(now);
        PoolStats {
            in_flight: self.leases.len(),
            concurrency: self.pacer.concurrency(),
            granted: self.granted,
            expired: self.expired,
            owners: self.owners.len(),
        }
    }

    fn forget(&mut self, owner: &str) {
        if let Some((_, o)) = self.owners.iter_mut().find(|(name, _)| name == owner) {
            o.in_flight = o.in_flight.saturating_sub(1);
        }
    }

    /// Leases past their time come back as abandoned; owners idle for long are dropped.
    fn sweep(&mut self, now: Duration) {
        let mut at = 0;
        while at < self.leases.len() {
            if self.leases[at].1.expires > now {
                at += 1;
                continue;
            }
            let (_, lease) = self.leases.remove(at);
            self.expired += 1;
            self.forget(&lease.owner);
            self.pacer
                .on_abandoned(&lease.cost, &lease.ticket, lease.in_flight_at_start, now);
        }
        // An owner with a permit out was granted it within the last lease, so within `idle`:
        // the time alone keeps it.
        let idle = self.lease.max(Duration::from_secs(60));
        self.owners.retain(|(_, o)| {
            [o.last_grant, o.refused_at]
                .iter()
                .flatten()
                .any(|t| now.saturating_sub(*t) < idle)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::limits::{Limit, RateLimits};

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn pool(max: usize, rpm: Option<u64>) -> PermitPool {
        paced_pool(
            max,
            PacingConfig {
                requests_per_minute: rpm,
                adaptive: false,
                ..PacingConfig::default()
            },
        )
    }

    /// A pool of `max` with 30 s leases, paced by `pacing`.
    fn paced_pool(max: usize, pacing: PacingConfig) -> PermitPool {
        let config = PermitConfig {
            pacing,
            max_in_flight: max,
            lease: Duration::from_secs(30),
        };
        PermitPool::new(&config, Duration::ZERO)
    }

    fn id(g: Grant) -> u64 {
        match g {
            Grant::Granted(id) => id,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[test]
    fn never_more_in_flight_than_the_limit() {
        let mut p = pool(3, None);
        let ids: Vec<u64> = (0..3)
            .map(|_| id(p.acquire("a", &Cost::default(), MS(0))))
            .collect();
        assert_eq!(
            p.acquire("a", &Cost::default(), MS(0)),
            Grant::Wait(BUSY_RETRY)
        );
        assert!(p.release(ids[0], Outcome::Success(&Feedback::default()), MS(5)));
        assert!(
            !p.release(ids[0], Outcome::Abandoned, MS(6)),
            "a second release is refused"
        );
        id(p.acquire("a", &Cost::default(), MS(7)));
        assert_eq!(p.stats(MS(7)).in_flight, 3);
    }

    #[test]
    fn an_expired_lease_frees_its_slot_and_its_late_release_is_ignored() {
        let mut p = pool(1, None);
        let first = id(p.acquire("a", &Cost::default(), MS(0)));
        assert!(matches!(
            p.acquire("b", &Cost::default(), MS(10)),
            Grant::Wait(_)
        ));
        let later = Duration::from_secs(31);
        let second = id(p.acquire("b", &Cost::default(), later));
        assert_ne!(first, second);
        assert!(!p.release(first, Outcome::Success(&Feedback::default()), later));
        assert_eq!(p.stats(later).expired, 1);
        assert_eq!(p.stats(later).in_flight, 1);
    }

    #[test]
    fn the_request_budget_is_shared_and_refusals_say_until_when() {
        // 60 per minute: one a second once the burst is spent.
        let mut p = pool(100, Some(60));
        for _ in 0..60 {
            let g = id(p.acquire("a", &Cost::default(), MS(0)));
            p.release(g, Outcome::Success(&Feedback::default()), MS(0));
        }
        match p.acquire("b", &Cost::default(), MS(0)) {
            Grant::Wait(d) => assert!(d >= MS(900) && d <= MS(1000), "{d:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_429_pauses_every_owner_for_its_wait() {
        let mut p = pool(10, None);
        let g = id(p.acquire("a", &Cost::default(), MS(0)));
        let failure = Failure::http(429, "rate limited");
        p.release(
            g,
            Outcome::Failure {
                failure: &failure,
                wait: Duration::from_secs(2),
            },
            MS(100),
        );
        assert_eq!(p.paused_until(MS(100)), Some(MS(2100)));
        match p.acquire("b", &Cost::default(), MS(200)) {
            Grant::Wait(d) => assert_eq!(d, MS(1900)),
            other => panic!("{other:?}"),
        }
        id(p.acquire("b", &Cost::default(), MS(2100)));
    }

    #[test]
    fn headers_teach_the_budget() {
        let mut p = pool(10, None);
        let g = id(p.acquire("a", &Cost::default(), MS(0)));
        let limits = RateLimits {
            requests: Limit {
                limit: Some(60),
                remaining: Some(0),
                reset_in: Some(Duration::from_secs(30)),
            },
            ..RateLimits::default()
        };
        let feedback = Feedback {
            usage: None,
            limits: Some(limits),
        };
        p.release(g, Outcome::Success(&feedback), MS(10));
        // 59 used in 30 s: about half a second a request, and none left now.
        assert!(matches!(p.acquire("a", &Cost::default(), MS(20)), Grant::Wait(d) if d > MS(300)));
    }

    #[test]
    fn owners_take_turns_and_none_holds_more_than_its_share() {
        let mut p = pool(4, None);
        // a takes everything while alone.
        let a: Vec<u64> = (0..4)
            .map(|_| id(p.acquire("a", &Cost::default(), MS(0))))
            .collect();
        // b is refused (no slot) and so is waiting.
        assert!(matches!(
            p.acquire("b", &Cost::default(), MS(1)),
            Grant::Wait(_)
        ));
        p.release(a[0], Outcome::Success(&Feedback::default()), MS(2));
        // a may not take the freed slot back: it holds 3 of 4 and b waits.
        assert_eq!(
            p.acquire("a", &Cost::default(), MS(3)),
            Grant::Wait(TURN_RETRY)
        );
        id(p.acquire("b", &Cost::default(), MS(4)));
        p.release(a[1], Outcome::Success(&Feedback::default()), MS(5));
        // Now a holds 2, its share: b (served less recently than a? no: b was served at 4,
        // a at 0) — a waits its turn only if b is waiting, and b is not.
        id(p.acquire("a", &Cost::default(), MS(6)));
    }

    #[test]
    fn the_least_recently_served_waiting_owner_goes_first() {
        let mut p = pool(2, None);
        let a = id(p.acquire("a", &Cost::default(), MS(0)));
        let b = id(p.acquire("b", &Cost::default(), MS(1)));
        // c arrives while full.
        assert_eq!(
            p.acquire("c", &Cost::default(), MS(2)),
            Grant::Wait(BUSY_RETRY)
        );
        p.release(a, Outcome::Success(&Feedback::default()), MS(3));
        // a was served before (at 0); c never: c goes first.
        assert_eq!(
            p.acquire("a", &Cost::default(), MS(4)),
            Grant::Wait(TURN_RETRY)
        );
        id(p.acquire("c", &Cost::default(), MS(5)));
        p.release(b, Outcome::Abandoned, MS(6));
        // a waits (refused at 4), b was served at 1, a at 0: a goes before b.
        assert_eq!(
            p.acquire("b", &Cost::default(), MS(7)),
            Grant::Wait(TURN_RETRY)
        );
        id(p.acquire("a", &Cost::default(), MS(8)));
    }

    #[test]
    fn acquire_next_takes_the_free_slot_without_turns_but_within_the_limit() {
        let mut p = pool(1, None);
        let a = id(p.acquire("a", &Cost::default(), MS(0)));
        // c waits (refused while full), then a's permit comes back.
        assert_eq!(
            p.acquire("c", &Cost::default(), MS(1)),
            Grant::Wait(BUSY_RETRY)
        );
        p.release(a, Outcome::Success(&Feedback::default()), MS(2));
        // acquire would make a let c go first; the caller that ordered its waiters picked a.
        assert_eq!(
            p.acquire("a", &Cost::default(), MS(3)),
            Grant::Wait(TURN_RETRY)
        );
        let again = id(p.acquire_next("a", &Cost::default(), MS(4)));
        // The concurrency limit still holds.
        assert_eq!(
            p.acquire_next("c", &Cost::default(), MS(5)),
            Grant::Wait(BUSY_RETRY)
        );
        p.release(again, Outcome::Abandoned, MS(6));
        id(p.acquire_next("c", &Cost::default(), MS(7)));
    }

    #[test]
    fn a_request_that_can_never_fit_is_refused_for_good() {
        let pacing = PacingConfig {
            input_tokens_per_minute: Some(100),
            ..PacingConfig::default()
        };
        let mut p = paced_pool(4, pacing);
        let cost = Cost {
            input_tokens: 1000,
            output_tokens: 0,
        };
        assert!(
            matches!(p.acquire("a", &cost, MS(0)), Grant::Never(m) if m.contains("input tokens"))
        );
        assert_eq!(p.stats(MS(0)).in_flight, 0);
    }

    fn pool_of(max: usize) -> PermitPool {
        pool(max, None)
    }

    fn take(p: &mut PermitPool, owner: &str, at: u64) -> u64 {
        id(p.acquire(owner, &Cost::default(), MS(at)))
    }

    fn done(p: &mut PermitPool, lease: u64, at: u64) {
        assert!(p.release(lease, Outcome::Success(&Feedback::default()), MS(at)));
    }

    #[test]
    fn each_permit_teaches_the_adaptive_limit_at_the_level_it_was_granted() {
        let pacing = PacingConfig {
            adaptive: true,
            ..PacingConfig::default()
        };
        let mut p = paced_pool(16, pacing);
        // The server serves 4 and then fails the rest: the permits granted 5th to 16th (with
        // 5 to 16 out, each itself included). The knee is 4, not 3 or 5.
        let ids: Vec<u64> = (0..16).map(|_| take(&mut p, "a", 0)).collect();
        for &lease in &ids[..4] {
            done(&mut p, lease, 100);
        }
        for &lease in &ids[4..] {
            let failure = Failure::http(529, "overloaded");
            let wait = Duration::ZERO;
            assert!(p.release(
                lease,
                Outcome::Failure {
                    failure: &failure,
                    wait
                },
                MS(300)
            ));
        }
        assert_eq!(p.stats(MS(300)).concurrency, 4);
    }

    #[test]
    fn an_owner_neither_waiting_nor_holding_permits_takes_no_share() {
        let mut p = pool_of(6);
        // b came and went; a holds 2 and c 4, all granted at the same instant.
        let b = take(&mut p, "b", 0);
        done(&mut p, b, 1);
        for _ in 0..2 {
            take(&mut p, "a", 2);
        }
        let c: Vec<u64> = (0..4).map(|_| take(&mut p, "c", 2)).collect();
        // c waits for a slot, then its permits come back: c is waiting, under its share.
        assert_eq!(
            p.acquire("c", &Cost::default(), MS(3)),
            Grant::Wait(BUSY_RETRY)
        );
        for lease in c {
            done(&mut p, lease, 4);
        }
        // Split between a and c (not b too), a's share is 3: it holds 2, and may take one.
        id(p.acquire("a", &Cost::default(), MS(5)));
    }

    #[test]
    fn grants_are_counted() {
        let mut p = pool_of(4);
        let a = take(&mut p, "a", 0);
        take(&mut p, "b", 1);
        done(&mut p, a, 2);
        take(&mut p, "a", 3);
        assert_eq!(p.stats(MS(3)).granted, 3);
    }

    #[test]
    fn an_owner_at_its_share_waits_while_another_waits_even_if_served_later() {
        // a: 3 of 4 (served at 0), b: 1 (served at 1, so not "served less" than a).
        let mut p = pool_of(4);
        let a: Vec<u64> = (0..3).map(|_| take(&mut p, "a", 0)).collect();
        take(&mut p, "b", 1);
        assert_eq!(
            p.acquire("b", &Cost::default(), MS(2)),
            Grant::Wait(BUSY_RETRY)
        );
        done(&mut p, a[0], 3);
        // a holds 2 = its share of 4 between two owners, and b waits: a must wait.
        assert_eq!(
            p.acquire("a", &Cost::default(), MS(4)),
            Grant::Wait(TURN_RETRY)
        );
        take(&mut p, "b", 5);
    }

    #[test]
    fn under_its_share_an_owner_goes_and_only_active_owners_split_the_share() {
        // c was here once and left; a holds 2, b holds 4 of 6 and waits for more.
        let mut p = pool_of(6);
        let c = take(&mut p, "c", 0);
        done(&mut p, c, 0);
        let _a: Vec<u64> = (0..2).map(|_| take(&mut p, "a", 1)).collect();
        let b: Vec<u64> = (0..4).map(|_| take(&mut p, "b", 2)).collect();
        assert_eq!(
            p.acquire("b", &Cost::default(), MS(3)),
            Grant::Wait(BUSY_RETRY)
        );
        done(&mut p, b[0], 4);
        // Two owners are active (c is neither waiting nor holding): a's share is 3, it holds 2.
        take(&mut p, "a", 5);
    }

    #[test]
    fn an_owner_holding_permits_counts_in_the_split_without_waiting() {
        // limit 7: a holds 3, b holds 2 after a release and is not waiting, c holds 1 and waits.
        let mut p = pool_of(7);
        let _a: Vec<u64> = (0..3).map(|_| take(&mut p, "a", 0)).collect();
        let b: Vec<u64> = (0..3).map(|_| take(&mut p, "b", 1)).collect();
        take(&mut p, "c", 2);
        assert_eq!(
            p.acquire("c", &Cost::default(), MS(3)),
            Grant::Wait(BUSY_RETRY)
        );
        done(&mut p, b[0], 4);
        // Three active owners: a's share is 3 of 7, it holds 3, and c (under its share) waits.
        assert_eq!(
            p.acquire("a", &Cost::default(), MS(5)),
            Grant::Wait(TURN_RETRY)
        );
        take(&mut p, "c", 6);
    }

    #[test]
    fn when_every_waiting_owner_is_at_its_share_the_free_slot_is_used() {
        // limit 8: a 3, b 1 (idle), c 3 and waiting: a and c are both at their share of 3.
        let mut p = pool_of(8);
        let _a: Vec<u64> = (0..3).map(|_| take(&mut p, "a", 0)).collect();
        let b: Vec<u64> = (0..2).map(|_| take(&mut p, "b", 1)).collect();
        let _c: Vec<u64> = (0..3).map(|_| take(&mut p, "c", 2)).collect();
        assert_eq!(
            p.acquire("c", &Cost::default(), MS(3)),
            Grant::Wait(BUSY_RETRY)
        );
        done(&mut p, b[0], 4);
        // Nobody waiting is under its share: the slot is not left idle.
        take(&mut p, "a", 5);
    }

    #[test]
    fn owners_served_at_the_same_instant_are_even() {
        // limit 6, all served at 0: a 2, b 2, c 2; b waits; then a and b each give one back.
        let mut p = pool_of(6);
        let a: Vec<u64> = (0..2).map(|_| take(&mut p, "a", 0)).collect();
        let b: Vec<u64> = (0..2).map(|_| take(&mut p, "b", 0)).collect();
        let _c: Vec<u64> = (0..2).map(|_| take(&mut p, "c", 0)).collect();
        assert_eq!(
            p.acquire("b", &Cost::default(), MS(1)),
            Grant::Wait(BUSY_RETRY)
        );
        done(&mut p, b[0], 2);
        done(&mut p, a[0], 2);
        // b waits under its share, but was served when a was: a is not behind b, and goes.
        take(&mut p, "a", 3);
    }

    #[test]
    fn a_release_frees_its_own_owners_permit() {
        // a and b hold 3 each of 6, b served later and waiting for more.
        let mut p = pool_of(6);
        let a: Vec<u64> = (0..3).map(|_| take(&mut p, "a", 0)).collect();
        let _b: Vec<u64> = (0..3).map(|_| take(&mut p, "b", 1)).collect();
        assert_eq!(
            p.acquire("b", &Cost::default(), MS(2)),
            Grant::Wait(BUSY_RETRY)
        );
        done(&mut p, a[0], 3);
        // a now holds 2, under its share of 3: it goes.
        take(&mut p, "a", 4);
    }

    #[test]
    fn a_lease_ends_exactly_at_its_expiry() {
        let mut p = pool_of(1);
        take(&mut p, "a", 0);
        assert_eq!(p.stats(Duration::from_secs(30) - MS(1)).in_flight, 1);
        assert_eq!(p.stats(Duration::from_secs(30)).in_flight, 0);
    }

    #[test]
    fn idle_owners_are_forgotten_after_a_minute() {
        let mut p = pool_of(2);
        let a = take(&mut p, "a", 0);
        done(&mut p, a, 0);
        take(&mut p, "b", 30_000);
        assert_eq!(p.stats(MS(59_999)).owners, 2);
        // a was last seen 60 s ago: gone; b (30 s ago, a permit out) stays.
        assert_eq!(p.stats(MS(60_000)).owners, 1);
        assert_eq!(
            p.stats(MS(60_000)).in_flight,
            0,
            "b's 30 s lease ran out at 60 s"
        );
    }
}
