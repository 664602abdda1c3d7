//! The document as Markdown (GitHub flavour): the same text and tables as the HTML page, with
//! figures referenced as relative `figures/STEM.png` paths.

use std::fmt::Write as _;

use crate::doc::{toc_tree, Block, Document, FigureBlock, Inline, Table};

/// Renders `doc`.
pub fn render(doc: &Document) -> String {
    let mut out = String::with_capacity(1 << 16);
    for block in &doc.blocks {
        block_md(&mut out, doc, block);
    }
    out
}

fn block_md(out: &mut String, doc: &Document, block: &Block) {
    match block {
        Block::Heading { level, anchor, text } => {
            let hashes = "#".repeat(usize::from((*level).clamp(1, 6)));
            let _ = writeln!(out, "<a id=\"{}\"></a>\n\n{hashes} {}\n", crate::html::escape(anchor), escape(text));
        }
        Block::Para(parts) => {
            let _ = writeln!(out, "{}\n", inlines(parts, false));
        }
        Block::List(items) => {
            for item in items {
                let _ = writeln!(out, "- {}", inlines(item, false));
            }
            out.push('\n');
        }
        Block::Table(table) => table_md(out, table),
        Block::Figure(figure) => figure_md(out, figure),
        Block::Code(code) => {
            let _ = writeln!(out, "```\n{code}\n```\n");
        }
        Block::Toc => {
            out.push_str("**Contents**\n\n");
            for ((anchor, text), subs) in toc_tree(doc) {
                let _ = writeln!(out, "- [{}](#{anchor})", escape(text));
                for (anchor, text) in subs {
                    let _ = writeln!(out, "  - [{}](#{anchor})", escape(text));
                }
            }
            out.push('\n');
        }
    }
}

fn table_md(out: &mut String, table: &Table) {
    let header: Vec<String> = table.header.iter().map(|h| escape(h).replace('|', "\\|")).collect();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let rule: Vec<&str> = (0..table.header.len())
        .map(|i| if table.numeric.get(i).copied().unwrap_or(false) { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "| {} |", rule.join(" | "));
    for row in &table.rows {
        let cells: Vec<String> = row.iter().map(|c| inline(c, true)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

fn figure_md(out: &mut String, figure: &FigureBlock) {
    let _ = writeln!(out, "**{}.** {}\n", escape(&figure.title), inlines(&figure.explanation, false));
    if figure.png {
        let _ = writeln!(
            out,
            "![{}](figures/{stem}.png)\n\n(also as [SVG](figures/{stem}.svg))\n",
            escape(&figure.alt),
            stem = figure.stem
        );
    } else {
        let _ = writeln!(out, "![{}](figures/{}.svg)\n", escape(&figure.alt), figure.stem);
    }
}

fn inlines(parts: &[Inline], in_table: bool) -> String {
    parts.iter().map(|p| inline(p, in_table)).collect()
}

fn inline(part: &Inline, in_table: bool) -> String {
    let text = match part {
        Inline::Text(t) => escape(t),
        Inline::Code(c) => code_span(c),
        Inline::Strong(s) => {
            let trimmed = s.trim_end();
            format!("**{}**{}", escape(trimmed), &s[trimmed.len()..])
        }
        Inline::Link { text, anchor } => format!("[{}](#{anchor})", escape(text)),
    };
    let text = text.replace('\n', " ");
    if in_table {
        text.replace('|', "\\|")
    } else {
        text
    }
}

/// A code span that survives backticks in its content.
fn code_span(code: &str) -> String {
    let longest = code.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if code.starts_with('`') || code.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{code}{pad}{fence}")
}

/// Escapes Markdown punctuation in plain text.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{code, link, text};

    #[test]
    fn figures_are_relative_png_paths() {
        let mut doc = Document::default();
        doc.heading(1, "top", "R");
        doc.push(Block::Toc);
        doc.heading(2, "s", "Section");
        doc.push(Block::Figure(FigureBlock {
            stem: "a-outcomes".into(),
            title: "T".into(),
            explanation: vec![text("shows x")],
            alt: "alt".into(),
            size: (1, 1),
            png: true,
        }));
        let md = render(&doc);
        assert!(md.contains("![alt](figures/a-outcomes.png)"));
        assert!(md.contains("[SVG](figures/a-outcomes.svg)"));
        assert!(md.contains("- [Section](#s)"));
        assert!(md.contains("<a id=\"s\"></a>\n\n## Section"));
    }

    #[test]
    fn tables_escape_pipes_and_align_numbers() {
        let mut doc = Document::default();
        doc.push(Block::Table(Table {
            header: vec!["name".into(), "n".into()],
            numeric: vec![false, true],
            rows: vec![vec![code("a|b"), text("1")], vec![link("s[x=1]", "s-x-1"), text("2")]],
        }));
        let md = render(&doc);
        assert!(md.contains("| --- | ---: |"));
        assert!(md.contains("| `a\\|b` | 1 |"));
        assert!(md.contains("[s\\[x=1\\]](#s-x-1)"));
    }

    #[test]
    fn code_spans_with_backticks() {
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x"), "`` `x ``");
        assert_eq!(code_span("plain"), "`plain`");
    }

    #[test]
    fn strong_text_keeps_trailing_space_outside_the_markers() {
        assert_eq!(inline(&crate::doc::strong("Verdict: "), false), "**Verdict:** ");
    }
}
