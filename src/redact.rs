//! Scrubbing secrets out of what a batch reports. Upstreams echo keys back — whole
//! (`invalid x-api-key: sk-ant-…`), in part, or masked (`sk-proj-****abcd`) — and that text
//! becomes an error message. So every message and header copy passes through
//! [`Secrets::scrub`] before JS sees it.

/// What replaces a secret, or a piece of one.
pub const REDACTED: &str = "[redacted]";

/// The shortest secret that is scrubbed: anything shorter cannot be told from ordinary text.
pub const MIN_SECRET_CHARS: usize = 6;

/// A run of this many characters of a secret is scrubbed wherever it appears.
pub const MIN_RUN_CHARS: usize = 8;

/// The secrets one call knows: the provider's key, a fetch spec's credential headers.
/// Matching is on bytes (keys are ASCII; a non-ASCII secret still matches byte for byte), and
/// what is hidden is widened to whole characters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// `*`, `.`, and any non-ASCII byte (`…` and `•` are the masks upstreams use).
fn is_mask_byte(c: u8) -> bool {
    c == b'*' || c == b'.' || c >= 0x80
}

impl Secrets {
    /// No secrets.
    pub const NONE: Secrets = Secrets(Vec::new());

    /// Adds a secret. A credential header's value also adds its credentials alone
    /// (`Bearer sk-…` adds `sk-…`), since that is the part an upstream echoes.
    pub fn add(&mut self, value: &str) {
        let value = value.trim();
        let mut add = |s: &str| {
            if s.chars().count() >= MIN_SECRET_CHARS && !self.0.iter().any(|k| k == s) {
                self.0.push(s.to_owned());
            }
        };
        add(value);
        if let Some((_scheme, credentials)) = crate::text::split_once(value, b' ') {
            add(credentials.trim());
        }
    }

    /// Both sets of secrets.
    pub fn with(&self, other: &Secrets) -> Secrets {
        let mut all = self.clone();
        for s in &other.0 {
            all.add(s);
        }
        all
    }

    /// Each secret, whole.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether there is nothing to scrub.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every secret, every run of [`MIN_RUN_CHARS`] bytes of one, and every
    /// masked echo of one (a token whose visible start is a prefix of the secret and whose
    /// visible end is a suffix, around `*`, `…` or dots) replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let bytes = text.as_bytes();
        let mut hidden = vec![false; bytes.len()];
        for secret in &self.0 {
            hide_runs(bytes, secret.as_bytes(), &mut hidden);
            hide_masked(bytes, secret.as_bytes(), &mut hidden);
        }
        let mut out = String::with_capacity(text.len());
        let mut shown = true;
        for (i, c) in text.char_indices() {
            let hide = hidden[i..i + c.len_utf8()].contains(&true);
            if !hide {
                out.push(c);
            } else if shown {
                out.push_str(REDACTED);
            }
            shown = !hide;
        }
        out
    }
}

/// Marks every stretch of `text` that is the whole secret or a long enough run of it; runs
/// start and end on a visible byte (`Bearer x` must not take the space before `x`).
fn hide_runs(text: &[u8], secret: &[u8], hidden: &mut [bool]) {
    let min = MIN_RUN_CHARS.min(secret.len());
    for start in 0..text.len() {
        if text[start].is_ascii_whitespace() {
            continue;
        }
        let mut longest = 0;
        for j in 0..secret.len() {
            let n = text[start..]
                .iter()
                .zip(&secret[j..])
                .take_while(|(a, b)| a == b)
                .count();
            longest = longest.max(n);
        }
        while longest > 0 && text[start + longest - 1].is_ascii_whitespace() {
            longest -= 1;
        }
        if longest >= min {
            hidden[start..start + longest].fill(true);
        }
    }
}

/// Marks masked echoes: tokens like `sk-…abcd` or `sk-proj-****abcd` (at least 4 visible
/// bytes in all, the start a prefix of the secret, the end a suffix).
fn hide_masked(text: &[u8], secret: &[u8], hidden: &mut [bool]) {
    let in_token = |c: u8| is_key_byte(c) || is_mask_byte(c);
    let mut start = 0;
    while start < text.len() {
        let mut end = start;
        while end < text.len() && in_token(text[end]) {
            end += 1;
        }
        // A sentence's full stop is not part of the token.
        if end - start >= 2 && text[end - 1] == b'.' && text[end - 2] != b'.' {
            end -= 1;
        }
        let token = &text[start..end];
        let first = token.iter().position(|c| is_mask_byte(*c));
        let last = token.iter().rposition(|c| is_mask_byte(*c));
        if let (Some(first), Some(last)) = (first, last) {
            let (head, tail, mask) = (&token[..first], &token[last + 1..], &token[first..=last]);
            // One dot is punctuation (`api.example.com`); a mask is `*`, `…`, `•` or dots.
            let masked = mask.iter().any(|c| *c == b'*' || *c >= 0x80)
                || mask.windows(2).any(|w| w == b"..");
            let visible = head.len() + tail.len();
            if masked
                && visible >= 4
                && visible < secret.len()
                && secret.starts_with(head)
                && secret.ends_with(tail)
            {
                hidden[start..end].fill(true);
            }
        }
        start = end.max(start + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-ant-api03-QWERTYuiop1234567890-abcd";

    fn secrets(keys: &[&str]) -> Secrets {
        let mut s = Secrets::default();
        for k in keys {
            s.add(k);
        }
        s
    }

    #[test]
    fn whole_partial_and_masked_echoes_are_scrubbed() {
        let s = secrets(&[KEY]);
        let table = [
            (
                format!("invalid x-api-key: {KEY}"),
                "invalid x-api-key: [redacted]",
            ),
            (
                "key sk-ant-api03-QWERTY was revoked".to_owned(),
                "key [redacted] was revoked",
            ),
            (
                "Incorrect API key provided: sk-ant-***********abcd.".to_owned(),
                "Incorrect API key provided: [redacted].",
            ),
            (
                "key sk-…abcd is invalid".to_owned(),
                "key [redacted] is invalid",
            ),
            ("key sk-...abcd".to_owned(), "key [redacted]"),
            (
                "tail 1234567890-abcd and head".to_owned(),
                "tail [redacted] and head",
            ),
            // Short common pieces stay: they cannot be told from ordinary text.
            ("sk-ant is a prefix".to_owned(), "sk-ant is a prefix"),
            ("rate limited... retry".to_owned(), "rate limited... retry"),
            ("nothing here".to_owned(), "nothing here"),
            ("see sk-x.example.abcd".to_owned(), "see sk-x.example.abcd"),
        ];
        for (text, want) in table {
            assert_eq!(s.scrub(&text), want, "{text}");
        }
    }

    #[test]
    fn bearer_values_add_their_credentials_and_short_values_are_ignored() {
        let s = secrets(&["Bearer tok-123456789", "k", "short"]);
        assert_eq!(s.scrub("bad token tok-123456789"), "bad token [redacted]");
        assert_eq!(s.scrub("k short"), "k short");
        assert!(secrets(&["k"]).is_empty());
        let both = secrets(&["abcdefgh"]).with(&secrets(&["zyxwvuts", "abcdefgh"]));
        assert_eq!(both.scrub("abcdefgh zyxwvuts"), "[redacted] [redacted]");
    }

    #[test]
    fn unicode_and_empty_text() {
        let s = secrets(&["clé-secrète-日本-123"]);
        assert_eq!(s.scrub("x clé-secrète-日本-123 y"), "x [redacted] y");
        assert_eq!(s.scrub(""), "");
        assert_eq!(Secrets::default().scrub("as is"), "as is");
    }
}
