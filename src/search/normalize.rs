//! The normal form of string search values: accents removed (Unicode
//! decomposition without combining marks), lower case, whitespace collapsed.
//! Both index rows and search values go through it, so `Zoë`, `ZOE` and
//! `zoe` find each other.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Longest normalised string kept in an index row; longer values (narrative
/// text) are cut at a character boundary.
pub const MAX_INDEXED_CHARS: usize = 512;

pub fn truncate(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(MAX_INDEXED_CHARS) {
        s.truncate(i);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_and_space() {
        assert_eq!(normalize("  Zoë   MÜLLER "), "zoe muller");
        assert_eq!(normalize("José"), "jose");
        assert_eq!(normalize("Åsa"), "asa");
        assert_eq!(normalize("李"), "李");
        assert_eq!(normalize("ﬁ"), "fi");
    }
}
