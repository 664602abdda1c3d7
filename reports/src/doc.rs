//! The report as a tree of blocks, rendered twice: as HTML and as Markdown, so both carry the
//! same text and tables.

/// A run of text inside a paragraph or table cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inline {
    /// Plain text.
    Text(String),
    /// Code: names, commands.
    Code(String),
    /// Emphasised text.
    Strong(String),
    /// A link to an anchor of this report.
    Link {
        /// Shown text.
        text: String,
        /// Target anchor (without `#`).
        anchor: String,
    },
}

impl From<&str> for Inline {
    fn from(text: &str) -> Self {
        Inline::Text(text.to_owned())
    }
}

impl From<String> for Inline {
    fn from(text: String) -> Self {
        Inline::Text(text)
    }
}

/// Plain text.
pub fn text(text: impl Into<String>) -> Inline {
    Inline::Text(text.into())
}

/// Code.
pub fn code(text: impl Into<String>) -> Inline {
    Inline::Code(text.into())
}

/// Emphasis.
pub fn strong(text: impl Into<String>) -> Inline {
    Inline::Strong(text.into())
}

/// A link to an anchor of the report.
pub fn link(text: impl Into<String>, anchor: impl Into<String>) -> Inline {
    Inline::Link { text: text.into(), anchor: anchor.into() }
}

/// A block of the report.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// A heading; level 1 is the title.
    Heading {
        /// 1 to 4.
        level: u8,
        /// Unique anchor.
        anchor: String,
        /// Text.
        text: String,
    },
    /// A paragraph.
    Para(Vec<Inline>),
    /// A bulleted list.
    List(Vec<Vec<Inline>>),
    /// A table.
    Table(Table),
    /// A figure.
    Figure(FigureBlock),
    /// A code block.
    Code(String),
    /// The table of contents (built from the headings of level 2 and 3).
    Toc,
}

/// A table; `numeric[i]` right-aligns column `i`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Column titles.
    pub header: Vec<String>,
    /// Which columns hold numbers.
    pub numeric: Vec<bool>,
    /// Rows of cells.
    pub rows: Vec<Vec<Inline>>,
}

/// A figure: its title, the plain-language explanation shown above it, and its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FigureBlock {
    /// File stem under `figures/`.
    pub stem: String,
    /// Short title.
    pub title: String,
    /// What it shows, in one or two sentences, with how many seeds it covers.
    pub explanation: Vec<Inline>,
    /// Alternative text of the image.
    pub alt: String,
    /// Pixel size.
    pub size: (u32, u32),
    /// Whether a `figures/STEM.png` exists besides `figures/STEM.svg` (drawn figures have one;
    /// ready-made SVG images, such as space-time diagrams, do not).
    pub png: bool,
}

/// The whole report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    /// Blocks in order; the first is normally the level-1 title.
    pub blocks: Vec<Block>,
}

impl Document {
    /// Adds a heading with an anchor made unique within the document.
    pub fn heading(&mut self, level: u8, anchor: &str, text: impl Into<String>) -> String {
        let anchor = self.unique_anchor(anchor);
        self.blocks.push(Block::Heading { level, anchor: anchor.clone(), text: text.into() });
        anchor
    }

    /// Adds a paragraph.
    pub fn para(&mut self, parts: Vec<Inline>) {
        self.blocks.push(Block::Para(parts));
    }

    /// Adds any block.
    pub fn push(&mut self, block: Block) {
        self.blocks.push(block);
    }

    /// The headings that go into the table of contents: (level, anchor, text).
    pub fn toc(&self) -> Vec<(u8, &str, &str)> {
        self.blocks
            .iter()
            .filter_map(|b| match b {
                Block::Heading { level, anchor, text } if (2..=3).contains(level) => {
                    Some((*level, anchor.as_str(), text.as_str()))
                }
                _ => None,
            })
            .collect()
    }

    /// The figures, in order.
    pub fn figures(&self) -> impl Iterator<Item = &FigureBlock> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Figure(f) => Some(f),
            _ => None,
        })
    }

    fn unique_anchor(&self, wanted: &str) -> String {
        let base = slug(wanted);
        let taken = |a: &str| self.blocks.iter().any(|b| matches!(b, Block::Heading { anchor, .. } if anchor == a));
        if !taken(&base) {
            return base;
        }
        (2..).map(|i| format!("{base}-{i}")).find(|a| !taken(a)).unwrap_or(base)
    }
}

/// Level-2 headings, each with its level-3 headings: ((anchor, text), [(anchor, text)]).
pub type TocTree<'d> = Vec<((&'d str, &'d str), Vec<(&'d str, &'d str)>)>;

/// The table of contents as a two-level tree.
pub fn toc_tree(doc: &Document) -> TocTree<'_> {
    let mut tree: TocTree<'_> = Vec::new();
    for (level, anchor, text) in doc.toc() {
        match tree.last_mut() {
            Some((_, subs)) if level > 2 => subs.push((anchor, text)),
            _ => tree.push(((anchor, text), Vec::new())),
        }
    }
    tree
}

/// Lower-case ASCII letters, digits and single dashes: safe as a file name and an anchor.
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.len() > 80 {
        out.truncate(80);
    }
    if out.is_empty() {
        out.push('x');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_and_anchor_safe() {
        assert_eq!(
            slug("sweep-drop[byzantine.count=1,network.drop=0.05]"),
            "sweep-drop-byzantine-count-1-network-drop-0-05"
        );
        assert_eq!(slug("  Über  Alles!! "), "ber-alles");
        assert_eq!(slug("???"), "x");
        assert!(slug(&"a".repeat(500)).len() <= 80);
    }

    #[test]
    fn anchors_are_unique_and_toc_lists_levels_two_and_three() {
        let mut doc = Document::default();
        doc.heading(1, "title", "Title");
        let a = doc.heading(2, "s", "S");
        let b = doc.heading(3, "s", "S again");
        doc.heading(4, "deep", "Deep");
        assert_eq!((a.as_str(), b.as_str()), ("s", "s-2"));
        let toc = doc.toc();
        assert_eq!(toc, vec![(2, "s", "S"), (3, "s-2", "S again")]);
    }
}
