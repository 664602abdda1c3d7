//! How a trace's events read on the terminal (`bftsim reproduce`, and the replay of a model
//! counterexample): one line per event, the rounds of each session, and Rust Debug forms in
//! event details rewritten as words.

use std::collections::BTreeMap;

use sim::trace::TraceEvent;

use super::out::outln;

/// The longest event detail printed; longer ones end at a word boundary with "…".
pub(super) const DETAIL_CHARS: usize = 110;

/// One event as a line: time, step, kind, who (`a3 → a1` for messages, the client as
/// `client`), session and a readable detail.
pub(super) fn event_line(e: &TraceEvent) -> String {
    let name = |a: Option<u32>| a.map_or_else(|| "client".to_owned(), |a| format!("a{a}"));
    let who = match e.kind.as_str() {
        // deliver: `agent` received from `peer`; send, drop, hold: `agent` sent to `peer`.
        "deliver" => format!("{} → {}", name(e.peer), name(e.agent)),
        "send" | "drop" | "hold" => format!("{} → {}", name(e.agent), name(e.peer)),
        "evidence" => format!("{} vs {}", name(e.agent), name(e.peer)),
        "reject" => format!("{} ✗ {}", name(e.agent), name(e.peer)),
        _ => e.agent.map_or_else(|| "-".to_owned(), |a| format!("a{a}")),
    };
    let session = e.session.map_or_else(String::new, |s| format!("s{s}"));
    let detail = match e.kind.as_str() {
        "timeout" => format!("{} timer", humanize(&e.detail)),
        _ => humanize(&e.detail),
    };
    format!(
        "{:>8} ms  #{:<6} {:<8} {:<16} {:<4} {}",
        e.time_ms,
        e.step,
        e.kind,
        who,
        session,
        clip(&detail, DETAIL_CHARS)
    )
}

/// What one session did, from its events.
#[derive(Default)]
struct SessionRounds {
    opened_ms: Option<u64>,
    max_round: Option<u64>,
    /// (time, agent, decided candidate or None, honest), in trace order.
    decisions: Vec<(u64, u32, Option<u32>, bool)>,
}

/// The summary of rounds per session: rounds reached and who decided what, when.
pub(super) fn print_sessions(trace: &[TraceEvent], only: &[u64]) {
    let mut sessions: BTreeMap<u64, SessionRounds> = BTreeMap::new();
    for e in trace {
        let Some(s) = e.session.filter(|s| only.is_empty() || only.contains(s)) else { continue };
        let entry = sessions.entry(s).or_default();
        match e.kind.as_str() {
            "open" => entry.opened_ms = entry.opened_ms.or(Some(e.time_ms)),
            "decide" => {
                entry.decisions.push((e.time_ms, e.agent.unwrap_or(u32::MAX), e.value, e.honest != Some(false)))
            }
            _ => {}
        }
        if let Some(round) = round_of(&e.detail) {
            entry.max_round = Some(entry.max_round.map_or(round, |r| r.max(round)));
        }
    }
    if sessions.is_empty() {
        return;
    }
    outln!("\nsessions (rounds reached; decisions as agent@ms, * = Byzantine):");
    for (s, r) in &sessions {
        let opened = r.opened_ms.map_or_else(|| "not opened".to_owned(), |t| format!("opened {t} ms"));
        let rounds = r.max_round.map_or_else(|| "no round".to_owned(), |m| format!("max round {m}"));
        let mut by_value: BTreeMap<Option<u32>, Vec<String>> = BTreeMap::new();
        for (time, agent, value, honest) in &r.decisions {
            let mark = if *honest { "" } else { "*" };
            by_value.entry(*value).or_default().push(format!("a{agent}{mark}@{time}"));
        }
        let decided: Vec<String> = by_value
            .iter()
            .map(|(value, who)| {
                let what = value.map_or_else(|| "no candidate".to_owned(), |v| format!("candidate-{v}"));
                format!("{what}: {}", who.join(" "))
            })
            .collect();
        let decided = if decided.is_empty() { "undecided".to_owned() } else { decided.join("; ") };
        outln!("  s{s:<4} {opened:<16} {rounds:<12} {decided}");
    }
}

