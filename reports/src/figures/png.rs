//! The PNG backend: plotters' bitmap backend with its own text rasteriser.
//!
//! plotters 0.3.7 draws `ab_glyph` glyphs without their left side bearing, so narrow glyphs
//! ('.', '1', 'i') land too far left and text looks unevenly spaced. This wrapper delegates
//! every shape to [`BitMapBackend`] and draws text itself: each glyph is positioned at its
//! pen position and rasterised by `ab_glyph`, with plotters' anchors and rotations.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind, FontTransform};

/// Where the baseline sits in plotters' text box, as a share of the font size (the box is
/// `size / 1.24` high): capitals end up centred for `VPos::Center`.
const BASELINE_OF_SIZE: f32 = 0.72;

type BitmapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

/// [`BitMapBackend`] with correct glyph placement.
pub struct PngBackend<'a> {
    inner: BitMapBackend<'a>,
    font: FontRef<'static>,
}

impl<'a> PngBackend<'a> {
    /// Wraps `inner`, drawing text with `font`.
    pub fn new(inner: BitMapBackend<'a>, font: FontRef<'static>) -> Self {
        PngBackend { inner, font }
    }
}

impl DrawingBackend for PngBackend<'_> {
    type ErrorType = BitmapError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let layout = style.layout_box(text).map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let ((min_x, min_y), (max_x, max_y)) = layout;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let size = style.size() as f32;
        let baseline = dy as f32 + size * BASELINE_OF_SIZE;
        let pixels = rasterise(&self.font, size, text, (dx as f32, baseline));
        let transform = style.transform();
        for (x, y, coverage) in pixels {
            let (x, y) = rotate(&transform, x, y);
            let shaded = BackendColor { alpha: color.alpha * f64::from(coverage.min(1.0)), rgb: color.rgb };
            self.inner.draw_pixel((pos.0 + x, pos.1 + y), shaded)?;
        }
        Ok(())
    }
}

fn rotate(transform: &FontTransform, x: i32, y: i32) -> (i32, i32) {
    transform.transform(x, y)
}

/// The covered pixels of `text` laid out from `origin` (left end of the baseline), with kerning.
fn rasterise(font: &FontRef<'static>, size: f32, text: &str, origin: (f32, f32)) -> Vec<(i32, i32, f32)> {
    let scaled = font.as_scaled(PxScale::from(size));
    let mut pixels = Vec::new();
    let mut caret = origin.0;
    let mut previous = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(prev) = previous {
            caret += scaled.kern(prev, id);
        }
        let glyph = id.with_scale_and_position(PxScale::from(size), point(caret, origin.1));
        if let Some(outline) = scaled.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|x, y, coverage| {
                if coverage > 0.0 {
                    pixels.push((bounds.min.x as i32 + x as i32, bounds.min.y as i32 + y as i32, coverage));
                }
            });
        }
        caret += scaled.h_advance(id);
        previous = Some(id);
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn font() -> FontRef<'static> {
        FontRef::try_from_slice(super::super::FONT_BYTES).unwrap()
    }

    #[test]
    fn glyphs_keep_their_bearings() {
        let font = font();
        let left_edge = |text: &str| rasterise(&font, 20.0, text, (0.0, 15.0)).iter().map(|p| p.0).min();
        let dot = rasterise(&font, 20.0, "a.", (0.0, 15.0));
        let a_right = rasterise(&font, 20.0, "a", (0.0, 15.0)).iter().map(|p| p.0).max().unwrap();
        let dot_left = dot.iter().filter(|p| p.1 > 12).map(|p| p.0).max().unwrap();
        assert!(dot_left > a_right, "the dot is drawn after the 'a', not on it");
        assert!(left_edge("1").unwrap() > 0, "'1' keeps its left side bearing");
    }

    #[test]
    fn rotations_follow_plotters() {
        assert_eq!(rotate(&FontTransform::Rotate270, 3, 1), (1, -3));
        assert_eq!(rotate(&FontTransform::None, 3, 1), (3, 1));
    }
}
