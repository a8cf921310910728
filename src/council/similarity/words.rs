//! Words as the similarity score sees them: split on case and punctuation, stop words
//! dropped, code-review synonyms folded, lightly stemmed, and compound identifiers kept
//! whole. The score itself is the parent's.

/// Lowercase words of `text` without stop words, synonyms folded, before stemming.
pub(super) fn content_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = split_words(text);
    // "I/O" would otherwise fall apart into two letters that are dropped.
    for i in 1..words.len() {
        if words[i - 1] == "i" && words[i] == "o" {
            words[i - 1] = String::new();
            words[i] = "io".to_owned();
        }
    }
    for word in words.into_iter().filter(|w| !w.is_empty()) {
        match canonical(&word) {
            Some(forms) => out.extend(forms.iter().map(|f| (*f).to_owned())),
            None => {
                if !is_stop_word(&word) && (word.chars().count() >= 2) {
                    out.push(word)
                }
            }
        }
    }
    out
}

/// Compound identifiers (`load_config`, `useMetrics`, `OrderRepo`) as single tokens,
/// lowercased and joined with `_`, beside their parts: two recommendations naming the
/// same function are far more alike than two that share its words in prose. They contain
/// `_`, so they never meet a stemmed word.
pub(super) fn identifiers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() || c == '_' {
            run.push(c);
            continue;
        }
        let parts: Vec<String> = run
            .split('_')
            .flat_map(split_words)
            .filter(|p| !p.is_empty())
            .collect();
        if parts.len() > 1 {
            out.push(parts.join("_"));
        }
        run.clear();
    }
    out
}

/// Splits on anything that is not a letter or digit, and inside camelCase words;
/// apostrophes inside a word vanish ("don't" → "dont"). Lowercases the result.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && prev_lower && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = c.is_lowercase() || c.is_numeric();
            word.extend(c.to_lowercase());
        } else if (c == '\'' || c == '’')
            && !word.is_empty()
            && chars.peek().is_some_and(|n| n.is_alphanumeric())
        {
            // Part of the word: skip it.
        } else {
            prev_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Code-review words that mean the same thing, folded to one form (a few expand to two).
fn canonical(word: &str) -> Option<&'static [&'static str]> {
    Some(match word {
        "configuration" | "configurations" | "configure" | "configured" | "configuring"
        | "configurable" | "cfg" | "settings" => &["config"],
        "env" | "environment" | "environments" | "environmental" => &["env"],
        "docs" | "documentation" | "document" | "documented" | "documenting" | "doc" => &["doc"],
        "tests" | "testing" | "tested" | "test" | "unittest" | "unittests" | "coverage" => {
            &["test"]
        }
        "err" | "errors" | "error" => &["error"],
        "panic" | "panics" | "panicking" | "panicked" | "crash" | "crashes" | "crashing"
        | "crashed" | "unwrap" | "unwraps" | "unwrapping" => &["panic"],
        "db" | "database" | "databases" => &["db"],
        "dir" | "dirs" | "directory" | "directories" | "folder" | "folders" => &["dir"],
        "arg" | "args" | "argument" | "arguments" => &["arg"],
        "init" | "initialize" | "initialise" | "initialization" | "initialisation" => &["init"],
        "msg" | "msgs" | "message" | "messages" => &["message"],
        "auth" | "authentication" | "authorization" | "authn" | "authz" => &["auth"],
        "dep" | "deps" | "dependency" | "dependencies" => &["dep"],
        "eof" => &["end", "file"],
        "perf" | "performance" => &["perf"],
        "async" | "asynchronous" | "asynchronously" => &["async"],
        "concurrency" | "concurrent" | "concurrently" => &["concurrency"],
        "deadlock" | "deadlocks" => &["deadlock"],
        "repo" => &["repository"],
        // Concepts reviewers name in different words.
        "cancel" | "cancels" | "cancelled" | "canceled" | "cancelling" | "canceling"
        | "cancellation" | "abort" | "aborts" | "aborted" | "aborting" => &["cancel"],
        "jitter" | "random" | "randomize" | "randomise" | "randomized" | "randomised"
        | "randomness" => &["random"],
        "atomic" | "atomically" | "atomicity" | "transaction" | "transactions"
        | "transactional" => &["transaction"],
        "cache" | "caches" | "cached" | "caching" | "memo" | "memoize" | "memoise" | "memoized"
        | "memoised" | "memoization" | "memoisation" => &["cache"],
        "parameterize" | "parameterise" | "parameterized" | "parameterised" | "placeholder"
        | "placeholders" | "bind" | "parameter" | "parameters" | "param" | "params" => &["param"],
        "paginate" | "paginated" | "pagination" | "paging" | "paginating" => &["paginate"],
        "race" | "races" | "racy" | "racing" => &["race"],
        "secret" | "secrets" | "credential" | "credentials" | "password" | "passwords"
        | "apikey" => &["secret"],
        "timeout" | "timeouts" => &["timeout"],
        "mutex" | "mutexes" | "lock" | "locks" | "locking" | "locked" => &["lock"],
        "null" | "nil" | "none" => &["null"],
        "readme" => &["doc", "readme"],
        "impl" | "implementation" | "implement" | "implemented" => &["impl"],
        _ => return None,
    })
}

