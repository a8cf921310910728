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
    ConfigKey {
        key: "orch.launch",
        default: "none",
        meaning: "the agent profile a launch uses when the task names none and no `--launch P` is given",
    },
    ConfigKey {
        key: "orch.parallel",
        default: "4",
        meaning: "how many tasks `git orch drive` keeps in flight when no `--parallel N` is given",
    },
    ConfigKey {
        key: "orch.setup",
        default: "none",
        meaning: "a command (argv, split like a shell splits words, never run by one) run in each new code worktree before its agent; failing fails the attempt retryably",
    },
    ConfigKey {
        key: "orch.agent.<profile>.preset",
        default: "the profile's name, when it names a preset",
        meaning: "`claude`, `codex`, `gemini`, `opencode`, `aider` or `script`: the built-in argv, prompt channel, output parser and success test",
    },
    ConfigKey {
        key: "orch.agent.<profile>.command",
        default: "the preset's argv",
        meaning: "the argv template; placeholders `{brief}`, `{brief_file}`, `{worktree}`, `{agent}`, `{model}`, `{common_dir}`, `{git_dir}`",
    },
    ConfigKey {
        key: "orch.agent.<profile>.env",
        default: "none",
        meaning: "`NAME=VALUE`, one per value (`git config --add`): extra environment for the agent",
    },
    ConfigKey {
        key: "orch.agent.<profile>.model",
        default: "the CLI's own default",
        meaning: "passed where the preset puts a model",
    },
    ConfigKey {
        key: "orch.agent.<profile>.protocol",
        default: "`inbox` (`exit` for `aider` and `script`)",
        meaning: "`inbox`: the agent runs `git inbox ask/wait-reply/done/fail` itself; `exit`: exit 0 with its work committed is done",
    },
    ConfigKey {
        key: "orch.agent.<profile>.inbox",
        default: "`shell`",
        meaning: "how an `inbox` agent reaches the inbox: `shell` (`git inbox` commands), `mcp` (the tools of the `git inbox mcp` server the preset hands it; the brief names the tools, and Claude Code's shell may not run `git inbox`) or `both`",
    },
    ConfigKey {
        key: "orch.agent.<profile>.timeout",
        default: "`2h`",
        meaning: "wall-clock limit; then SIGTERM to the agent's process group, SIGKILL 10 s later",
    },
    ConfigKey {
        key: "orch.agent.<profile>.stallAfter",
        default: "`15m`",
        meaning: "no commit, message or log output for this long marks the attempt stalled (nothing is killed)",
    },
    ConfigKey {
        key: "orch.land.check",
        default: "none",
        meaning: "the command `git orch land` runs in a temporary worktree at each merged candidate (argv, split like a shell splits words, never run by one); `--check` overrides it",
    },
    ConfigKey {
        key: "orch.land.checkTimeout",
        default: "`30m`",
        meaning: "how long the land check may run before its process group is killed and the task sent back",
    },
    ConfigKey {
        key: "orch.land.mode",
        default: "`merge`",
        meaning: "`merge` (a merge commit per landed task) or `ff-or-merge` (fast-forward when the target has not moved)",
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
        // Per-profile keys are built from a template (`orch.agent.{profile}.{name}`), so
        // source has no literal for them.
        let in_table: BTreeSet<String> = KEYS
            .iter()
            .map(|k| k.key.to_owned())
            .filter(|k| !k.contains('<'))
            .collect();
        assert_eq!(
            in_code, in_table,
            "src/config_keys.rs must list every \"orch.…\" key the code reads, and no other"
        );
    }
}
