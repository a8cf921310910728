//! How alike two recommendations are, as a score in [0, 1].
//!
//! Text is normalised (case, punctuation, whitespace, camelCase and snake_case split),
//! stop words dropped, a few code-review synonyms folded (`configuration` → `config`,
//! `unwrap`/`crash` → `panic`, …) and words lightly stemmed; compound identifiers
//! (`load_config`) are kept whole beside their parts. Each recommendation becomes a
//! set of content tokens weighted by how rare they are among all the recommendations of
//! the tally (IDF), with title tokens weighted above rationale ones: words every reviewer
//! uses ("test", "error") count little, specific ones (`load_config`, "jitter") a lot.
//!
//! The score mixes three measures: a weighted Dice overlap of the title tokens, a
//! character-level ratio of the normalised titles (the `similar` crate's Myers diff,
//! which catches word forms the stemmer misses), and a weighted overlap of the whole
//! text. The last one blends Dice with the overlap coefficient because one reviewer's
//! rationale is often twice as long as another's for the same point. Two corrections
//! follow for what overlap gets wrong: a recommendation to add tests (or docs) against
//! one that is not, and two that name different code identifiers, keep half their raw
//! score. The weights were tuned on `fixtures/council` (docs/council.md has the margins).
//!
//! Everything is computed from the items in a fixed order (reviewers by name), so the
//! same input gives bit-identical scores.

mod words;

use std::collections::{BTreeSet, HashMap};
use words::{content_words, identifiers, stem};

/// Title tokens count this much more than rationale tokens in the whole-text overlap.
const TITLE_BOOST: f64 = 1.5;
/// Sharpens IDF: with a tally's few dozen recommendations plain IDF barely tells a
/// word every reviewer uses from one only two recommendations share.
const IDF_POWER: f64 = 1.5;
/// Words that most reviews use whatever they are about count this much of their IDF.
const GENERIC_WEIGHT: f64 = 0.5;
const GENERIC_WORDS: &[&str] = &[
    "test", "error", "message", "handle", "improve", "fix", "missing", "lack", "check", "new",
    "support", "better", "issue", "problem", "case", "value", "return", "call", "show", "change",
    "need", "ensure", "allow", "avoid", "wrong", "bug", "user",
];
/// Weights of the three measures; they sum to 1 so the score stays in [0, 1].
const W_TITLE_TOKENS: f64 = 0.10;
const W_TITLE_CHARS: f64 = 0.10;
const W_TEXT: f64 = 0.80;
/// A recommendation to add tests (or docs) and one that is not keep this much of their
/// raw score.
const KIND_MISMATCH: f64 = 0.5;
/// Two recommendations that both name compound identifiers (`index_loader`,
/// `useMetrics`) but not one in common are most likely about different code.
const IDENT_MISMATCH: f64 = 0.5;
/// Raw scores are spread so that the default threshold (0.6) sits where paraphrases
/// part from unrelated items that merely share words: raw overlaps of content words are
/// small numbers even for the same point made twice.
const SPREAD: f64 = 0.35;

pub(super) struct Corpus {
    items: Vec<Item>,
}

struct Item {
    /// (token id, weight), sorted by id.
    title: Vec<(u32, f64)>,
    title_mass: f64,
    /// (token id, weight) of title and rationale together, sorted by id.
    text: Vec<(u32, f64)>,
    text_mass: f64,
    /// The title's content words, for the character-level ratio.
    title_chars: Vec<char>,
    /// What kind of work the title asks for, when it names one.
    kind: Option<Kind>,
    /// Compound identifiers named anywhere: sorted, distinct.
    idents: Vec<u32>,
}

/// Token ids of one recommendation, before weighting.
struct Tokens {
    /// Sorted, distinct.
    title: Vec<u32>,
    /// Title and rationale: sorted, distinct.
    text: Vec<u32>,
    /// The compound identifiers among them: sorted, distinct.
    idents: Vec<u32>,
    title_chars: Vec<char>,
    kind: Option<Kind>,
}

/// Recommendations to write tests or docs are a different thing from fixing what those
/// tests or docs would be about, however many words they share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Test,
    Doc,
}

impl Kind {
    fn of(title_words: &[String]) -> Option<Kind> {
        title_words.iter().find_map(|w| match w.as_str() {
            "test" | "fuzz" | "fuzzing" | "fuzzer" | "benchmark" | "benchmarks" => Some(Kind::Test),
            "doc" | "readme" | "comment" | "comments" | "changelog" => Some(Kind::Doc),
            _ => None,
        })
    }
}

