//! Repeated measurements as markdown cells: the median with the min–max range.

/// The median, minimum and maximum of repeated measurements (NaNs left out).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

impl Spread {
    /// The spread of `values`; `None` when none is a number.
    pub(crate) fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: values[0],
            max: values[n - 1],
            runs: n,
        })
    }

    /// `median (min–max)` with `decimals` decimals; just the value for a single run.
    pub(crate) fn cell(&self, decimals: usize) -> String {
        if self.runs == 1 || self.min == self.max {
            format!("{:.decimals$}", self.median)
        } else {
            format!(
                "{:.decimals$} ({:.decimals$}–{:.decimals$})",
                self.median, self.min, self.max
            )
        }
    }
}

/// The cell of an optional spread: `–` when there is nothing to show.
pub(crate) fn cell(spread: Option<Spread>, decimals: usize) -> String {
    spread.map_or_else(|| "–".to_string(), |s| s.cell(decimals))
}

/// `ours / theirs` of the medians, with whether it meets `target` (`at_most`: ours/theirs
/// must be at most the target, else at least).
pub(crate) fn ratio(
    ours: Option<Spread>,
    theirs: Option<Spread>,
    target: f64,
    at_most: bool,
) -> String {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs.median > 0.0 => {
            let ratio = ours.median / theirs.median;
            let met = if at_most {
                ratio <= target
            } else {
                ratio >= target
            };
            format!("{ratio:.2} {}", verdict(met))
        }
        _ => "–".to_string(),
    }
}

/// A met or missed target.
pub(crate) fn verdict(met: bool) -> &'static str {
    if met {
        "✓"
    } else {
        "✗"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        let spread = Spread::of([3.0, 1.0, f64::NAN, 2.0]).unwrap();
        assert_eq!(spread.cell(1), "2.0 (1.0–3.0)");
        assert_eq!(Spread::of([4.0, 1.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of([5.0]).unwrap().cell(0), "5");
        assert!(Spread::of([f64::NAN]).is_none());
    }

    #[test]
    fn ratios_against_targets() {
        let a = Spread::of([3.0]);
        let b = Spread::of([10.0]);
        assert_eq!(ratio(a, b, 0.6, true), "0.30 ✓");
        assert_eq!(ratio(b, a, 1.5, false), "3.33 ✓");
        assert_eq!(ratio(b, a, 0.6, true), "3.33 ✗");
        assert_eq!(ratio(a, None, 0.6, true), "–");
    }
}
