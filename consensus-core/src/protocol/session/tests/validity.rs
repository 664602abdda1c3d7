//! Rows for docs/protocol.md V1–V8: agent 0 prevotes a round-0 proposal of each value, or nil.

use super::Expect::*;
use super::*;

pub(super) fn validity_v1_to_v8() -> Vec<Case> {
    // Each row proposes its value in round 0 at 600 ms (past the 500 ms deadline) unless it
    // says otherwise.
    let row = |lines, name, v: Val, setting, expect| Case {
        setting,
        ..case(lines, name, 0, |f| f.ready(0), move |f| f.at(600).proposal(0, v, None, &[]), expect)
    };
    let plain = Setting::Plain;
    let on = Setting::Fallback;
    vec![
        row("V1–V5", "q signed votes of the committee, the engine's outcome", A, plain, &[Prevote(0, A)]),
        row("V2", "fewer than q votes", "two-votes", plain, &[Prevote(0, NIL)]),
        row("V2", "a vote of another session", "foreign-vote", plain, &[Prevote(0, NIL)]),
        row("V2", "a vote from outside the committee", "outsider-vote", plain, &[Prevote(0, NIL)]),
        row("V2", "votes not in ascending agent order", "unsorted", plain, &[Prevote(0, NIL)]),
        row("V2", "one agent's vote twice", "duplicated", plain, &[Prevote(0, NIL)]),
        row("V1", "a session spec the client did not sign", "bad-spec", plain, &[Prevote(0, NIL)]),
        row("V3", "a vote with a forged signature", "forged-vote", plain, &[Prevote(0, NIL)]),
        row("V4–V5", "a claimed outcome the engine does not give", X, plain, &[Prevote(0, NIL)]),
        row("V6–V8", "a fallback value, past the deadline, policy on", "fallback", on, &[Prevote(0, "fallback")]),
        row("V7", "a fallback value with the fallback policy off", "fallback", plain, &[Prevote(0, NIL)]),
        row("V7", "a fallback value when the engine decides", "fallback-decided", on, &[Prevote(0, NIL)]),
        Case {
            input: Box::new(|f| f.at(20).proposal(0, "fallback", None, &[])),
            ..row("V8", "a fallback value before the deadline", "fallback", on, &[Prevote(0, NIL)])
        },
    ]
}
