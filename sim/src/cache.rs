//! Anthropic's prompt cache, as the API reports it: a request's `cache_control` blocks are
//! its breakpoints; the prefix up to a breakpoint (tools, then system, then messages) is the
//! entry's key, per model. A request reads the longest prefix whose entry is readable and
//! writes the longer ones it marked, if they reach the model's minimum length. An entry lives
//! 5 minutes (or 1 hour with `ttl: "1h"`) from its last use, and it is readable only once its
//! writer's response has begun (its headers sent): requests sent at the same moment all
//! write, none reads. Per simulator, no background work: entries are checked against each
//! request's time.

const FIVE_MINUTES_US: u64 = 5 * 60 * 1_000_000;
const ONE_HOUR_US: u64 = 60 * 60 * 1_000_000;

/// A prefix's key: FNV-1a (64 bits) over its parts, each ended by a 0 byte.
pub fn key(parts: &[&str]) -> u64 {
    let step = |h: u64, b: u8| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    parts.iter().fold(0xcbf2_9ce4_8422_2325, |h, part| {
        step(part.bytes().fold(h, step), 0)
    })
}

/// One `cache_control` block of a request: the prefix up to and including it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breakpoint {
    /// The prefix's key: model and text up to here.
    pub key: u64,
    /// The prefix's input tokens (ceil(chars / 4), as the whole prompt's).
    pub tokens: u64,
    /// `ttl: "1h"` (else the 5-minute default).
    pub long: bool,
}

/// What a request's usage says about the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens written with the 5-minute lifetime.
    pub write_5m: u64,
    /// Tokens written with the 1-hour lifetime.
    pub write_1h: u64,
    /// Tokens read from an entry.
    pub read: u64,
}

impl Usage {
    /// `cache_creation_input_tokens`.
    pub fn written(&self) -> u64 {
        self.write_5m + self.write_1h
    }

    /// The usage fields after `input_tokens`, as the API writes them.
    pub fn json(&self) -> String {
        format!(
            r#""cache_creation_input_tokens":{},"cache_read_input_tokens":{},"cache_creation":{{"ephemeral_5m_input_tokens":{},"ephemeral_1h_input_tokens":{}}},"#,
            self.written(),
            self.read,
            self.write_5m,
            self.write_1h
        )
    }
}

/// What a request does to the cache, decided at its arrival, carried out once its headers'
/// time is known ([`Cache::commit`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Its usage.
    pub usage: Usage,
    read: Option<(u64, bool)>,
    writes: Vec<(u64, bool)>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u64,
    readable_us: u64,
    expires_us: u64,
}

/// The smallest prefix the model caches, in tokens (Anthropic's prompt-caching page, read
/// 2026-12-07: 4096 for Opus 4.5 / 4.6 and Haiku 4.5, 2048 for the older Haikus, 1024 for
/// the rest, Sonnet 4.5 among them).
pub fn min_tokens(model: &str) -> u64 {
    // By bytes: `str::contains` brings a substring search of several KB into the wasm.
    let has = |part: &str| {
        let part = part.as_bytes();
        model.as_bytes().windows(part.len()).any(|w| w == part)
    };
    if ["opus-4-5", "opus-4-6", "haiku-4-5"].into_iter().any(has) {
        4096
    } else if has("haiku") {
        2048
    } else {
        1024
    }
}

fn ttl_us(long: bool) -> u64 {
    if long {
        ONE_HOUR_US
    } else {
        FIVE_MINUTES_US
    }
}

/// The entries of one simulator: a list (a few shared prefixes at a time; a map is KBs of
/// wasm), expired ones dropped at each write.
#[derive(Debug, Default)]
pub struct Cache {
    entries: Vec<Entry>,
}

