//! Colour scales shared by the SVG charts and the HTML views, so that a value has the same
//! colour in a heatmap and in a coloured-token view.

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `rgb(r,g,b)` for CSS.
    pub fn css(self) -> String {
        format!("rgb({},{},{})", self.0, self.1, self.2)
    }

    /// Black or white, whichever reads better on this background.
    pub fn text_on(self) -> Rgb {
        let luma =
            0.299 * f64::from(self.0) + 0.587 * f64::from(self.1) + 0.114 * f64::from(self.2);
        if luma > 140.0 {
            Rgb(0, 0, 0)
        } else {
            Rgb(255, 255, 255)
        }
    }
}

/// Shown for NaN and ±inf: grey, clearly not on any scale.
pub const NON_FINITE: Rgb = Rgb(190, 190, 190);

const WHITE: Rgb = Rgb(255, 255, 255);
const RED: Rgb = Rgb(178, 24, 43);
const BLUE: Rgb = Rgb(33, 102, 172);

fn mix(a: Rgb, b: Rgb, t: f64) -> Rgb {
    let t = t.clamp(0.0, 1.0);
    let m = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round() as u8;
    Rgb(m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
}

/// How values map to colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// White at 0, red for positive and blue for negative values, saturating at ±`limit`
    /// (CircuitsVis' and TransformerLens' convention for attributions and logit differences).
    Diverging {
        /// The magnitude drawn at full colour.
        limit: f64,
    },
    /// White at `min` to blue at `max` (attention probabilities, activations).
    Sequential {
        /// The value drawn white.
        min: f64,
        /// The value drawn at full colour.
        max: f64,
    },
}

impl Scale {
    /// The scale that suits `values`: diverging around 0 when they have both signs,
    /// sequential from 0 (or their minimum, if negative) to their maximum otherwise.
    /// Non-finite values are ignored; with no finite value the scale is `[0, 1]`.
    pub fn fit(values: &[f64]) -> Scale {
        let (lo, hi) = finite_range(values).unwrap_or((0.0, 1.0));
        if lo < 0.0 && hi > 0.0 {
            Scale::Diverging {
                limit: lo.abs().max(hi),
            }
        } else if hi <= 0.0 {
            // All non-positive: blue for the most negative.
            Scale::Diverging {
                limit: lo.abs().max(f64::MIN_POSITIVE),
            }
        } else {
            Scale::Sequential {
                min: 0.0_f64.min(lo),
                max: hi,
            }
        }
    }

    /// A diverging scale centred at 0 that saturates at the largest finite magnitude.
    pub fn diverging(values: &[f64]) -> Scale {
        let limit = finite_range(values).map_or(1.0, |(lo, hi)| lo.abs().max(hi.abs()));
        Scale::Diverging {
            limit: if limit > 0.0 { limit } else { 1.0 },
        }
    }

    /// The colour of `value`; [`NON_FINITE`] for NaN and ±inf.
    pub fn color(self, value: f64) -> Rgb {
        if !value.is_finite() {
            return NON_FINITE;
        }
        match self {
            Scale::Diverging { limit } => {
                let t = if limit > 0.0 { value / limit } else { 0.0 };
                if t >= 0.0 {
                    mix(WHITE, RED, t)
                } else {
                    mix(WHITE, BLUE, -t)
                }
            }
            Scale::Sequential { min, max } => {
                let span = max - min;
                let t = if span > 0.0 {
                    (value - min) / span
                } else {
                    1.0
                };
                mix(WHITE, BLUE, t)
            }
        }
    }

    /// The two ends of the scale, for a legend.
    pub fn ends(self) -> (f64, f64) {
        match self {
            Scale::Diverging { limit } => (-limit, limit),
            Scale::Sequential { min, max } => (min, max),
        }
    }
}

/// The smallest and largest finite values, or `None` when there is none.
pub fn finite_range(values: &[f64]) -> Option<(f64, f64)> {
    values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_is_white_at_zero_red_up_blue_down() {
        let s = Scale::Diverging { limit: 2.0 };
        assert_eq!(s.color(0.0), WHITE);
        assert_eq!(s.color(2.0), RED);
        assert_eq!(s.color(5.0), RED, "saturates");
        assert_eq!(s.color(-2.0), BLUE);
        assert_eq!(s.color(f64::NAN), NON_FINITE);
        assert_eq!(s.color(f64::INFINITY), NON_FINITE);
    }

    #[test]
    fn fit_picks_diverging_only_for_mixed_signs() {
        assert_eq!(Scale::fit(&[-1.0, 3.0]), Scale::Diverging { limit: 3.0 });
        assert_eq!(
            Scale::fit(&[0.2, 0.9, f64::NAN]),
            Scale::Sequential { min: 0.0, max: 0.9 }
        );
        assert_eq!(
            Scale::fit(&[f64::NAN]),
            Scale::Sequential { min: 0.0, max: 1.0 }
        );
        assert_eq!(Scale::fit(&[-3.0, -1.0]), Scale::Diverging { limit: 3.0 });
        // A constant scale still colours without dividing by zero.
        assert_eq!(Scale::Sequential { min: 1.0, max: 1.0 }.color(1.0), BLUE);
    }

    #[test]
    fn text_colour_contrasts() {
        assert_eq!(WHITE.text_on(), Rgb(0, 0, 0));
        assert_eq!(BLUE.text_on(), Rgb(255, 255, 255));
    }
}
