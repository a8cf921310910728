//! Grouping the reviewers' recommendations (docs/council.md).
//!
//! Greedy and deterministic: every pair of recommendations from different reviewers that
//! scores at least the threshold is a candidate; candidates are taken best score first
//! (ties: the earlier reviewer by name, then the earlier recommendation); a candidate
//! joins the two groups holding its items when they have no reviewer in common and the
//! mean score over all pairs across them is still at least the threshold, so a chain of
//! pairwise resemblances cannot pull an unrelated item in.

use super::similarity::Corpus;
use super::{Group, Level, Member, Priority, Recommendation, ReviewerResult, Tally, TallyInput};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// One recommendation with the rank (in name order) of the reviewer who made it.
struct Item<'a> {
    reviewer: usize,
    rec: &'a Recommendation,
}

/// Groups the recommendations of the responding reviewers. Same input (in any order of
/// `results`) → the same tally, byte for byte once serialized.
pub fn tally(input: &TallyInput) -> Tally {
    let reviewers = merge_reviewers(&input.results);
    let names: Vec<String> = reviewers.keys().cloned().collect();
    let responded: Vec<(&String, &Vec<Recommendation>)> = reviewers
        .iter()
        .filter_map(|(name, recs)| recs.as_ref().map(|recs| (name, recs)))
        .collect();
    let items: Vec<Item<'_>> = responded
        .iter()
        .enumerate()
        .flat_map(|(rank, (_, recs))| {
            recs.iter().map(move |rec| Item {
                reviewer: rank,
                rec,
            })
        })
        .collect();
    let texts: Vec<(&str, &str)> = items
        .iter()
        .map(|item| (item.rec.title.as_str(), item.rec.rationale.as_str()))
        .collect();
    let mut scores = Scores {
        corpus: Corpus::new(&texts),
        cache: HashMap::new(),
    };
    let clusters = cluster(&items, &mut scores, input.threshold);
    let total = responded.len();
    let mut groups: Vec<Group> = clusters
        .iter()
        .map(|members| group(members, &items, &mut scores, &responded, total))
        .collect();
    groups.sort_by(compare_groups);
    Tally {
        council: input.council.clone(),
        topic: input.topic.clone(),
        reviewers: names,
        responded: responded.iter().map(|(name, _)| (*name).clone()).collect(),
        groups,
    }
}

/// Reviewers by name. A name given twice is one reviewer: its results are joined in a
/// fixed order, so even that input does not depend on the order of arrival.
fn merge_reviewers(results: &[ReviewerResult]) -> BTreeMap<String, Option<Vec<Recommendation>>> {
    let mut sorted: Vec<&ReviewerResult> = results.iter().collect();
    sorted.sort_by(|a, b| {
        a.reviewer
            .cmp(&b.reviewer)
            .then_with(|| a.recommendations.cmp(&b.recommendations))
    });
    let mut merged: BTreeMap<String, Option<Vec<Recommendation>>> = BTreeMap::new();
    for result in sorted {
        let entry = merged.entry(result.reviewer.clone()).or_insert(None);
        if let Some(recs) = &result.recommendations {
            entry
                .get_or_insert_with(Vec::new)
                .extend(recs.iter().cloned());
        }
    }
    merged
}

/// Pair scores, computed once each and always with the lower index first, so the
/// result never depends on which side asked.
struct Scores {
    corpus: Corpus,
    cache: HashMap<(usize, usize), f64>,
}

impl Scores {
    fn get(&mut self, a: usize, b: usize) -> f64 {
        let key = (a.min(b), a.max(b));
        if let Some(&s) = self.cache.get(&key) {
            return s;
        }
        let s = self.corpus.score(key.0, key.1);
        self.cache.insert(key, s);
        s
    }
}

/// Returns the groups as lists of item indices, each sorted.
fn cluster(items: &[Item<'_>], scores: &mut Scores, threshold: f64) -> Vec<Vec<usize>> {
    let mut candidates: Vec<(f64, usize, usize)> = Vec::new();
    for a in 0..items.len() {
        for b in a + 1..items.len() {
            if items[a].reviewer == items[b].reviewer || scores.corpus.upper_bound(a, b) < threshold
            {
                continue;
            }
            let s = scores.get(a, b);
            if s >= threshold {
                candidates.push((s, a, b));
            }
        }
    }
    candidates.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));

    let mut group_of: Vec<usize> = (0..items.len()).collect();
    let mut groups: Vec<Vec<usize>> = (0..items.len()).map(|i| vec![i]).collect();
    for (_, a, b) in candidates {
        let (ga, gb) = (group_of[a], group_of[b]);
        if ga == gb {
            continue;
        }
        let shares_reviewer = groups[ga].iter().any(|&x| {
            groups[gb]
                .iter()
                .any(|&y| items[x].reviewer == items[y].reviewer)
        });
        if shares_reviewer {
            continue;
        }
        let mut sum = 0.0;
        let mut pairs = 0usize;
        for &x in &groups[ga] {
            for &y in &groups[gb] {
                sum += scores.get(x, y);
                pairs += 1;
            }
        }
        if sum / (pairs as f64) < threshold {
            continue;
        }
        let (keep, gone) = (ga.min(gb), ga.max(gb));
        let moved = std::mem::take(&mut groups[gone]);
        for &x in &moved {
            group_of[x] = keep;
        }
        groups[keep].extend(moved);
        groups[keep].sort_unstable();
    }
    groups.retain(|g| !g.is_empty());
    groups
}

fn group(
    members: &[usize],
    items: &[Item<'_>],
    scores: &mut Scores,
    responded: &[(&String, &Vec<Recommendation>)],
    total: usize,
) -> Group {
    // The representative: most like the others, then the most urgent, then the first.
    let mut best = members[0];
    let mut best_key = (f64::NEG_INFINITY, Priority::Low);
    for &m in members {
        let closeness: f64 = members
            .iter()
            .filter(|&&o| o != m)
            .map(|&o| scores.get(m, o))
            .sum();
        let priority = items[m].rec.priority;
        let better = match closeness.total_cmp(&best_key.0) {
            Ordering::Greater => true,
            Ordering::Equal => priority < best_key.1,
            Ordering::Less => false,
        };
        if better {
            best = m;
            best_key = (closeness, priority);
        }
    }
    let priority = members
        .iter()
        .map(|&m| items[m].rec.priority)
        .min()
        .unwrap_or(Priority::Low);
    Group {
        level: Level::of(members.len(), total),
        support: members.len(),
        title: items[best].rec.title.clone(),
        priority,
        members: members
            .iter()
            .map(|&m| Member {
                reviewer: responded[items[m].reviewer].0.clone(),
                title: items[m].rec.title.clone(),
                rationale: items[m].rec.rationale.clone(),
                priority: items[m].rec.priority,
            })
            .collect(),
    }
}

/// Support first, then priority, then title; the members settle any remaining tie.
fn compare_groups(a: &Group, b: &Group) -> Ordering {
    b.support
        .cmp(&a.support)
        .then(a.priority.cmp(&b.priority))
        .then_with(|| a.title.to_lowercase().cmp(&b.title.to_lowercase()))
        .then_with(|| a.title.cmp(&b.title))
        .then_with(|| {
            let key = |g: &Group| {
                g.members
                    .iter()
                    .map(|m| {
                        (
                            m.reviewer.clone(),
                            m.title.clone(),
                            m.rationale.clone(),
                            m.priority,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            key(a).cmp(&key(b))
        })
}
