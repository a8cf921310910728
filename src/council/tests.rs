//! Golden fixtures (`fixtures/council/<case>/`), determinism, the review marker and the
//! report. The shape check of a review has its tests in `validate.rs`.

use super::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/council")
}

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures/council exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// A case's input: every reviewer of `expected.json`; one without a file did not respond.
fn load_case(dir: &Path) -> (TallyInput, Value) {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let results = expected["reviewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| {
            let name = name.as_str().unwrap();
            let path = dir.join(format!("{name}.json"));
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    let recs = validate_review(&value)
                        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
                    ReviewerResult::responded(name, recs)
                }
                Err(_) => ReviewerResult::missing(name),
            }
        })
        .collect();
    let input = TallyInput {
        council: dir.file_name().unwrap().to_string_lossy().into_owned(),
        topic: expected["topic"].as_str().unwrap().to_owned(),
        results,
        threshold: DEFAULT_THRESHOLD,
    };
    (input, expected)
}

type Grouping = BTreeSet<(String, BTreeMap<String, String>)>;

fn grouping_of(tally: &Tally) -> Grouping {
    tally
        .groups
        .iter()
        .map(|g| {
            (
                g.level.as_str().to_owned(),
                g.members
                    .iter()
                    .map(|m| (m.reviewer.clone(), m.title.clone()))
                    .collect(),
            )
        })
        .collect()
}

fn members_of(group: &Value) -> BTreeMap<String, String> {
    group["members"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(r, t)| (r.clone(), t.as_str().unwrap().to_owned()))
        .collect()
}

/// The grouping a careful reader makes, as `expected.json` says.
fn expected_grouping(expected: &Value) -> Grouping {
    expected["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["level"].as_str().unwrap().to_owned(), members_of(g)))
        .collect()
}

/// What the tally is expected to produce: the careful grouping, except that a group
/// marked `known_miss` (a paraphrase too far for word overlap) comes out as singletons.
/// Should the tally learn to form it, this test fails and the mark can go.
fn tally_grouping(expected: &Value) -> Grouping {
    let responded = expected["responded"].as_array().unwrap().len();
    let single = Level::of(1, responded).as_str().to_owned();
    let mut out = Grouping::new();
    for g in expected["groups"].as_array().unwrap() {
        let members = members_of(g);
        if g.get("known_miss").is_some() {
            for (r, t) in members {
                out.insert((single.clone(), BTreeMap::from([(r, t)])));
            }
        } else {
            out.insert((g["level"].as_str().unwrap().to_owned(), members));
        }
    }
    out
}

#[test]
fn golden_cases_group_as_a_careful_reader_would() {
    let cases = cases();
    assert!(cases.len() >= 4, "at least four golden cases");
    let mut failures = Vec::new();
    for dir in &cases {
        let (input, expected) = load_case(dir);
        let tally = tally(&input);
        assert_eq!(
            json!(tally.responded),
            expected["responded"],
            "{}",
            dir.display()
        );
        let got = grouping_of(&tally);
        let want = tally_grouping(&expected);
        if got != want {
            failures.push(format!(
                "{}:\n  missing: {:#?}\n  unexpected: {:#?}",
                dir.display(),
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(&want).collect::<Vec<_>>()
            ));
        }
        // Every recommendation is in exactly one group.
        let responded_items: usize = input
            .results
            .iter()
            .filter_map(|r| r.recommendations.as_ref())
            .map(Vec::len)
            .sum();
        let grouped: usize = tally.groups.iter().map(|g| g.members.len()).sum();
        assert_eq!(grouped, responded_items, "{}", dir.display());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The fixtures themselves: every recommendation in exactly one expected group, levels
/// consistent with the number of reviewers that responded, one member per reviewer.
#[test]
fn golden_cases_are_consistent() {
    for dir in cases() {
        let (input, expected) = load_case(&dir);
        let responded = expected["responded"].as_array().unwrap().len();
        let mut titles: Vec<(String, String)> = input
            .results
            .iter()
            .flat_map(|r| {
                r.recommendations
                    .iter()
                    .flatten()
                    .map(move |rec| (r.reviewer.clone(), rec.title.clone()))
            })
            .collect();
        titles.sort();
        let mut grouped: Vec<(String, String)> = expected_grouping(&expected)
            .into_iter()
            .flat_map(|(level, members)| {
                assert_eq!(
                    level,
                    Level::of(members.len(), responded).as_str(),
                    "{}: {members:?}",
                    dir.display()
                );
                members.into_iter()
            })
            .collect();
        grouped.sort();
        assert_eq!(grouped, titles, "{}", dir.display());
        assert!(titles.len() >= 10, "{}: 10+ recommendations", dir.display());
    }
}

#[test]
fn golden_cases_are_ordered_by_support_priority_title() {
    for dir in cases() {
        let (input, _) = load_case(&dir);
        let tally = tally(&input);
        for pair in tally.groups.windows(2) {
            let key = |g: &Group| {
                (
                    std::cmp::Reverse(g.support),
                    g.priority,
                    g.title.to_lowercase(),
                )
            };
            assert!(
                key(&pair[0]) <= key(&pair[1]),
                "{}: {:?}",
                dir.display(),
                pair
            );
        }
        for g in &tally.groups {
            assert_eq!(g.support, g.members.len());
            assert!(g.members.windows(2).all(|m| m[0].reviewer < m[1].reviewer));
            assert_eq!(Some(g.priority), g.members.iter().map(|m| m.priority).min());
            assert!(g.members.iter().any(|m| m.title == g.title));
        }
    }
}

/// Every permutation of the reviewers' order gives byte-identical JSON and markdown.
#[test]
fn tally_does_not_depend_on_the_order_reviewers_finished() {
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for i in 0..=p.len() {
                let mut q = p.clone();
                q.insert(i, n - 1);
                out.push(q);
            }
        }
        out
    }
    for dir in cases() {
        let (input, _) = load_case(&dir);
        let first = serde_json::to_string(&tally(&input)).unwrap();
        let first_md = report(&tally(&input));
        for order in permutations(input.results.len()) {
            let mut shuffled = input.clone();
            shuffled.results = order.iter().map(|&i| input.results[i].clone()).collect();
            let t = tally(&shuffled);
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                first,
                "{}",
                dir.display()
            );
            assert_eq!(report(&t), first_md);
        }
    }
}

