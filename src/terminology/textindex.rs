//! The `filter` of `$expand`: free text over a code system.
//!
//! A concept matches when every word of the text is the prefix of a word of
//! its display or of one of its designations (inclusion terms), or when the
//! text is a prefix of its code, with or without the dot. Words are folded
//! (accents removed, lower case) and split at anything not a letter or digit.
//!
//! Ranking puts code matches first (the exact code, then shorter codes),
//! then concepts matched by their display before those matched only by a
//! designation, then shorter displays (a display that is mostly the words
//! asked for is the concept meant: `type 2 diab` → E11 "Type 2 diabetes
//! mellitus" before its 400 descendants), then shorter codes, then code order.
//!
//! The words of all concepts are kept sorted, so a word prefix is one range of
//! word ids; the rarest query word gives the candidates, and the others are
//! checked against each candidate's own word ids.

use super::codesystem::Concept;

#[derive(Debug, Default)]
pub struct TextIndex {
    /// Every distinct word, sorted.
    words: Vec<Box<str>>,
    /// Concepts having each word (sorted ids).
    postings: Vec<Vec<u32>>,
    /// Distinct word ids of each concept: display words first.
    concept_words: Vec<Box<[u32]>>,
    /// How many of `concept_words` come from the display.
    display_distinct: Vec<u16>,
    /// Number of words of each display.
    display_len: Vec<u16>,
    /// (code without dots, upper case; concept id), sorted.
    codes: Vec<(Box<str>, u32)>,
}

