//! Writing a scenario as the shortest file that parses back to it: only the keys that differ
//! from the defaults, one `section.key = value` line each (lists of faults and rules as
//! inline tables), in the order of the file model.

use std::path::Path;

use toml::{Table, Value};

use super::{parse, Scenario};

impl Scenario {
    /// The scenario as minimal TOML: every key whose value differs from the default of a
    /// scenario file with nothing in it. Parses back to an equal scenario.
    pub fn to_minimal_toml(&self) -> String {
        let full = Value::try_from(self).ok();
        let default = parse("", Path::new("default.toml")).ok().and_then(|d| Value::try_from(&d).ok());
        let (Some(Value::Table(full)), Some(Value::Table(default))) = (full, default) else {
            return toml::to_string(self).unwrap_or_default();
        };
        let mut lines = Vec::new();
        // The name and description first, as in a hand-written file.
        let (mut head, mut rest) = (Table::new(), Table::new());
        for (key, value) in full {
            if key == "name" || key == "description" {
                head.insert(key, value);
            } else {
                rest.insert(key, value);
            }
        }
        diff(&head, &default, "", &mut lines);
        diff(&rest, &default, "", &mut lines);
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

fn diff(full: &Table, default: &Table, prefix: &str, lines: &mut Vec<String>) {
    for (key, value) in full {
        let dotted = if prefix.is_empty() { bare(key) } else { format!("{prefix}.{}", bare(key)) };
        match (value, default.get(key)) {
            (_, Some(d)) if d == value => {}
            (Value::Table(inner), Some(Value::Table(d))) => diff(inner, d, &dotted, lines),
            // A table the defaults do not have (network.tail): one inline table.
            (Value::Table(inner), None) => lines.push(format!("{dotted} = {}", Value::Table(inner.clone()))),
            (Value::Array(items), None) if items.is_empty() => {}
            (value, _) => lines.push(format!("{dotted} = {value}")),
        }
    }
}

/// A key as TOML: bare when it can be, quoted otherwise (sweep keys contain dots).
fn bare(key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_files_parse_back_and_name_only_what_differs() {
        let text = "name = \"m\"\n[agents]\ncount = 4\n[byzantine]\ncount = 1\nstrategies = [\"twin\"]\nagents = [2]\n\
                    [network]\nlatency_ms = [1, 80]\n[[faults]]\nat_ms = 5\nkind = \"crash\"\nagent = 1\n\
                    [[round_partitions]]\nsession = 0\nround = 1\ngroups = [[0, \"2'\"], [1, 2, 3]]\n";
        let s = parse(text, Path::new("m.toml")).unwrap();
        let minimal = s.to_minimal_toml();
        let back = parse(&minimal, Path::new("m.toml")).unwrap();
        assert_eq!(toml::to_string(&back).ok(), toml::to_string(&s).ok(), "{minimal}");
        assert!(!minimal.contains("threshold"), "defaults are left out:\n{minimal}");
        assert!(minimal.lines().count() <= 8, "{minimal}");
        assert_eq!(parse("", Path::new("d.toml")).unwrap().to_minimal_toml().trim(), "name = \"d\"");
    }
}