#[test]
fn tally_serializes_as_the_spec_shows() {
    let input = TallyInput {
        council: "c1".into(),
        topic: "Review the lexer".into(),
        results: vec![
            ReviewerResult::responded(
                "reviewer-2",
                vec![Recommendation {
                    title: "Add tests for the lexer".into(),
                    rationale: "No tests cover string escapes.".into(),
                    priority: Priority::Medium,
                }],
            ),
            ReviewerResult::responded(
                "reviewer-1",
                vec![Recommendation {
                    title: "Lexer lacks unit tests".into(),
                    rationale: "String escapes are untested.".into(),
                    priority: Priority::High,
                }],
            ),
            ReviewerResult::missing("reviewer-3"),
        ],
        threshold: DEFAULT_THRESHOLD,
    };
    let value = serde_json::to_value(tally(&input)).unwrap();
    assert_eq!(
        value,
        json!({
            "council": "c1", "topic": "Review the lexer",
            "reviewers": ["reviewer-1", "reviewer-2", "reviewer-3"],
            "responded": ["reviewer-1", "reviewer-2"],
            "groups": [{
                "level": "consensus", "support": 2, "title": "Lexer lacks unit tests", "priority": "high",
                "members": [
                    {"reviewer": "reviewer-1", "title": "Lexer lacks unit tests",
                     "rationale": "String escapes are untested.", "priority": "high"},
                    {"reviewer": "reviewer-2", "title": "Add tests for the lexer",
                     "rationale": "No tests cover string escapes.", "priority": "medium"}
                ]
            }]
        })
    );
    let back: Tally = serde_json::from_value(value).unwrap();
    assert_eq!(back, tally(&input));
}

#[test]
fn levels_count_only_reviewers_that_responded() {
    assert_eq!(Level::of(3, 3), Level::Consensus);
    assert_eq!(Level::of(2, 3), Level::Majority);
    assert_eq!(Level::of(1, 3), Level::Minority);
    assert_eq!(Level::of(2, 2), Level::Consensus);
    assert_eq!(Level::of(1, 2), Level::Minority);
    assert_eq!(Level::of(3, 5), Level::Majority);
    assert_eq!(Level::of(2, 4), Level::Minority);
    assert_eq!(Level::of(1, 1), Level::Consensus);
}