/// The words of a text, folded.
pub fn words(text: &str) -> Vec<String> {
    crate::search::normalize::normalize(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// A code as compared by prefix: no dots, upper case.
pub fn code_key(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '.')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl TextIndex {
    pub fn build(concepts: &[Concept]) -> TextIndex {
        let mut ids: std::collections::HashMap<String, u32> = Default::default();
        let mut names: Vec<String> = Vec::new();
        let mut intern = |w: String| -> u32 {
            if let Some(&id) = ids.get(&w) {
                return id;
            }
            let id = names.len() as u32;
            ids.insert(w.clone(), id);
            names.push(w);
            id
        };
        let mut concept_words: Vec<Vec<u32>> = Vec::with_capacity(concepts.len());
        let mut display_distinct = Vec::with_capacity(concepts.len());
        let mut display_len = Vec::with_capacity(concepts.len());
        for c in concepts {
            let display = words(&c.display);
            display_len.push(display.len().min(u16::MAX as usize) as u16);
            let mut list: Vec<u32> = Vec::new();
            for w in display {
                let id = intern(w);
                if !list.contains(&id) {
                    list.push(id);
                }
            }
            display_distinct.push(list.len().min(u16::MAX as usize) as u16);
            for d in &c.designations {
                for w in words(&d.value) {
                    let id = intern(w);
                    if !list.contains(&id) {
                        list.push(id);
                    }
                }
            }
            concept_words.push(list);
        }
        // Renumber words in sorted order.
        let mut sorted: Vec<u32> = (0..names.len() as u32).collect();
        sorted.sort_by(|a, b| names[*a as usize].cmp(&names[*b as usize]));
        let mut rank = vec![0u32; names.len()];
        for (new, old) in sorted.iter().enumerate() {
            rank[*old as usize] = new as u32;
        }
        let mut postings: Vec<Vec<u32>> = vec![Vec::new(); names.len()];
        let concept_words: Vec<Box<[u32]>> = concept_words
            .into_iter()
            .enumerate()
            .map(|(c, list)| {
                let list: Vec<u32> = list.into_iter().map(|w| rank[w as usize]).collect();
                for &w in &list {
                    postings[w as usize].push(c as u32);
                }
                list.into_boxed_slice()
            })
            .collect();
        let mut names: Vec<Option<String>> = names.into_iter().map(Some).collect();
        let words = sorted
            .iter()
            .map(|old| {
                names[*old as usize]
                    .take()
                    .unwrap_or_default()
                    .into_boxed_str()
            })
            .collect();
        let mut codes: Vec<(Box<str>, u32)> = concepts
            .iter()
            .enumerate()
            .map(|(i, c)| (code_key(&c.code).into_boxed_str(), i as u32))
            .collect();
        codes.sort();
        TextIndex {
            words,
            postings,
            concept_words,
            display_distinct,
            display_len,
            codes,
        }
    }

    /// Word ids starting with `prefix`.
    fn word_range(&self, prefix: &str) -> std::ops::Range<u32> {
        let lo = self.words.partition_point(|w| w.as_ref() < prefix);
        let hi = lo + self.words[lo..].partition_point(|w| w.starts_with(prefix));
        lo as u32..hi as u32
    }

    /// Concepts whose code starts with `prefix` (dots ignored), exact
    /// match first, then shorter codes, then code order.
    pub fn code_prefix(&self, prefix: &str) -> Vec<u32> {
        let key = code_key(prefix);
        if key.is_empty() {
            return Vec::new();
        }
        let lo = self
            .codes
            .partition_point(|(c, _)| c.as_ref() < key.as_str());
        let mut hits: Vec<(usize, &str, u32)> = self.codes[lo..]
            .iter()
            .take_while(|(c, _)| c.starts_with(key.as_str()))
            .map(|(c, id)| (c.len(), c.as_ref(), *id))
            .collect();
        hits.sort_unstable();
        hits.into_iter().map(|(_, _, id)| id).collect()
    }

    /// Concepts matching `text`, best first. `code_len` gives each
    /// concept's code length (a tie breaker).
    pub fn search(&self, text: &str, concepts: &[Concept]) -> Vec<u32> {
        let text = text.trim();
        let mut out: Vec<u32> = Vec::new();
        if text.is_empty() {
            return out;
        }
        let looks_like_code = !text.contains(char::is_whitespace)
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if looks_like_code {
            out = self.code_prefix(text);
        }
        let query = words(text);
        if query.is_empty() {
            return out;
        }
        let ranges: Vec<std::ops::Range<u32>> = query.iter().map(|w| self.word_range(w)).collect();
        if ranges.iter().any(|r| r.is_empty()) {
            return out;
        }
        let cost = |r: &std::ops::Range<u32>| -> usize {
            self.postings[r.start as usize..r.end as usize]
                .iter()
                .map(Vec::len)
                .sum()
        };
        let (best, _) = ranges
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| cost(r))
            .expect("at least one word");
        let mut candidates: Vec<u32> = Vec::with_capacity(cost(&ranges[best]));
        for w in ranges[best].clone() {
            candidates.extend_from_slice(&self.postings[w as usize]);
        }
        candidates.sort_unstable();
        candidates.dedup();
        let already: std::collections::HashSet<u32> = out.iter().copied().collect();
        let mut ranked: Vec<(u8, u16, usize, u32)> = Vec::new();
        for c in candidates {
            let own = &self.concept_words[c as usize];
            let display = &own[..self.display_distinct[c as usize] as usize];
            let in_display = ranges.iter().all(|r| display.iter().any(|w| r.contains(w)));
            if !in_display && !ranges.iter().all(|r| own.iter().any(|w| r.contains(w))) {
                continue;
            }
            if already.contains(&c) {
                continue;
            }
            ranked.push((
                u8::from(!in_display),
                self.display_len[c as usize],
                concepts[c as usize].code.len(),
                c,
            ));
        }
        ranked.sort_unstable_by(|a, b| {
            (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)).then_with(|| {
                concepts[a.3 as usize]
                    .code
                    .cmp(&concepts[b.3 as usize].code)
            })
        });
        out.extend(ranked.into_iter().map(|r| r.3));
        out
    }

    /// Approximate heap size in bytes (for the memory figure).
    pub fn heap_bytes(&self) -> usize {
        self.words.iter().map(|w| w.len() + 16).sum::<usize>()
            + self
                .postings
                .iter()
                .map(|p| p.len() * 4 + 24)
                .sum::<usize>()
            + self
                .concept_words
                .iter()
                .map(|p| p.len() * 4 + 16)
                .sum::<usize>()
            + self.display_distinct.len() * 4
            + self.codes.iter().map(|(c, _)| c.len() + 20).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concepts() -> Vec<Concept> {
        let mut list = vec![
            Concept::new("E11", "Type 2 diabetes mellitus"),
            Concept::new("E11.9", "Type 2 diabetes mellitus without complications"),
            Concept::new("E11.65", "Type 2 diabetes mellitus with hyperglycemia"),
            Concept::new("E10", "Type 1 diabetes mellitus"),
            Concept::new(
                "O24.11",
                "Pre-existing type 2 diabetes mellitus, in pregnancy",
            ),
            Concept::new("I10", "Essential (primary) hypertension"),
        ];
        list[5]
            .designations
            .push(super::super::codesystem::Designation {
                language: None,
                use_code: None,
                value: "high blood pressure".into(),
            });
        list
    }

    fn codes(found: &[u32], concepts: &[Concept]) -> Vec<String> {
        found
            .iter()
            .map(|&i| concepts[i as usize].code.to_string())
            .collect()
    }

    #[test]
    fn ranks_the_concept_meant_first() {
        let c = concepts();
        let index = TextIndex::build(&c);
        for text in ["diabetes type 2", "type 2 diab", "TYPE 2 Diabetes"] {
            let found = codes(&index.search(text, &c), &c);
            assert_eq!(found[0], "E11", "{text}: {found:?}");
            assert!(!found.contains(&"E10".to_string()), "{text}: {found:?}");
            assert_eq!(found.len(), 4, "{text}: {found:?}");
        }
        assert_eq!(codes(&index.search("E11.9", &c), &c), ["E11.9"]);
        assert_eq!(codes(&index.search("e119", &c), &c), ["E11.9"]);
        assert_eq!(
            codes(&index.search("E11", &c), &c),
            ["E11", "E11.9", "E11.65"]
        );
    }

    #[test]
    fn every_word_must_match_a_word_prefix() {
        let c = concepts();
        let index = TextIndex::build(&c);
        assert!(index.search("diabetes hyper", &c).len() == 1);
        assert!(index.search("abetes", &c).is_empty(), "prefixes only");
        assert!(index.search("diabetes zzz", &c).is_empty());
        // Designations match, after displays.
        assert_eq!(codes(&index.search("blood press", &c), &c), ["I10"]);
        assert_eq!(codes(&index.search("hypert", &c), &c), ["I10"]);
    }
}