/// Kept sorted for the binary search.
const STOP_WORDS: &[&str] = &[
    "about",
    "add",
    "added",
    "adding",
    "after",
    "again",
    "all",
    "already",
    "also",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "code",
    "consider",
    "could",
    "did",
    "do",
    "does",
    "doesnt",
    "doing",
    "done",
    "dont",
    "each",
    "eg",
    "else",
    "etc",
    "even",
    "every",
    "fn",
    "for",
    "from",
    "func",
    "function",
    "functions",
    "get",
    "gets",
    "had",
    "has",
    "have",
    "having",
    "he",
    "here",
    "how",
    "ie",
    "if",
    "in",
    "instead",
    "into",
    "is",
    "isnt",
    "it",
    "its",
    "just",
    "like",
    "make",
    "makes",
    "may",
    "maybe",
    "method",
    "methods",
    "might",
    "more",
    "most",
    "must",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "on",
    "once",
    "one",
    "only",
    "onto",
    "or",
    "other",
    "our",
    "out",
    "over",
    "own",
    "per",
    "please",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "to",
    "too",
    "under",
    "up",
    "us",
    "use",
    "used",
    "uses",
    "using",
    "very",
    "via",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "why",
    "will",
    "with",
    "would",
    "yet",
    "you",
    "your",
];

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// A light suffix stripper: enough that `parse`, `parser`, `parsing` and `parses` meet,
/// cheap, and the same on both sides of a comparison (which is all that matters here).
pub(super) fn stem(word: &str) -> String {
    // Derivational and inflectional endings, longest first; plurals go before these.
    const SUFFIXES: &[(&str, &str)] = &[
        ("ization", ""),
        ("isation", ""),
        ("ation", "at"),
        ("ment", ""),
        ("ness", ""),
        ("able", ""),
        ("ible", ""),
        ("ing", ""),
        ("ion", ""),
        ("ize", ""),
        ("ise", ""),
        ("ied", "y"),
        ("er", ""),
        ("ed", ""),
        ("ly", ""),
    ];
    const MIN_STEM: usize = 3;
    const MAX_STEM: usize = 6;
    if !word.is_ascii() || word.len() <= MIN_STEM {
        return word.chars().take(MAX_STEM * 2).collect();
    }
    let mut stem = word.to_owned();
    if let Some(base) = stem.strip_suffix("ies") {
        stem = format!("{base}y");
    } else if stem.ends_with('s') && !stem.ends_with("ss") {
        stem.pop();
    }
    if let Some((suffix, replacement)) = SUFFIXES
        .iter()
        .find(|(suffix, _)| stem.len() >= suffix.len() + MIN_STEM && stem.ends_with(suffix))
    {
        stem.truncate(stem.len() - suffix.len());
        stem.push_str(replacement);
        let bytes = stem.as_bytes();
        let n = bytes.len();
        if n > MIN_STEM
            && bytes[n - 1] == bytes[n - 2]
            && !matches!(
                bytes[n - 1],
                b'a' | b'e' | b'i' | b'o' | b'u' | b'l' | b's' | b'z'
            )
        {
            stem.pop();
        }
    }
    if stem.len() > MIN_STEM && stem.ends_with('e') {
        stem.pop();
    }
    stem.truncate(MAX_STEM);
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_meet_across_word_forms() {
        for group in [
            &["parse", "parser", "parsing", "parses", "parsers"][..],
            &["validate", "validation", "validating", "validated"],
            &["cache", "caching", "cached", "caches"],
            &["paginate", "pagination", "paginated"],
            &["query", "queries"],
            &["log", "logs", "logging", "logged"],
            &["randomize", "random"],
            &["retry", "retries", "retrying"],
            &["parameter", "parameters", "parameterize"],
        ] {
            let stems: Vec<String> = group.iter().map(|w| stem(w)).collect();
            assert!(
                stems.windows(2).all(|w| w[0] == w[1]),
                "{group:?} → {stems:?}"
            );
        }
        assert_ne!(stem("lexer"), stem("parser"));
        assert_eq!(stem("class"), "class");
    }

    #[test]
    fn words_split_on_case_and_punctuation() {
        assert_eq!(
            split_words("Don't unwrap in `load_config`; useMetrics/RangePicker!"),
            ["dont", "unwrap", "in", "load", "config", "use", "metrics", "range", "picker"]
        );
        assert_eq!(
            identifiers("Don't unwrap in `load_config`; useMetrics/RangePicker, p.active!"),
            ["load_config", "use_metrics", "range_picker"]
        );
        assert_eq!(
            content_words("Handle the unexpected EOF in the parser"),
            ["handle", "unexpected", "end", "file", "parser"]
        );
    }

    #[test]
    fn stop_words_are_sorted() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_stop_word("the") && !is_stop_word("parser"));
    }
}
