//! Config lookups beyond one string: multi-valued keys and the subsections of a section,
//! for the `orch.agent.<profile>.*` keys of launch profiles.

use super::Repo;

impl Repo {
    /// Every value of a multi-valued key (`git config --add`), in the order git lists
    /// them; empty when the key is unset.
    pub fn config_strings(&self, key: &str) -> Vec<String> {
        self.gix()
            .config_snapshot()
            .plumbing()
            .strings(key)
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.to_string())
            .collect()
    }

    /// The names after `prefix` of the subsections of `section` that start with it, e.g.
    /// `claude` for `[orch "agent.claude"]` with `("orch", "agent.")`; sorted, unique.
    pub fn config_subsections(&self, section: &str, prefix: &str) -> Vec<String> {
        let snapshot = self.gix().config_snapshot();
        let mut names: Vec<String> = snapshot
            .plumbing()
            .sections_by_name(section)
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let name = s.header().subsection_name()?.to_string();
                name.strip_prefix(prefix).map(str::to_owned)
            })
            .filter(|name| !name.is_empty())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
