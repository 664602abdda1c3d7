//! Violation details in plain words.
//!
//! The oracle writes details with Rust's `Debug` output of protocol values, for example
//! `agent-1 decided Decided { chosen: CandidateId(2), method: Threshold, agreement: Ppm(800000),
//! byzantine: [] } in session-3 but agent-2 decided Escalated { reason: "…", byzantine: [AgentId(4)] }`.
//! [`detail`] rewrites such values as `candidate 2 (by threshold, 80.0% agreement)` and ids as
//! `agent 1`, `session 3`, leaving every other word as it is. Text it cannot parse is kept.

/// `text` with every `Debug` value and id in words.
pub fn detail(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if starts_word && chars[i].is_ascii_uppercase() {
            let mut cursor = Cursor { chars: &chars, at: i };
            if let Some(node) = cursor.value().filter(|n| !matches!(n, Node::Atom(_))) {
                out.push_str(&render(&node));
                i = cursor.at;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    ids(&out)
}

/// A parsed `Debug` value.
#[derive(Debug, PartialEq)]
enum Node {
    Struct(String, Vec<(String, Node)>),
    Tuple(String, Vec<Node>),
    List(Vec<Node>),
    Atom(String),
}

struct Cursor<'c> {
    chars: &'c [char],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_spaces();
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || "_.-%".contains(c)) {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    fn value(&mut self) -> Option<Node> {
        self.skip_spaces();
        match self.peek()? {
            '[' => {
                self.at += 1;
                Some(Node::List(self.items(']')?))
            }
            '"' => {
                let start = self.at;
                self.at += 1;
                while self.peek()? != '"' {
                    self.at += usize::from(self.peek() == Some('\\')) + 1;
                }
                self.at += 1;
                Some(Node::Atom(self.chars[start..self.at].iter().collect()))
            }
            _ => {
                let name = self.word();
                if name.is_empty() {
                    return None;
                }
                let mark = self.at;
                if self.peek() == Some('(') {
                    self.at += 1;
                    return Some(Node::Tuple(name, self.items(')')?));
                }
                if self.eat('{') {
                    return Some(Node::Struct(name, self.fields()?));
                }
                self.at = mark;
                Some(Node::Atom(name))
            }
        }
    }

    fn items(&mut self, close: char) -> Option<Vec<Node>> {
        let mut items = Vec::new();
        if self.eat(close) {
            return Some(items);
        }
        loop {
            items.push(self.value()?);
            if self.eat(close) {
                return Some(items);
            }
            if !self.eat(',') {
                return None;
            }
        }
    }

    fn fields(&mut self) -> Option<Vec<(String, Node)>> {
        let mut fields = Vec::new();
        if self.eat('}') {
            return Some(fields);
        }
        loop {
            self.skip_spaces();
            if self.chars.get(self.at..self.at + 2) == Some(&['.', '.']) {
                self.at += 2;
                return self.eat('}').then_some(fields);
            }
            let key = self.word();
            if key.is_empty() || !self.eat(':') {
                return None;
            }
            fields.push((key, self.value()?));
            if self.eat('}') {
                return Some(fields);
            }
            if !self.eat(',') {
                return None;
            }
        }
    }
}

fn render(node: &Node) -> String {
    match node {
        Node::Atom(a) => a.trim_matches('"').to_owned(),
        Node::List(items) if items.is_empty() => "none".to_owned(),
        Node::List(items) => items.iter().map(render).collect::<Vec<_>>().join(", "),
        Node::Tuple(name, items) => match (name.as_str(), items.as_slice()) {
            ("AgentId", [x]) => format!("agent {}", render(x)),
            ("CandidateId", [x]) => format!("candidate {}", render(x)),
            ("SessionId", [x]) => format!("session {}", render(x)),
            ("Ppm", [Node::Atom(x)]) => x.parse::<f64>().map_or_else(|_| x.clone(), |v| format!("{:.1}%", v / 1e4)),
            ("Some", [x]) => render(x),
            (_, [x]) => format!("{} {}", words(name), render(x)),
            _ => format!("{} ({})", words(name), items.iter().map(render).collect::<Vec<_>>().join(", ")),
        },
        Node::Struct(name, fields) => structure(name, fields),
    }
}

fn structure(name: &str, fields: &[(String, Node)]) -> String {
    let field = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let flagged = match field("byzantine") {
        Some(Node::List(agents)) if !agents.is_empty() => {
            format!(", flagged {}", agents.iter().map(render).collect::<Vec<_>>().join(", "))
        }
        _ => String::new(),
    };
    match name {
        "Decided" => {
            let chosen = field("chosen").map_or_else(|| "a candidate".to_owned(), render);
            let method = field("method").map(|m| format!("by {}", words(&render(m))));
            let agreement = field("agreement").map(|a| format!("{} agreement", render(a)));
            let how: Vec<String> = method.into_iter().chain(agreement).collect();
            format!("{chosen} ({}{flagged})", how.join(", "))
        }
        "Escalated" => {
            let reason = field("reason").map(|r| format!(": {}", render(r))).unwrap_or_default();
            format!("escalation to people{reason}{}", flagged.replacen(", ", "; ", 1))
        }
        "NoDecision" => "no decision".to_owned(),
        _ => {
            let parts: Vec<String> =
                fields.iter().map(|(k, v)| format!("{} {}", k.replace('_', " "), render(v))).collect();
            format!("{} ({})", words(name), parts.join(", "))
        }
    }
}

/// `EarlyUnanimous` → `early unanimous`.
fn words(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// `agent-1`, `session-3`, `candidate-2` → `agent 1`, `session 3`, `candidate 2`.
fn ids(text: &str) -> String {
    let mut out = text.to_owned();
    for prefix in ["agent", "session", "candidate"] {
        let dashed = format!("{prefix}-");
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&dashed) {
            let after = &rest[at + dashed.len()..];
            result.push_str(&rest[..at]);
            result.push_str(prefix);
            result.push(if after.starts_with(|c: char| c.is_ascii_digit()) { ' ' } else { '-' });
            rest = after;
        }
        result.push_str(rest);
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_details_read_as_words() {
        let raw = "agent-1 decided Decided { chosen: CandidateId(2), method: Threshold, agreement: Ppm(800000), \
                   byzantine: [] } in session-3 but agent-2 decided Decided { chosen: CandidateId(0), method: \
                   EarlyUnanimous, agreement: Ppm(1000000), byzantine: [AgentId(4)] }";
        assert_eq!(
            detail(raw),
            "agent 1 decided candidate 2 (by threshold, 80.0% agreement) in session 3 but agent 2 decided \
             candidate 0 (by early unanimous, 100.0% agreement, flagged agent 4)"
        );
    }

    #[test]
    fn escalations_and_unknown_values() {
        let raw = r#"agent-0 decided Escalated { reason: "no quorum, sorry", byzantine: [AgentId(1), AgentId(2)] } but NoDecision { .. } and Foo { bar_baz: Some(3) }"#;
        assert_eq!(
            detail(raw),
            "agent 0 decided escalation to people: no quorum, sorry; flagged agent 1, agent 2 but no decision and foo (bar baz 3)"
        );
    }

    #[test]
    fn plain_text_and_broken_values_are_kept() {
        for text in ["Prevote round 0 by 2", "only 3 distinct voters, the quorum is 4", "Broken { x: (", "", "agent-x"]
        {
            assert_eq!(detail(text), text);
        }
        assert_eq!(
            detail("agent-12 did not decide session-0 by 30000 ms"),
            "agent 12 did not decide session 0 by 30000 ms"
        );
    }
}
