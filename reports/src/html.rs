//! The document as one self-contained HTML page: figures are SVG `data:` URIs, the style and
//! the figure-check script are inline, and a Content-Security-Policy forbids loading anything
//! from anywhere else, so the page looks the same offline.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;

use crate::doc::{toc_tree, Block, Document, FigureBlock, Inline, Table};

const STYLE: &str = r#"
body{font-family:system-ui,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;max-width:1280px;margin:0 auto;padding:0 20px 80px;color:#1d1d1f;line-height:1.5;background:#fff}
h1{font-size:30px;margin:28px 0 8px}h2{font-size:23px;margin-top:2.2em;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:18px;margin-top:1.8em}
a{color:#0057a3}code{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px;background:#f3f3f3;padding:1px 4px;border-radius:3px;overflow-wrap:anywhere}
.tw{overflow-x:auto;margin:1em 0}table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #d4d4d4;padding:3px 8px;vertical-align:top}
th{background:#f1f1f1;text-align:left;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}tbody tr:nth-child(even){background:#fafafa}
figure{margin:1.6em 0}figure img{display:block;max-width:100%;height:auto;border:1px solid #e4e4e4}figcaption{margin-bottom:.6em}
.files{font-size:12px;color:#666;margin-top:4px}nav.toc{background:#f7f7f7;border:1px solid #e2e2e2;padding:8px 20px;margin:16px 0}
nav.toc ul{margin:4px 0;padding-left:20px}nav.toc li li{display:inline}nav.toc li li+li:before{content:" · "}
pre{background:#f3f3f3;padding:8px;overflow-x:auto}
"#;

/// Sets `data-figures-loaded="OK/TOTAL"` on `<body>` once the page has loaded, counting the
/// images that decoded; the headless-browser test reads it.
const CHECK_SCRIPT: &str = r#"window.addEventListener("load",function(){var i=document.images,ok=0;for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0){ok++;}}document.body.setAttribute("data-figures-loaded",ok+"/"+i.length);});"#;

/// Renders `doc`; `svgs` maps figure stems to their SVG text.
pub fn render(doc: &Document, title: &str, svgs: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(1 << 20);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n",
    );
    let _ = writeln!(out, "<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>", escape(title));
    for block in &doc.blocks {
        block_html(&mut out, doc, block, svgs);
    }
    let _ = writeln!(out, "<script>{CHECK_SCRIPT}</script>\n</body>\n</html>");
    out
}

fn block_html(out: &mut String, doc: &Document, block: &Block, svgs: &BTreeMap<String, String>) {
    match block {
        Block::Heading { level, anchor, text } => {
            let level = (*level).clamp(1, 6);
            let _ = writeln!(out, "<h{level} id=\"{}\">{}</h{level}>", escape(anchor), escape(text));
        }
        Block::Para(parts) => {
            let _ = writeln!(out, "<p>{}</p>", inlines(parts));
        }
        Block::List(items) => {
            out.push_str("<ul>\n");
            for item in items {
                let _ = writeln!(out, "<li>{}</li>", inlines(item));
            }
            out.push_str("</ul>\n");
        }
        Block::Table(table) => table_html(out, table),
        Block::Figure(figure) => figure_html(out, figure, svgs.get(&figure.stem)),
        Block::Code(code) => {
            let _ = writeln!(out, "<pre><code>{}</code></pre>", escape(code));
        }
        Block::Toc => toc_html(out, doc),
    }
}

fn toc_html(out: &mut String, doc: &Document) {
    out.push_str("<nav class=\"toc\"><strong>Contents</strong>\n<ul>\n");
    for (item, subs) in toc_tree(doc) {
        let _ = write!(out, "<li><a href=\"#{}\">{}</a>", escape(item.0), escape(item.1));
        if !subs.is_empty() {
            out.push_str("<ul>");
            for (anchor, text) in subs {
                let _ = write!(out, "<li><a href=\"#{}\">{}</a></li>", escape(anchor), escape(text));
            }
            out.push_str("</ul>");
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul></nav>\n");
}

fn table_html(out: &mut String, table: &Table) {
    out.push_str("<div class=\"tw\"><table>\n<thead><tr>");
    for h in &table.header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if table.numeric.get(i).copied().unwrap_or(false) { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", inline(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
}

fn figure_html(out: &mut String, figure: &FigureBlock, svg: Option<&String>) {
    let stem = escape(&figure.stem);
    let _ = write!(
        out,
        "<figure id=\"fig-{stem}\">\n<figcaption><strong>{}.</strong> {}</figcaption>\n",
        escape(&figure.title),
        inlines(&figure.explanation)
    );
    match svg {
        Some(svg) => {
            let data = base64::engine::general_purpose::STANDARD.encode(svg.as_bytes());
            let _ = writeln!(
                out,
                "<img src=\"data:image/svg+xml;base64,{data}\" width=\"{}\" height=\"{}\" alt=\"{}\">",
                figure.size.0,
                figure.size.1,
                escape(&figure.alt)
            );
        }
        None => {
            let _ = writeln!(out, "<p><em>Figure missing: {}</em></p>", escape(&figure.alt));
        }
    }
    let png =
        if figure.png { format!(", <a href=\"figures/{stem}.png\">figures/{stem}.png</a>") } else { String::new() };
    let _ = writeln!(
        out,
        "<div class=\"files\">Files: <a href=\"figures/{stem}.svg\">figures/{stem}.svg</a>{png}</div>\n</figure>"
    );
}

fn inlines(parts: &[Inline]) -> String {
    parts.iter().map(inline).collect()
}

fn inline(part: &Inline) -> String {
    match part {
        Inline::Text(t) => escape(t),
        Inline::Code(c) => format!("<code>{}</code>", escape(c)),
        Inline::Strong(s) => format!("<strong>{}</strong>", escape(s)),
        Inline::Link { text, anchor } => format!("<a href=\"#{}\">{}</a>", escape(anchor), escape(text)),
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{code, link, text};

    fn sample() -> Document {
        let mut doc = Document::default();
        doc.heading(1, "top", "Report <1>");
        doc.push(Block::Toc);
        doc.heading(2, "a", "Section A");
        doc.heading(3, "a1", "Sub A1");
        doc.heading(2, "b", "Section B");
        doc.para(vec![text("x & y "), code("<cmd>"), link("go", "b")]);
        doc.push(Block::Figure(FigureBlock {
            stem: "f1".into(),
            title: "T".into(),
            explanation: vec![text("what")],
            alt: "alt \"q\"".into(),
            size: (10, 20),
            png: true,
        }));
        doc.push(Block::Table(Table {
            header: vec!["h".into(), "n".into()],
            numeric: vec![false, true],
            rows: vec![vec![text("a|b"), text("1")]],
        }));
        doc
    }

    #[test]
    fn self_contained_page() {
        let svgs = BTreeMap::from([("f1".to_owned(), "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>".to_owned())]);
        let html = render(&sample(), "t", &svgs);
        for attr in ["src=\"http", "href=\"http", "src='http", "href='http", "url(http", "@import"] {
            assert!(!html.contains(attr), "external resource via {attr}");
        }
        assert!(!html.contains("http://") && !html.contains("https://"), "no URL to anywhere");
        assert!(html.contains("<img src=\"data:image/svg+xml;base64,"));
        assert!(html.contains("Content-Security-Policy"));
        assert!(html.contains("data-figures-loaded"));
        assert!(html.contains("<h1 id=\"top\">Report &lt;1&gt;</h1>"));
        assert!(html.contains("x &amp; y <code>&lt;cmd&gt;</code><a href=\"#b\">go</a>"));
        assert!(html.contains("alt=\"alt &quot;q&quot;\""));
        assert!(html.contains("<td class=\"n\">1</td>"));
    }

    #[test]
    fn toc_nests_level_three_under_level_two() {
        let html = render(&sample(), "t", &BTreeMap::new());
        let toc = html.split("<nav class=\"toc\">").nth(1).and_then(|s| s.split("</nav>").next()).unwrap_or("");
        assert_eq!(toc.matches("<li>").count(), 3);
        assert_eq!(toc.matches("</li>").count(), 3);
        assert_eq!(toc.matches("<ul>").count(), toc.matches("</ul>").count());
        assert!(toc.find("#a1").unwrap() < toc.find("#b").unwrap());
        assert!(html.contains("Figure missing"), "a figure without SVG is said to be missing");
    }
}