impl Corpus {
    /// Prepares `(title, rationale)` pairs; items are then named by their index.
    pub fn new(texts: &[(&str, &str)]) -> Corpus {
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut intern = |token: String| -> u32 {
            let next = ids.len() as u32;
            *ids.entry(token).or_insert(next)
        };
        let mut raw: Vec<Tokens> = Vec::with_capacity(texts.len());
        for (title, rationale) in texts {
            let title_words = content_words(title);
            let kind = Kind::of(&title_words);
            // Bounded, so the quadratic worst case of the diff stays small whatever the input.
            let title_chars: Vec<char> = title_words
                .join(" ")
                .chars()
                .take(super::MAX_TITLE_CHARS)
                .collect();
            let mut title_ids: Vec<u32> = title_words.iter().map(|w| intern(stem(w))).collect();
            let mut idents: Vec<u32> = identifiers(title).into_iter().map(&mut intern).collect();
            title_ids.extend_from_slice(&idents);
            let mut text_ids: Vec<u32> = content_words(rationale)
                .iter()
                .map(|w| intern(stem(w)))
                .collect();
            idents.extend(identifiers(rationale).into_iter().map(&mut intern));
            text_ids.extend_from_slice(&idents);
            idents.sort_unstable();
            idents.dedup();
            text_ids.extend_from_slice(&title_ids);
            title_ids.sort_unstable();
            title_ids.dedup();
            text_ids.sort_unstable();
            text_ids.dedup();
            raw.push(Tokens {
                title: title_ids,
                text: text_ids,
                idents,
                title_chars,
                kind,
            });
        }
        let mut df = vec![0u32; ids.len()];
        for tokens in &raw {
            for &t in &tokens.text {
                df[t as usize] += 1;
            }
        }
        let n = raw.len().max(1) as f64;
        let mut idf: Vec<f64> = df
            .iter()
            .map(|&d| (1.0 + n / f64::from(d.max(1))).ln().powf(IDF_POWER))
            .collect();
        let generic: BTreeSet<String> = GENERIC_WORDS
            .iter()
            .flat_map(|w| content_words(w))
            .map(|w| stem(&w))
            .collect();
        for token in &generic {
            if let Some(&id) = ids.get(token) {
                idf[id as usize] *= GENERIC_WEIGHT;
            }
        }
        let items = raw
            .into_iter()
            .map(|tokens| {
                let title: Vec<(u32, f64)> =
                    tokens.title.iter().map(|&t| (t, idf[t as usize])).collect();
                let text: Vec<(u32, f64)> = tokens
                    .text
                    .iter()
                    .map(|&t| {
                        let boost = if tokens.title.binary_search(&t).is_ok() {
                            TITLE_BOOST
                        } else {
                            1.0
                        };
                        (t, idf[t as usize] * boost)
                    })
                    .collect();
                Item {
                    title_mass: title.iter().map(|(_, w)| w).sum(),
                    text_mass: text.iter().map(|(_, w)| w).sum(),
                    title,
                    text,
                    title_chars: tokens.title_chars,
                    kind: tokens.kind,
                    idents: tokens.idents,
                }
            })
            .collect();
        Corpus { items }
    }

    /// The highest score the pair could reach, without the costly character diff.
    pub fn upper_bound(&self, a: usize, b: usize) -> f64 {
        self.combine(a, b, 1.0)
    }

    /// The similarity of items `a` and `b`, in [0, 1].
    pub fn score(&self, a: usize, b: usize) -> f64 {
        let chars = char_ratio(&self.items[a].title_chars, &self.items[b].title_chars);
        self.combine(a, b, chars)
    }

    fn combine(&self, a: usize, b: usize, title_chars: f64) -> f64 {
        let (x, y) = (&self.items[a], &self.items[b]);
        let title = dice(&x.title, x.title_mass, &y.title, y.title_mass);
        let shared = shared_mass(&x.text, &y.text);
        let text = blend(shared, x.text_mass, y.text_mass);
        let mut raw = W_TITLE_TOKENS * title + W_TITLE_CHARS * title_chars + W_TEXT * text;
        if x.kind != y.kind {
            raw *= KIND_MISMATCH;
        }
        if !x.idents.is_empty() && !y.idents.is_empty() && !shares_any(&x.idents, &y.idents) {
            raw *= IDENT_MISMATCH;
        }
        spread(raw)
    }
}

/// Maps a raw score to the reported one: monotone, 0 → 0, 1 → 1.
fn spread(raw: f64) -> f64 {
    raw.clamp(0.0, 1.0).powf(SPREAD)
}

fn shares_any(x: &[u32], y: &[u32]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

fn shared_mass(x: &[(u32, f64)], y: &[(u32, f64)]) -> f64 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < x.len() && j < y.len() {
        match x[i].0.cmp(&y[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += x[i].1.min(y[j].1);
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

fn dice(x: &[(u32, f64)], mx: f64, y: &[(u32, f64)], my: f64) -> f64 {
    if mx + my <= 0.0 {
        return 0.0;
    }
    2.0 * shared_mass(x, y) / (mx + my)
}

/// Half Dice, half overlap coefficient (shared mass over the smaller side).
fn blend(shared: f64, mx: f64, my: f64) -> f64 {
    if mx <= 0.0 || my <= 0.0 {
        return 0.0;
    }
    let dice = 2.0 * shared / (mx + my);
    let overlap = shared / mx.min(my);
    (dice + overlap) / 2.0
}

fn char_ratio(a: &[char], b: &[char]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, a, b);
    f64::from(similar::get_diff_ratio(&ops, a.len(), b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_bounded_and_symmetric_enough() {
        let corpus = Corpus::new(&[
            (
                "Add tests for the lexer",
                "The lexer has no tests for escapes.",
            ),
            (
                "Lexer lacks unit tests",
                "src/lexer.rs has zero tests; escapes hide bugs.",
            ),
            ("Fuzz the parser", "A fuzz target would catch panics."),
            ("", ""),
        ]);
        for a in 0..4 {
            for b in 0..4 {
                let s = corpus.score(a, b);
                assert!((0.0..=1.0).contains(&s), "{a} {b} {s}");
                assert!(s <= corpus.upper_bound(a, b) + 1e-12);
            }
        }
        assert!(corpus.score(0, 1) > corpus.score(0, 2));
        assert_eq!(corpus.score(3, 3), 0.0);
    }
}
