//! Samples: a timestamp (milliseconds since the Unix epoch) with a float or a native histogram,
//! and Prometheus' staleness marker.

use crate::histogram::{FloatHistogram, Histogram};

/// The bit pattern Prometheus uses to mark a series stale (a specific NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// The staleness marker as an f64.
pub const STALE_NAN: f64 = unsafe_stale_nan();

const fn unsafe_stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is exactly the staleness marker (not any other NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A float sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

impl Sample {
    pub fn new(t: i64, v: f64) -> Self {
        Sample { t, v }
    }

    /// Bit-exact equality (NaNs with equal bits compare equal).
    pub fn bit_eq(&self, o: &Sample) -> bool {
        self.t == o.t && self.v.to_bits() == o.v.to_bits()
    }
}

/// What a sample carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Float(f64),
    Histogram(Box<Histogram>),
    FloatHistogram(Box<FloatHistogram>),
}
