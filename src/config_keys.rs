//! Every git config key git-orch reads, with its default and meaning: the table the
//! reference prints. A test checks it against the keys the code names, both ways.

/// One `git config` key.
pub struct ConfigKey {
    pub key: &'static str,
    /// What applies when the key is unset.
    pub default: &'static str,
    pub meaning: &'static str,
}

pub const KEYS: &[ConfigKey] = &[
    ConfigKey {
        key: "orch.leader",
        default: "`leader`",
        meaning: "the agent name `git orch` commands act as; questions and cancels are open to it",
    },
    ConfigKey {
        key: "orch.worktreeRoot",
        default: "`<main worktree>.worktrees`, beside the main worktree",
        meaning: "where attempt worktrees go; a relative path is taken from the main worktree's parent",
    },
    ConfigKey {
        key: "orch.defaultLease",
        default: "`30m`",
        meaning: "the lease a claim gets when `--lease` is not given (a duration)",
    },
    ConfigKey {
        key: "orch.maxClaims",
        default: "`5`",
        meaning: "after this many lease expiries a thread fails with `lease_expired_too_often`",
    },
    ConfigKey {
        key: "orch.strictUntracked",
        default: "`false`",
        meaning: "when true, untracked files also make the main worktree dirty for dispatch",
    },
    ConfigKey {
        key: "orch.durability",
        default: "`full`",
        meaning: "`full` syncs every commit to disk; `normal` is faster but may lose the last commits on power loss",
    },
    ConfigKey {
        key: "orch.council.reviewers",
        default: "`reviewer-1,reviewer-2,reviewer-3`",
        meaning: "who `git orch council start` asks when `--reviewers` is not given",
    },
    ConfigKey {
        key: "orch.council.threshold",
        default: "`0.6`",
        meaning: "how similar two recommendations must be (0 to 1) to be grouped by the tally",
    },
];

#[cfg(test)]
mod tests {
    use super::KEYS;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// `"orch.…"` string literals in the library's source, test modules included (a test
    /// setting a key the table lacks is as telling as code reading one).
    fn keys_in_source(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                keys_in_source(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("config_keys.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split("\"orch.").skip(1) {
                    let key: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                        .collect();
                    if !key.is_empty() && !key.ends_with('.') && piece[key.len()..].starts_with('"')
                    {
                        found.insert(format!("orch.{key}"));
                    }
                }
            }
        }
    }

    #[test]
    fn the_table_names_exactly_the_keys_the_code_reads() {
        let mut in_code = BTreeSet::new();
        keys_in_source(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut in_code,
        );
        let in_table: BTreeSet<String> = KEYS.iter().map(|k| k.key.to_owned()).collect();
        assert_eq!(
            in_code, in_table,
            "src/config_keys.rs must list every \"orch.…\" key the code reads, and no other"
        );
    }
}