#[test]
fn tally_of_nobody_is_empty() {
    let input = TallyInput {
        council: "c".into(),
        topic: "t".into(),
        results: vec![ReviewerResult::missing("a"), ReviewerResult::missing("b")],
        threshold: DEFAULT_THRESHOLD,
    };
    let t = tally(&input);
    assert!(t.groups.is_empty());
    assert!(t.responded.is_empty());
    assert_eq!(t.reviewers, ["a", "b"]);
    let md = report(&t);
    assert!(md.contains("Responded: 0 of 2"), "{md}");
    assert!(md.contains("## Consensus (0)\n\n_None._"), "{md}");
}

#[test]
fn one_reviewer_never_backs_a_group_twice() {
    let rec = |title: &str| Recommendation {
        title: title.into(),
        rationale: "Same words everywhere.".into(),
        priority: Priority::Low,
    };
    let input = TallyInput {
        council: "c".into(),
        topic: "t".into(),
        results: vec![
            ReviewerResult::responded("a", vec![rec("Fix the cache"), rec("Fix the cache")]),
            ReviewerResult::responded("b", vec![rec("Fix the cache")]),
        ],
        threshold: 0.0,
    };
    let t = tally(&input);
    assert_eq!(t.groups.len(), 2);
    for g in &t.groups {
        let reviewers: BTreeSet<&str> = g.members.iter().map(|m| m.reviewer.as_str()).collect();
        assert_eq!(reviewers.len(), g.members.len());
    }
}

#[test]
fn a_higher_threshold_never_joins_more() {
    for dir in cases() {
        let (mut input, _) = load_case(&dir);
        let mut last = usize::MAX;
        for threshold in [0.3, 0.5, 0.6, 0.8, 1.0] {
            input.threshold = threshold;
            let t = tally(&input);
            let joined: usize = t.groups.iter().map(|g| g.support).sum::<usize>() - t.groups.len();
            assert!(joined <= last, "{} at {threshold}", dir.display());
            last = joined;
        }
    }
}

#[test]
fn thresholds_are_checked() {
    assert_eq!(parse_threshold("0.6").unwrap(), 0.6);
    assert_eq!(parse_threshold(" 1 ").unwrap(), 1.0);
    for bad in ["1.5", "-0.1", "NaN", "inf", "six", ""] {
        let err = parse_threshold(bad).unwrap_err();
        assert_eq!(err.code, crate::error::Code::InvalidInput, "{bad}");
        assert!(err.hint.is_some());
    }
}

#[test]
fn review_threads_are_marked_by_council_in_data() {
    let bad = json!({"ok": true});
    assert!(check_result(&json!({"council": "c1"}), &bad).is_err());
    assert!(check_result(&json!({"council": "c1"}), &Value::Null).is_err());
    assert!(check_result(&json!({"run": "r1"}), &bad).is_ok());
    assert!(check_result(&json!({"council": null}), &bad).is_ok());
    assert!(check_result(&Value::Null, &bad).is_ok());
    assert!(check_result(&json!({"council": "c1"}), &json!({"recommendations": []})).is_ok());
}

