//! Text boxes of a space-time diagram: how wide a label is reckoned, and where each label goes
//! so that no two overlap and none leaves the diagram.

use super::{BOLD_EM, CHAR_EM, WIDTH};

/// The width of `text` at `font_px`, as the layout reckons it (see [`CHAR_EM`]).
fn text_width(text: &str, font_px: f64, bold: bool) -> f64 {
    text.chars().count() as f64 * font_px * if bold { BOLD_EM } else { CHAR_EM }
}

/// Where a text goes: x, baseline and `text-anchor`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Spot {
    pub x: f64,
    pub y: f64,
    pub anchor: &'static str,
}

/// The boxes of the labels placed so far, so that no two overlap: each label takes the first
/// of its spots where it fits inside the diagram and clear of the others, or is left out (its
/// mark keeps the text as a hover title).
#[derive(Default)]
pub(super) struct Labels {
    boxes: Vec<[f64; 4]>,
}

impl Labels {
    /// The box of `text` at `spot`, moved sideways to stay inside the diagram.
    fn boxed(text: &str, font_px: f64, bold: bool, spot: Spot) -> (Spot, [f64; 4]) {
        let w = text_width(text, font_px, bold);
        let left = match spot.anchor {
            "end" => spot.x - w,
            "middle" => spot.x - w / 2.0,
            _ => spot.x,
        };
        let shift = (4.0 - left).max(0.0) + (WIDTH - 4.0 - (left + w)).min(0.0);
        let spot = Spot { x: spot.x + shift, ..spot };
        (spot, [left + shift, spot.y - 0.8 * font_px, left + shift + w, spot.y + 0.25 * font_px])
    }

    /// Takes the place of a text drawn anyway.
    pub fn reserve(&mut self, text: &str, font_px: f64, bold: bool, x: f64, y: f64) {
        let (_, b) = Labels::boxed(text, font_px, bold, Spot { x, y, anchor: "start" });
        self.boxes.push(b);
    }

    /// The first of `spots` where `text` fits, taken; `None` when it fits nowhere.
    pub fn place(&mut self, text: &str, font_px: f64, spots: &[Spot]) -> Option<Spot> {
        for spot in spots {
            let (spot, b) = Labels::boxed(text, font_px, false, *spot);
            let clear = self.boxes.iter().all(|o| b[2] <= o[0] || o[2] <= b[0] || b[3] <= o[1] || o[3] <= b[1]);
            if clear {
                self.boxes.push(b);
                return Some(spot);
            }
        }
        None
    }
}