/// The round an event detail names (`round 3`, `round Some(3)`), if any.
fn round_of(detail: &str) -> Option<u64> {
    let rest = &detail[detail.find("round ")? + "round ".len()..];
    let rest = rest.strip_prefix("Some(").unwrap_or(rest);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Rewrites the Rust debug forms event details carry into plain text: `CandidateId(2)` →
/// `candidate-2`, `AgentId(1)` → `a1`, `agent-1` → `a1`, `Ppm(1000000)` → `100%`,
/// `Some("05f61e312cd7097b")` → `value 05f61e31…`, `None` → `nil`, `Decided { chosen: …,
/// method: Threshold, agreement: …, byzantine: [] }` → `candidate-2 by threshold (agreement
/// 100%)`, and a long `Variant { … }` (evidence, rejections) to its variant name in words.
pub(super) fn humanize(detail: &str) -> String {
    let mut text = detail.to_owned();
    if let Some(brace) = text.find(" { ") {
        // A large debug struct (evidence, rejections): its variant name says what it is.
        let head = &text[..brace];
        if text.len() > DETAIL_CHARS && head != "Decided" && head.chars().all(char::is_alphanumeric) {
            text = words(head);
        }
    }
    // A leading CamelCase name (`BadSignature`, `VoteCollection round 0`) reads as words.
    let head_len = text.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(text.len());
    if text[..head_len].chars().filter(char::is_ascii_uppercase).count() >= 2 {
        let head = words(&text[..head_len]);
        text.replace_range(..head_len, &head);
    }
    let mut from = 0;
    while let Some(start) = text[from..].find("Decided { chosen: ").map(|i| from + i) {
        let Some(len) = text[start..].find(" }") else { break };
        let inner = text[start + "Decided { ".len()..start + len].to_owned();
        let field =
            |name: &str| inner.split(", ").find_map(|f| f.strip_prefix(name)).map(str::to_owned).unwrap_or_default();
        let flagged = field("byzantine: ");
        let flagged =
            if flagged == "[]" || flagged.is_empty() { String::new() } else { format!(", flagged {flagged}") };
        let replacement = format!(
            "{} by {} (agreement {}{flagged})",
            field("chosen: "),
            words(&field("method: ")),
            field("agreement: ")
        );
        text.replace_range(start..start + len + 2, &replacement);
        from = start + replacement.len();
    }
    text = rewrite_calls(&text, "CandidateId(", |n| format!("candidate-{n}"));
    text = rewrite_calls(&text, "AgentId(", |n| format!("a{n}"));
    text = rewrite_calls(&text, "SessionId(", |n| format!("s{n}"));
    text = rewrite_calls(&text, "Ppm(", |n| {
        let ppm: u64 = n.parse().unwrap_or(0);
        if ppm % 10_000 == 0 {
            format!("{}%", ppm / 10_000)
        } else {
            format!("{:.1}%", ppm as f64 / 10_000.0)
        }
    });
    text = rewrite_calls(&text, "Some(\"", |hex| format!("value {}…", &hex[..hex.len().min(8)]));
    text = rewrite_calls(&text, "Some(", str::to_owned);
    text = text.replace("agent-", "a").replace("for None", "for nil").replace("round None", "no round");
    text.replace(" (Normal mode)", "").replace(" (Fallback mode)", " (fallback mode)")
}

/// Replaces every `prefix` + `arg` + `)` (an argument without parentheses) by `f(arg)`; a
/// closing quote before the parenthesis is dropped with it.
fn rewrite_calls(text: &str, prefix: &str, f: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(prefix) {
        let after = &rest[start + prefix.len()..];
        let Some(end) = after.find(')').filter(|end| !after[..*end].contains('(')) else {
            out.push_str(&rest[..start + prefix.len()]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..start]);
        out.push_str(&f(after[..end].trim_end_matches('"')));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `EarlyUnanimous` → `early unanimous`.
fn words(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// `text` up to `max` characters, cut at a word boundary (never inside a word) with "…".
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    let end = cut.rfind(' ').filter(|&i| i > 0).unwrap_or(cut.len());
    format!("{} …", cut[..end].trim_end_matches([',', ';', ':']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_and_round_votes_read_as_text() {
        let decide = "Decided { chosen: CandidateId(2), method: EarlyUnanimous, agreement: Ppm(1000000), byzantine: [] } in round Some(1) (Normal mode)";
        assert_eq!(humanize(decide), "candidate-2 by early unanimous (agreement 100%) in round 1");
        let flagged =
            "Decided { chosen: CandidateId(0), method: Threshold, agreement: Ppm(750000), byzantine: [AgentId(3)] }";
        assert_eq!(humanize(flagged), "candidate-0 by threshold (agreement 75%, flagged [a3])");
        let both = format!("a2 decided {decide} but a1 decided {flagged}");
        assert_eq!(
            humanize(&both),
            "a2 decided candidate-2 by early unanimous (agreement 100%) in round 1 but a1 decided \
             candidate-0 by threshold (agreement 75%, flagged [a3])"
        );
        assert_eq!(
            humanize("Prevote round 2 by agent-3 for Some(\"3f9c1e312cd7097b\")"),
            "Prevote round 2 by a3 for value 3f9c1e31…"
        );
        assert_eq!(humanize("Precommit round 0 by agent-1 for None"), "Precommit round 0 by a1 for nil");
        assert_eq!(humanize("vote of agent-4 for candidate-2"), "vote of a4 for candidate-2");
        assert_eq!(humanize("BadSignature"), "bad signature");
        assert_eq!(humanize("UnknownSession(SessionId(3))"), "unknown session(s3)");
        assert_eq!(humanize("VoteCollection round 0"), "vote collection round 0");
        assert_eq!(round_of("Prevote round 12 by a1"), Some(12));
        assert_eq!(round_of("x in round Some(3) (Normal mode)"), Some(3));
        assert_eq!(round_of("open 3 candidates"), None);
    }

    #[test]
    fn long_debug_structs_become_their_variant_name() {
        let evidence = format!("ConflictingVotes {{ first: SignedVote {{ vote: {} }} }}", "x".repeat(200));
        assert_eq!(humanize(&evidence), "conflicting votes");
        // Malformed or unbalanced input is left alone, never a panic.
        for odd in ["CandidateId(", "Ppm(x)", "Decided { chosen: ", "Some(\"", "round ", ""] {
            let _ = humanize(odd);
            let _ = round_of(odd);
        }
        assert_eq!(humanize("Ppm(x)"), "0%");
    }

    #[test]
    fn clipping_never_cuts_a_word() {
        let text = "alpha beta gamma delta";
        assert_eq!(clip(text, 100), text);
        assert_eq!(clip(text, 13), "alpha beta …");
        assert_eq!(clip("unbreakable", 4), "unbr …");
        assert!(clip(&"é ".repeat(100), 11).ends_with('…'));
    }
}