#[test]
fn report_reads_well() {
    let dir = fixtures().join("failed-reviewer");
    let (input, _) = load_case(&dir);
    let t = tally(&input);
    let md = report(&t);
    assert!(md.starts_with(
        "# Council failed-reviewer: Review the dashboard PR: the charts page and its data fetching hooks\n"
    ));
    assert!(
        md.contains("- Responded: 2 of 3 (reviewer-1, reviewer-3)\n"),
        "{md}"
    );
    assert!(
        md.contains("- No result from: reviewer-2 (not counted)\n"),
        "{md}"
    );
    let count = |level| t.groups.iter().filter(|g| g.level == level).count();
    assert!(
        md.contains(&format!("## Consensus ({})\n", count(Level::Consensus))),
        "{md}"
    );
    assert!(md.contains("## Majority (0)\n\n_None._\n"), "{md}");
    assert!(
        md.contains(&format!("## Minority ({})\n", count(Level::Minority))),
        "{md}"
    );
    let consensus = md.find("## Consensus").unwrap();
    let majority = md.find("## Majority").unwrap();
    let minority = md.find("## Minority").unwrap();
    assert!(consensus < majority && majority < minority);
    // Groups are numbered in tally order, each with its priority and supporters.
    for (i, g) in t.groups.iter().enumerate() {
        let heading = format!("### {}. {}\n", i + 1, g.title);
        let at = md
            .find(&heading)
            .unwrap_or_else(|| panic!("{heading} in {md}"));
        let section = match g.level {
            Level::Consensus => consensus..majority,
            Level::Majority => majority..minority,
            Level::Minority => minority..md.len(),
        };
        assert!(section.contains(&at), "{heading}");
        let who: Vec<&str> = g.members.iter().map(|m| m.reviewer.as_str()).collect();
        assert!(md[at..].contains(&format!("Priority **{}** · raised by", g.priority.as_str())));
        assert!(md[at..].contains(&who.join(", ")));
    }
    // Every rationale appears, attributed; a member's own title shows when it differs.
    for g in &t.groups {
        for m in &g.members {
            let line = if m.title == g.title {
                format!(
                    "- **{}** ({}): {}\n",
                    m.reviewer,
                    m.priority.as_str(),
                    m.rationale
                )
            } else {
                format!(
                    "- **{}** ({}) — _{}_: {}\n",
                    m.reviewer,
                    m.priority.as_str(),
                    m.title,
                    m.rationale
                )
            };
            assert!(md.contains(&line), "{line} in {md}");
        }
    }
}

#[test]
fn report_keeps_multiline_rationales_inside_their_item() {
    let input = TallyInput {
        council: "c".into(),
        topic: "two\nlines".into(),
        results: vec![ReviewerResult::responded(
            "a",
            vec![Recommendation {
                title: "Title".into(),
                rationale: "first line\nsecond line\n\n- not a new item".into(),
                priority: Priority::Medium,
            }],
        )],
        threshold: DEFAULT_THRESHOLD,
    };
    let md = report(&tally(&input));
    assert!(md.starts_with("# Council c: two lines\n"), "{md}");
    assert!(
        md.contains("- **a** (medium): first line\n  second line\n\n  - not a new item\n"),
        "{md}"
    );
}

/// Odd text never panics and still gives a well-formed, deterministic tally.
#[test]
fn odd_text_is_handled() {
    let odd = [
        "",
        "   ",
        "the of and",
        "é",
        "ÉCOLE_Straße::größe naïve café",
        "🦀🦀🦀 unsafe { *ptr } 🦀",
        "a_b_c_d_e_f",
        "XMLHttpRequest HTTPServer2 i/o I/O /o i/",
        "'quoted' ‘curly’ don't rock'n'roll '",
        "ssssssssssssssss sss ss s ies ied ing ers",
        "\u{0}\u{7f}\t\n control",
    ];
    let long = "word ".repeat(2000);
    let mut recs: Vec<Recommendation> = odd
        .iter()
        .map(|t| Recommendation {
            title: (*t).to_owned(),
            rationale: (*t).to_owned(),
            priority: Priority::Medium,
        })
        .collect();
    recs.push(Recommendation {
        title: long.clone(),
        rationale: long,
        priority: Priority::High,
    });
    for threshold in [0.0, DEFAULT_THRESHOLD, 1.0, f64::NAN] {
        let input = TallyInput {
            council: "c".into(),
            topic: "t".into(),
            results: vec![
                ReviewerResult::responded("a", recs.clone()),
                ReviewerResult::responded("b", recs.iter().rev().cloned().collect()),
            ],
            threshold,
        };
        let t = tally(&input);
        let grouped: usize = t.groups.iter().map(|g| g.members.len()).sum();
        assert_eq!(grouped, 2 * recs.len(), "{threshold}");
        assert!(t.groups.iter().all(|g| g.support <= 2));
        let again = tally(&input);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            serde_json::to_string(&again).unwrap()
        );
        let _ = report(&t);
    }
}