impl Cache {
    /// What a request with these breakpoints (in order) reads and writes at `now_us`.
    pub fn plan(&self, model: &str, marks: &[Breakpoint], now_us: u64) -> Plan {
        let readable = |b: &Breakpoint| {
            self.entries
                .iter()
                .any(|e| e.key == b.key && e.readable_us <= now_us && now_us < e.expires_us)
        };
        let hit = marks.iter().rposition(readable);
        let mut plan = Plan::default();
        let mut covered = 0;
        if let Some(i) = hit {
            plan.read = Some((marks[i].key, marks[i].long));
            plan.usage.read = marks[i].tokens;
            covered = marks[i].tokens;
        }
        let min = min_tokens(model);
        let after = hit.map_or(0, |i| i + 1);
        for b in marks.get(after..).unwrap_or_default() {
            if b.tokens < min || b.tokens <= covered {
                continue;
            }
            let grown = b.tokens - covered;
            if b.long {
                plan.usage.write_1h += grown;
            } else {
                plan.usage.write_5m += grown;
            }
            covered = b.tokens;
            plan.writes.push((b.key, b.long));
        }
        plan
    }

    /// Carries out `plan` of a request that arrived at `now_us` and whose response begins at
    /// `begins_us`: the entry read lives on from now; the entries written become readable
    /// when the response begins (an entry already there keeps the earlier time).
    pub fn commit(&mut self, plan: &Plan, now_us: u64, begins_us: u64) {
        self.entries.retain(|e| e.expires_us > now_us);
        self.apply(plan, now_us, begins_us);
    }

    /// [`Cache::commit`] without dropping expired entries: for a request planned ahead of
    /// the simulator's clock (a Message Batch's item), whose time is not yet everyone's.
    pub fn apply(&mut self, plan: &Plan, now_us: u64, begins_us: u64) {
        if let Some((key, long)) = plan.read {
            if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
                e.expires_us = e.expires_us.max(now_us + ttl_us(long));
            }
        }
        for &(key, long) in &plan.writes {
            let expires_us = begins_us + ttl_us(long);
            match self.entries.iter_mut().find(|e| e.key == key) {
                Some(e) => {
                    e.readable_us = e.readable_us.min(begins_us);
                    e.expires_us = e.expires_us.max(expires_us);
                }
                None => self.entries.push(Entry {
                    key,
                    readable_us: begins_us,
                    expires_us,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(key: u64, tokens: u64, long: bool) -> Breakpoint {
        Breakpoint { key, tokens, long }
    }

    #[test]
    fn writes_then_reads_once_the_writer_began() {
        let mut cache = Cache::default();
        let marks = [mark(1, 3000, false)];
        let first = cache.plan("claude-sonnet-4-5", &marks, 0);
        assert_eq!(
            first.usage,
            Usage {
                write_5m: 3000,
                write_1h: 0,
                read: 0
            }
        );
        cache.commit(&first, 0, 500);
        // Before the writer's headers: a second write.
        let early = cache.plan("claude-sonnet-4-5", &marks, 499);
        assert_eq!(early.usage.written(), 3000);
        let late = cache.plan("claude-sonnet-4-5", &marks, 500);
        assert_eq!(
            late.usage,
            Usage {
                write_5m: 0,
                write_1h: 0,
                read: 3000
            }
        );
    }

    #[test]
    fn lifetimes_minimums_and_the_longest_prefix() {
        let mut cache = Cache::default();
        // Below the model's minimum: nothing cached.
        let short = cache.plan("claude-haiku-4-5", &[mark(1, 3000, false)], 0);
        assert_eq!(short.usage, Usage::default());
        let marks = [mark(1, 1500, true), mark(2, 2500, false)];
        let p = cache.plan("m", &marks, 0);
        assert_eq!(
            p.usage,
            Usage {
                write_5m: 1000,
                write_1h: 1500,
                read: 0
            }
        );
        cache.commit(&p, 0, 0);
        // Five minutes later the 5-minute entry is gone; the hour's is read, the rest written.
        let later = cache.plan("m", &marks, FIVE_MINUTES_US);
        assert_eq!(
            later.usage,
            Usage {
                write_5m: 1000,
                write_1h: 0,
                read: 1500
            }
        );
        // A read refreshes the entry's lifetime.
        let mut cache = Cache::default();
        let one = [mark(7, 2000, false)];
        let p = cache.plan("m", &one, 0);
        cache.commit(&p, 0, 0);
        let r = cache.plan("m", &one, FIVE_MINUTES_US - 1);
        cache.commit(&r, FIVE_MINUTES_US - 1, FIVE_MINUTES_US);
        let still = cache.plan("m", &one, 2 * FIVE_MINUTES_US - 2);
        assert_eq!(still.usage.read, 2000);
    }
}
