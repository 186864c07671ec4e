//! An SVG being drawn: its elements, and how far left and right anything reaches, so the
//! picture is made wide enough for every label. Text widths are estimated generously
//! (no font metrics without a font), so labels never clip.

use std::fmt::Write as _;
use std::io::{self, Write};

/// The font size of ordinary text, px.
pub(super) const FONT: f64 = 11.0;
/// The font size of panel titles (bold), px.
pub(super) const TITLE_FONT: f64 = 13.0;
/// Room left around everything, px.
const PAD: f64 = 8.0;

/// Where a text's `x` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Anchor {
    /// Its left end.
    Start,
    /// Its middle.
    Middle,
    /// Its right end.
    End,
}

impl Anchor {
    fn name(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }

    /// The left and right ends of a text `width` wide anchored at `x`.
    pub(super) fn span(self, x: f64, width: f64) -> (f64, f64) {
        match self {
            Anchor::Start => (x, x + width),
            Anchor::Middle => (x - width / 2.0, x + width / 2.0),
            Anchor::End => (x - width, x),
        }
    }
}

/// A generous estimate of how wide `text` is at `size` px, `bold` or not: wider than any
/// common sans-serif font sets it (digits and lower case are about 0.55 em).
pub(super) fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    let em = if bold { 0.7 } else { 0.62 };
    text.chars().count() as f64 * size * em
}

/// Escapes text for SVG.
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The elements of one SVG, and its extent so far.
pub(super) struct Canvas {
    body: String,
    left: f64,
    right: f64,
    bottom: f64,
}

impl Canvas {
    /// An empty canvas at least `width` by `height`.
    pub(super) fn new(width: f64, height: f64) -> Canvas {
        Canvas {
            body: String::new(),
            left: f64::INFINITY,
            right: width,
            bottom: height,
        }
    }

    /// Adds an element (not text) that spans `left..right` across.
    pub(super) fn shape(&mut self, element: &str, left: f64, right: f64) {
        self.body.push_str(element);
        self.body.push('\n');
        self.left = self.left.min(left);
        self.right = self.right.max(right);
    }

    /// Adds a text at (`x`, `y`).
    pub(super) fn text(&mut self, x: f64, y: f64, anchor: Anchor, text: &str) {
        self.styled_text(x, y, anchor, FONT, false, text);
    }

    /// Adds a bold panel title at (`x`, `y`).
    pub(super) fn title(&mut self, x: f64, y: f64, text: &str) {
        self.styled_text(x, y, Anchor::Start, TITLE_FONT, true, text);
    }

    fn styled_text(&mut self, x: f64, y: f64, anchor: Anchor, size: f64, bold: bool, text: &str) {
        let (left, right) = anchor.span(x, text_width(text, size, bold));
        let _ = write!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{}""#,
            anchor.name()
        );
        if size != FONT {
            let _ = write!(self.body, r#" font-size="{size}""#);
        }
        if bold {
            self.body.push_str(r#" font-weight="bold""#);
        }
        let _ = writeln!(self.body, ">{}</text>", escape(text));
        self.left = self.left.min(left);
        self.right = self.right.max(right);
    }

    /// Writes the SVG, wide enough for all it holds and `height` tall.
    pub(super) fn finish(self, w: &mut dyn Write, title: &str) -> io::Result<()> {
        let x0 = (self.left - PAD).min(0.0);
        let width = (self.right + PAD - x0).ceil();
        let height = self.bottom.ceil();
        writeln!(
            w,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="{x0:.1} 0 {width} {height}" font-family="sans-serif" font-size="{FONT}">"#
        )?;
        writeln!(w, "<title>{}</title>", escape(title))?;
        writeln!(
            w,
            r#"<rect x="{x0:.1}" width="{width}" height="{height}" fill="white"/>"#
        )?;
        w.write_all(self.body.as_bytes())?;
        writeln!(w, "</svg>")
    }
}
