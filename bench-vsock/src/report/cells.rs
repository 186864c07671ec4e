//! How numbers read in tables (terminal and Markdown alike).

use crate::summary::Spread;
use crate::workload::human_size;

/// Microseconds with precision that suits their size: `4.21`, `42.1`, `421`.
pub fn us(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// A rate with a k/M suffix: `950`, `12.3k`, `1.23M`.
pub fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.2}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// GB/s with three decimals.
pub fn gbps(x: f64) -> String {
    format!("{x:.3}")
}

/// Bytes in binary units.
pub fn bytes(n: u64) -> String {
    human_size(n)
}

/// A ratio: `1.23x`.
pub fn ratio(x: f64) -> String {
    format!("{x:.2}x")
}

/// A median with its range over repeats: `12.3k (11.9k–12.8k)`; just the median for one
/// value.
pub fn spread(s: &Spread, f: fn(f64) -> String) -> String {
    if s.min == s.max {
        f(s.median)
    } else {
        format!("{} ({}–{})", f(s.median), f(s.min), f(s.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(us(4.2134), "4.21");
        assert_eq!(us(42.13), "42.1");
        assert_eq!(us(421.3), "421");
        assert_eq!(rate(950.0), "950");
        assert_eq!(rate(1234.0), "1.23k");
        assert_eq!(rate(12_345.0), "12.3k");
        assert_eq!(rate(1_234_567.0), "1.23M");
        assert_eq!(ratio(1.234), "1.23x");
        let s = Spread {
            median: 2.0,
            min: 1.0,
            max: 3.0,
        };
        assert_eq!(spread(&s, ratio), "2.00x (1.00x–3.00x)");
    }
}
