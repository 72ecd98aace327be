//! Chunk encodings for native histograms, integer ([`HistogramChunk`]) and float
//! ([`FloatHistogramChunk`]).
//!
//! Histogram series are not flattened into float series: each chunk stores whole histograms,
//! following the design of Prometheus' `histogram.go` / `float_histogram.go`. The bucket layout
//! (zero threshold, schema, positive and negative spans, and custom bounds for schema -53) is
//! written once at the start of the chunk; every sample then stores only numbers. Integer chunks
//! store timestamp, counts and buckets as delta-of-deltas in Prometheus' "varbit" buckets, float
//! chunks XOR-encode each count against its previous value; the sum is always XOR-encoded.
//!
//! A chunk only holds samples with one layout and, for counters, no counter reset: `append`
//! returns [`AppendError::NewChunkNeeded`] otherwise and the caller starts a new chunk, whose
//! header then records (in its top two bits, as Prometheus does) whether the chunk started
//! because of a counter reset, is known not to have, is a gauge chunk, or is unknown.
//!
//! Iteration restores `counter_reset_hint`: `Gauge` for every sample of a gauge chunk, otherwise
//! the header's hint for the first sample and `NotCounterReset` for the rest. (Prometheus
//! reports a `NotCounterReset` header as `Unknown` on the first sample, in case the previous
//! chunk is gone; callers wanting that conservatism can map it themselves.) Unlike Prometheus, a
//! chunk is never recoded when new buckets appear: any span change cuts a new chunk.
//!
//! Byte layout, following Prometheus' field order and codecs (zero threshold byte, varbit
//! buckets, custom-bound encoding): 2 bytes big-endian sample count, 1 flag byte (bits 7..6:
//! counter-reset header), the layout, then samples. Sample 1 is `t` (varbit int), count and zero
//! count (varbit uint; float chunks: 64 raw bits), sum (64 raw bits) and the buckets (varbit
//! ints; float chunks: raw). Later samples are the `t` delta-of-delta, then count, zero count,
//! sum and buckets as delta-of-deltas (sum, and all float values: XOR). A staleness marker (sum is
//! the stale NaN) is written as an empty histogram without buckets, and after a staleness marker
//! only further markers fit in the chunk. Byte compatibility with Prometheus is intended but,
//! unlike for XOR chunks, not verified against Prometheus-written data.

use std::fmt::Debug;

use sextant_model::histogram::{HistogramError, CUSTOM_BUCKETS_SCHEMA};
use sextant_model::{is_stale_nan, CounterResetHint, FloatHistogram, Histogram, Span};

use super::bstream::{
    read_varbit_int, read_varbit_uint, write_varbit_int, write_varbit_uint, xor_read, xor_write,
    BitReader, BitWriter, NO_WINDOW,
};
use super::ChunkError;

/// Sample count (2 bytes) plus flag byte.
const HEADER: usize = 3;
/// Index of the flag byte.
const FLAG_POS: usize = 2;
/// Bits of the flag byte holding the counter-reset header.
const HINT_MASK: u8 = 0b1100_0000;

/// Why a sample cannot go into the current chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutReason {
    /// A counter reset was detected or announced by the sample's hint.
    CounterReset,
    /// Schema, zero threshold or spans differ from the chunk's.
    LayoutChange,
    /// The sample switches between gauge and counter histogram.
    GaugeTransition,
    /// The chunk ends with a staleness marker and the sample is not one.
    AfterStale,
    /// The chunk holds `u16::MAX` samples.
    Full,
}

impl CutReason {
    /// The counter-reset hint to give the first sample of the new chunk. Gauge histograms keep
    /// their `Gauge` hint instead.
    pub fn counter_reset_hint(self) -> CounterResetHint {
        match self {
            CutReason::CounterReset => CounterResetHint::CounterReset,
            _ => CounterResetHint::Unknown,
        }
    }
}

/// Why a histogram was not appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The sample does not fit this chunk; start a new chunk and append it there.
    #[error("histogram needs a new chunk: {reason:?}")]
    NewChunkNeeded { reason: CutReason },
    /// The histogram is internally inconsistent.
    #[error("invalid histogram: {0}")]
    Invalid(#[from] HistogramError),
}

fn header_bits(h: CounterResetHint) -> u8 {
    match h {
        CounterResetHint::Unknown => 0b0000_0000,
        CounterResetHint::CounterReset => 0b1000_0000,
        CounterResetHint::NotCounterReset => 0b0100_0000,
        CounterResetHint::Gauge => 0b1100_0000,
    }
}

fn hint_from_header(b: u8) -> CounterResetHint {
    match b & HINT_MASK {
        0b1000_0000 => CounterResetHint::CounterReset,
        0b0100_0000 => CounterResetHint::NotCounterReset,
        0b1100_0000 => CounterResetHint::Gauge,
        _ => CounterResetHint::Unknown,
    }
}

/// The part of a histogram fixed for a whole chunk.
#[derive(Clone, Debug, PartialEq, Default)]
struct Layout {
    schema: i32,
    zero_threshold: f64,
    positive_spans: Vec<Span>,
    negative_spans: Vec<Span>,
    custom_values: Vec<f64>,
}

/// Borrowed view of a sample's layout, for comparison and writing.
struct LayoutRef<'a> {
    schema: i32,
    zero_threshold: f64,
    positive_spans: &'a [Span],
    negative_spans: &'a [Span],
    custom_values: &'a [f64],
}

impl LayoutRef<'_> {
    fn to_owned(&self) -> Layout {
        Layout {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            positive_spans: self.positive_spans.to_vec(),
            negative_spans: self.negative_spans.to_vec(),
            custom_values: if self.schema == CUSTOM_BUCKETS_SCHEMA {
                self.custom_values.to_vec()
            } else {
                Vec::new()
            },
        }
    }
}

/// Float equality for layout values: `==` (so -0.0 matches 0.0, as after a reload), plus
/// identical bits (so a NaN matches itself).
fn same_f64(a: f64, b: f64) -> bool {
    a == b || a.to_bits() == b.to_bits()
}

fn all_same_f64(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_f64(*x, *y))
}

impl Layout {
    /// Why `l` cannot share a chunk with this layout, if it cannot.
    fn differs(&self, l: &LayoutRef<'_>) -> Option<CutReason> {
        if self.schema != l.schema || !same_f64(self.zero_threshold, l.zero_threshold) {
            return Some(CutReason::LayoutChange);
        }
        if self.schema == CUSTOM_BUCKETS_SCHEMA
            && !all_same_f64(&self.custom_values, l.custom_values)
        {
            // Prometheus treats changed custom bounds as a counter reset.
            return Some(CutReason::CounterReset);
        }
        if self.positive_spans != l.positive_spans || self.negative_spans != l.negative_spans {
            return Some(CutReason::LayoutChange);
        }
        None
    }

    fn bucket_counts(&self) -> (usize, usize) {
        let n = |s: &[Span]| {
            s.iter()
                .fold(0usize, |acc, s| acc.saturating_add(s.length as usize))
        };
        (n(&self.positive_spans), n(&self.negative_spans))
    }

    fn write(l: &LayoutRef<'_>, w: &mut BitWriter) {
        write_zero_threshold(w, l.zero_threshold);
        write_varbit_int(w, i64::from(l.schema));
        for spans in [l.positive_spans, l.negative_spans] {
            write_varbit_uint(w, spans.len() as u64);
            for s in spans {
                write_varbit_uint(w, u64::from(s.length));
                write_varbit_int(w, i64::from(s.offset));
            }
        }
        if l.schema == CUSTOM_BUCKETS_SCHEMA {
            write_varbit_uint(w, l.custom_values.len() as u64);
            for v in l.custom_values {
                write_custom_bound(w, *v);
            }
        }
    }

    fn read(r: &mut BitReader<'_>) -> Result<Layout, ChunkError> {
        let zero_threshold = read_zero_threshold(r)?;
        let schema = i32::try_from(read_varbit_int(r)?)
            .map_err(|_| ChunkError::Corrupt("schema out of range"))?;
        let mut spans = [Vec::new(), Vec::new()];
        for side in spans.iter_mut() {
            let n = read_varbit_uint(r)?;
            if n > (r.remaining() / 2) as u64 {
                return Err(ChunkError::Truncated);
            }
            for _ in 0..n {
                let length = u32::try_from(read_varbit_uint(r)?)
                    .map_err(|_| ChunkError::Corrupt("span length out of range"))?;
                let offset = i32::try_from(read_varbit_int(r)?)
                    .map_err(|_| ChunkError::Corrupt("span offset out of range"))?;
                side.push(Span { offset, length });
            }
        }
        let [positive_spans, negative_spans] = spans;
        let mut custom_values = Vec::new();
        if schema == CUSTOM_BUCKETS_SCHEMA {
            let n = read_varbit_uint(r)?;
            if n > r.remaining() as u64 {
                return Err(ChunkError::Truncated);
            }
            for _ in 0..n {
                custom_values.push(read_custom_bound(r)?);
            }
        }
        let layout = Layout {
            schema,
            zero_threshold,
            positive_spans,
            negative_spans,
            custom_values,
        };
        let (p, n) = layout.bucket_counts();
        // Every bucket needs at least one bit in the first sample; reject absurd span lengths
        // before allocating for them.
        if p.saturating_add(n) > r.remaining() {
            return Err(ChunkError::Truncated);
        }
        Ok(layout)
    }
}

/// Zero threshold as Prometheus stores it: one byte for 0 and for powers of two between
/// 2^-243 and 2^10, otherwise 255 followed by the 64 raw bits.
fn write_zero_threshold(w: &mut BitWriter, zt: f64) {
    let bits = zt.to_bits();
    if zt == 0.0 {
        w.write_byte(0);
        return;
    }
    let mantissa = bits & ((1u64 << 52) - 1);
    let biased = ((bits >> 52) & 0x7ff) as i64;
    // zt = 0.5 * 2^exp with exp = biased - 1022 when positive and the mantissa is zero.
    let exp = biased - 1022;
    if bits >> 63 == 0 && mantissa == 0 && biased != 0 && (-242..=11).contains(&exp) {
        w.write_byte((exp + 243) as u8);
    } else {
        w.write_byte(255);
        w.write_bits(bits, 64);
    }
}

/// Custom bucket bound as Prometheus stores it: multiples of 0.001 in `0..=33554.43` as the
/// unsigned varbit `bound * 1000 + 1`, anything else as a 0 bit followed by the 64 raw bits.
fn write_custom_bound(w: &mut BitWriter, f: f64) {
    let tf = f * 1000.0;
    let whole = (0.0..=33_554_430.0).contains(&tf) && (tf.round() as u64) as f64 / 1000.0 == f;
    if whole {
        write_varbit_uint(w, tf.round() as u64 + 1);
    } else {
        w.write_bit(false);
        w.write_bits(f.to_bits(), 64);
    }
}

fn read_custom_bound(r: &mut BitReader<'_>) -> Result<f64, ChunkError> {
    match read_varbit_uint(r)? {
        0 => Ok(f64::from_bits(r.read_bits(64)?)),
        b => Ok((b - 1) as f64 / 1000.0),
    }
}

fn read_zero_threshold(r: &mut BitReader<'_>) -> Result<f64, ChunkError> {
    match r.read_byte()? {
        0 => Ok(0.0),
        255 => Ok(f64::from_bits(r.read_bits(64)?)),
        b => {
            let biased = (i64::from(b) - 243 + 1022) as u64;
            Ok(f64::from_bits(biased << 52))
        }
    }
}

/// A float XOR-encoded against its predecessor, with its own zero window.
#[derive(Clone, Copy, Debug, PartialEq)]
struct XorVal {
    bits: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorVal {
    fn default() -> Self {
        XorVal {
            bits: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }
}

impl XorVal {
    fn raw(bits: u64) -> Self {
        XorVal {
            bits,
            ..XorVal::default()
        }
    }

    fn write(&mut self, w: &mut BitWriter, new: u64) {
        xor_write(w, new, self.bits, &mut self.leading, &mut self.trailing);
        self.bits = new;
    }

    fn read(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
        xor_read(r, &mut self.bits, &mut self.leading, &mut self.trailing)
    }
}

/// State shared by both histogram flavours: layout, time and sum.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Common {
    layout: Layout,
    t: i64,
    t_delta: i64,
    sum: XorVal,
    /// The last sample was a staleness marker.
    stale: bool,
}

impl Common {
    /// Writes the layout (empty for a staleness marker, as Prometheus does) and the first time.
    fn write_first_t(&mut self, w: &mut BitWriter, t: i64, layout: &LayoutRef<'_>, stale: bool) {
        let empty = LayoutRef {
            schema: 0,
            zero_threshold: 0.0,
            positive_spans: &[],
            negative_spans: &[],
            custom_values: &[],
        };
        let layout = if stale { &empty } else { layout };
        Layout::write(layout, w);
        self.layout = layout.to_owned();
        write_varbit_int(w, t);
        self.t = t;
        self.t_delta = 0;
    }

    fn write_next_t(&mut self, w: &mut BitWriter, t: i64) {
        let t_delta = t.wrapping_sub(self.t);
        write_varbit_int(w, t_delta.wrapping_sub(self.t_delta));
        self.t = t;
        self.t_delta = t_delta;
    }

    fn write_sum(&mut self, w: &mut BitWriter, sum: f64, first: bool) {
        if first {
            w.write_bits(sum.to_bits(), 64);
            self.sum = XorVal::raw(sum.to_bits());
        } else {
            self.sum.write(w, sum.to_bits());
        }
        self.stale = is_stale_nan(sum);
    }

    fn read_first_t(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
        self.layout = Layout::read(r)?;
        self.t = read_varbit_int(r)?;
        Ok(())
    }

    fn read_next_t(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
        let dod = read_varbit_int(r)?;
        self.t_delta = self.t_delta.wrapping_add(dod);
        self.t = self.t.wrapping_add(self.t_delta);
        Ok(())
    }

    fn read_sum(&mut self, r: &mut BitReader<'_>, first: bool) -> Result<(), ChunkError> {
        if first {
            self.sum = XorVal::raw(r.read_bits(64)?);
        } else {
            self.sum.read(r)?;
        }
        self.stale = is_stale_nan(f64::from_bits(self.sum.bits));
        Ok(())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The per-flavour part of a histogram chunk (integer or float counts). Sealed; implemented by
/// [`IntCounts`] and [`FloatCounts`].
pub trait Counts: sealed::Sealed + Clone + Debug + Default + PartialEq {
    /// The histogram type stored.
    type Value: Clone + Debug;

    #[doc(hidden)]
    fn sum(v: &Self::Value) -> f64;
    #[doc(hidden)]
    fn hint(v: &Self::Value) -> CounterResetHint;
    #[doc(hidden)]
    fn layout(v: &Self::Value) -> LayoutRefPub<'_>;
    #[doc(hidden)]
    fn validate(v: &Self::Value) -> Result<(), HistogramError>;
    #[doc(hidden)]
    fn decreased(&self, v: &Self::Value) -> bool;
    /// Writes count and zero count (`None`: a staleness marker, written as zeros).
    #[doc(hidden)]
    fn write_head(&mut self, w: &mut BitWriter, v: Option<&Self::Value>, first: bool);
    #[doc(hidden)]
    fn write_buckets(&mut self, w: &mut BitWriter, v: &Self::Value, first: bool);
    #[doc(hidden)]
    fn reset(&mut self, pos: usize, neg: usize);
    #[doc(hidden)]
    fn read_head(&mut self, r: &mut BitReader<'_>, first: bool) -> Result<(), ChunkError>;
    #[doc(hidden)]
    fn read_buckets(&mut self, r: &mut BitReader<'_>, first: bool) -> Result<(), ChunkError>;
    #[doc(hidden)]
    fn output(&self, c: &Common, hint: CounterResetHint) -> Self::Value;
}

/// Opaque layout view handed between [`Counts`] implementations and the chunk.
#[doc(hidden)]
pub struct LayoutRefPub<'a>(LayoutRef<'a>);

/// Integer counts: delta-of-delta varbit encoding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntCounts {
    cnt: u64,
    cnt_delta: i64,
    zcnt: u64,
    zcnt_delta: i64,
    /// Bucket values as in [`Histogram`] (delta-encoded across buckets), and their time deltas.
    pos: Vec<i64>,
    pos_delta: Vec<i64>,
    neg: Vec<i64>,
    neg_delta: Vec<i64>,
}

impl sealed::Sealed for IntCounts {}

/// Absolute bucket counts from the delta-across-buckets representation.
fn absolute(deltas: &[i64]) -> impl Iterator<Item = i64> + '_ {
    deltas.iter().scan(0i64, |acc, d| {
        *acc = acc.wrapping_add(*d);
        Some(*acc)
    })
}

impl Counts for IntCounts {
    type Value = Histogram;

    fn sum(v: &Histogram) -> f64 {
        v.sum
    }
    fn hint(v: &Histogram) -> CounterResetHint {
        v.counter_reset_hint
    }
    fn layout(v: &Histogram) -> LayoutRefPub<'_> {
        LayoutRefPub(LayoutRef {
            schema: v.schema,
            zero_threshold: v.zero_threshold,
            positive_spans: &v.positive_spans,
            negative_spans: &v.negative_spans,
            custom_values: &v.custom_values,
        })
    }
    fn validate(v: &Histogram) -> Result<(), HistogramError> {
        v.validate()
    }

    fn decreased(&self, v: &Histogram) -> bool {
        let buckets_down =
            |old: &[i64], new: &[i64]| absolute(old).zip(absolute(new)).any(|(o, n)| n < o);
        v.count < self.cnt
            || v.zero_count < self.zcnt
            || buckets_down(&self.pos, &v.positive_buckets)
            || buckets_down(&self.neg, &v.negative_buckets)
    }

    fn write_head(&mut self, w: &mut BitWriter, v: Option<&Histogram>, first: bool) {
        if first {
            let (cnt, zcnt) = v.map_or((0, 0), |v| (v.count, v.zero_count));
            write_varbit_uint(w, cnt);
            write_varbit_uint(w, zcnt);
            let (pos, neg) = v.map_or((Vec::new(), Vec::new()), |v| {
                (v.positive_buckets.clone(), v.negative_buckets.clone())
            });
            *self = IntCounts {
                cnt,
                cnt_delta: 0,
                zcnt,
                zcnt_delta: 0,
                pos_delta: vec![0; pos.len()],
                neg_delta: vec![0; neg.len()],
                pos,
                neg,
            };
            return;
        }
        match v {
            Some(v) => {
                let cnt_delta = (v.count as i64).wrapping_sub(self.cnt as i64);
                write_varbit_int(w, cnt_delta.wrapping_sub(self.cnt_delta));
                let zcnt_delta = (v.zero_count as i64).wrapping_sub(self.zcnt as i64);
                write_varbit_int(w, zcnt_delta.wrapping_sub(self.zcnt_delta));
                self.cnt = v.count;
                self.cnt_delta = cnt_delta;
                self.zcnt = v.zero_count;
                self.zcnt_delta = zcnt_delta;
            }
            None => {
                // Staleness markers store zero delta-of-deltas, like Prometheus; advance the
                // state exactly as a reader decoding them will.
                write_varbit_int(w, 0);
                write_varbit_int(w, 0);
                self.cnt = self.cnt.wrapping_add(self.cnt_delta as u64);
                self.zcnt = self.zcnt.wrapping_add(self.zcnt_delta as u64);
            }
        }
    }

    fn write_buckets(&mut self, w: &mut BitWriter, v: &Histogram, first: bool) {
        if first {
            for b in v.positive_buckets.iter().chain(&v.negative_buckets) {
                write_varbit_int(w, *b);
            }
            return;
        }
        for (vals, deltas, new) in [
            (&mut self.pos, &mut self.pos_delta, &v.positive_buckets),
            (&mut self.neg, &mut self.neg_delta, &v.negative_buckets),
        ] {
            for ((old, delta), b) in vals.iter_mut().zip(deltas.iter_mut()).zip(new) {
                let d = b.wrapping_sub(*old);
                write_varbit_int(w, d.wrapping_sub(*delta));
                *delta = d;
                *old = *b;
            }
        }
    }

    fn reset(&mut self, pos: usize, neg: usize) {
        *self = IntCounts {
            pos: vec![0; pos],
            pos_delta: vec![0; pos],
            neg: vec![0; neg],
            neg_delta: vec![0; neg],
            ..IntCounts::default()
        };
    }

    fn read_head(&mut self, r: &mut BitReader<'_>, first: bool) -> Result<(), ChunkError> {
        if first {
            self.cnt = read_varbit_uint(r)?;
            self.zcnt = read_varbit_uint(r)?;
        } else {
            self.cnt_delta = self.cnt_delta.wrapping_add(read_varbit_int(r)?);
            self.cnt = self.cnt.wrapping_add(self.cnt_delta as u64);
            self.zcnt_delta = self.zcnt_delta.wrapping_add(read_varbit_int(r)?);
            self.zcnt = self.zcnt.wrapping_add(self.zcnt_delta as u64);
        }
        Ok(())
    }

    fn read_buckets(&mut self, r: &mut BitReader<'_>, first: bool) -> Result<(), ChunkError> {
        if first {
            for b in self.pos.iter_mut().chain(self.neg.iter_mut()) {
                *b = read_varbit_int(r)?;
            }
            return Ok(());
        }
        for (vals, deltas) in [
            (&mut self.pos, &mut self.pos_delta),
            (&mut self.neg, &mut self.neg_delta),
        ] {
            for (v, d) in vals.iter_mut().zip(deltas.iter_mut()) {
                *d = d.wrapping_add(read_varbit_int(r)?);
                *v = v.wrapping_add(*d);
            }
        }
        Ok(())
    }

    fn output(&self, c: &Common, hint: CounterResetHint) -> Histogram {
        let sum = f64::from_bits(c.sum.bits);
        if c.stale {
            return Histogram {
                counter_reset_hint: hint,
                sum,
                ..Histogram::default()
            };
        }
        Histogram {
            counter_reset_hint: hint,
            schema: c.layout.schema,
            zero_threshold: c.layout.zero_threshold,
            zero_count: self.zcnt,
            count: self.cnt,
            sum,
            positive_spans: c.layout.positive_spans.clone(),
            negative_spans: c.layout.negative_spans.clone(),
            positive_buckets: self.pos.clone(),
            negative_buckets: self.neg.clone(),
            custom_values: c.layout.custom_values.clone(),
        }
    }
}

/// Float counts: each XOR-encoded against its previous value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FloatCounts {
    cnt: XorVal,
    zcnt: XorVal,
    pos: Vec<XorVal>,
    neg: Vec<XorVal>,
}

impl sealed::Sealed for FloatCounts {}

impl Counts for FloatCounts {
    type Value = FloatHistogram;

    fn sum(v: &FloatHistogram) -> f64 {
        v.sum
    }
    fn hint(v: &FloatHistogram) -> CounterResetHint {
        v.counter_reset_hint
    }
    fn layout(v: &FloatHistogram) -> LayoutRefPub<'_> {
        LayoutRefPub(LayoutRef {
            schema: v.schema,
            zero_threshold: v.zero_threshold,
            positive_spans: &v.positive_spans,
            negative_spans: &v.negative_spans,
            custom_values: &v.custom_values,
        })
    }
    fn validate(v: &FloatHistogram) -> Result<(), HistogramError> {
        v.validate()
    }

    fn decreased(&self, v: &FloatHistogram) -> bool {
        let down = |old: &XorVal, new: f64| new < f64::from_bits(old.bits);
        down(&self.cnt, v.count)
            || down(&self.zcnt, v.zero_count)
            || self
                .pos
                .iter()
                .zip(&v.positive_buckets)
                .any(|(o, n)| down(o, *n))
            || self
                .neg
                .iter()
                .zip(&v.negative_buckets)
                .any(|(o, n)| down(o, *n))
    }

    fn write_head(&mut self, w: &mut BitWriter, v: Option<&FloatHistogram>, first: bool) {
        let (cnt, zcnt) = v.map_or((0.0f64, 0.0f64), |v| (v.count, v.zero_count));
        if first {
            w.write_bits(cnt.to_bits(), 64);
            w.write_bits(zcnt.to_bits(), 64);
            let raw = |xs: &[f64]| xs.iter().map(|x| XorVal::raw(x.to_bits())).collect();
            *self = FloatCounts {
                cnt: XorVal::raw(cnt.to_bits()),
                zcnt: XorVal::raw(zcnt.to_bits()),
                pos: v.map_or_else(Vec::new, |v| raw(&v.positive_buckets)),
                neg: v.map_or_else(Vec::new, |v| raw(&v.negative_buckets)),
            };
        } else {
            self.cnt.write(w, cnt.to_bits());
            self.zcnt.write(w, zcnt.to_bits());
        }
    }

    fn write_buckets(&mut self, w: &mut BitWriter, v: &FloatHistogram, first: bool) {
        if first {
            for x in v.positive_buckets.iter().chain(&v.negative_buckets) {
                w.write_bits(x.to_bits(), 64);
            }
            return;
        }
        for (old, new) in self.pos.iter_mut().zip(&v.positive_buckets) {
            old.write(w, new.to_bits());
        }
        for (old, new) in self.neg.iter_mut().zip(&v.negative_buckets) {
            old.write(w, new.to_bits());
        }
    }

    fn reset(&mut self, pos: usize, neg: usize) {
        *self = FloatCounts {
            pos: vec![XorVal::default(); pos],
            neg: vec![XorVal::default(); neg],
            ..FloatCounts::default()
        };
    }

    fn read_head(&mut self, r: &mut BitReader<'_>, first: bool) -> Result<(), ChunkError> {
        if first {
            self.cnt = XorVal::raw(r.read_bits(64)?);
            self.zcnt = XorVal::raw(r.read_bits(64)?);
        } else {
            self.cnt.read(r)?;
            self.zcnt.read(r)?;
        }
        Ok(())
    }

    fn read_buckets(&mut self, r: &mut BitReader<'_>, first: bool) -> Result<(), ChunkError> {
        for b in self.pos.iter_mut().chain(self.neg.iter_mut()) {
            if first {
                *b = XorVal::raw(r.read_bits(64)?);
            } else {
                b.read(r)?;
            }
        }
        Ok(())
    }

    fn output(&self, c: &Common, hint: CounterResetHint) -> FloatHistogram {
        let sum = f64::from_bits(c.sum.bits);
        if c.stale {
            return FloatHistogram {
                counter_reset_hint: hint,
                sum,
                ..FloatHistogram::default()
            };
        }
        let vals = |xs: &[XorVal]| xs.iter().map(|x| f64::from_bits(x.bits)).collect();
        FloatHistogram {
            counter_reset_hint: hint,
            schema: c.layout.schema,
            zero_threshold: c.layout.zero_threshold,
            zero_count: f64::from_bits(self.zcnt.bits),
            count: f64::from_bits(self.cnt.bits),
            sum,
            positive_spans: c.layout.positive_spans.clone(),
            negative_spans: c.layout.negative_spans.clone(),
            positive_buckets: vals(&self.pos),
            negative_buckets: vals(&self.neg),
            custom_values: c.layout.custom_values.clone(),
        }
    }
}

/// A chunk of native histograms of one flavour; use [`HistogramChunk`] or
/// [`FloatHistogramChunk`].
#[derive(Clone, Debug, PartialEq)]
pub struct GenericHistogramChunk<C: Counts> {
    w: BitWriter,
    common: Common,
    counts: C,
}

/// A chunk of integer native histograms.
pub type HistogramChunk = GenericHistogramChunk<IntCounts>;
/// A chunk of float native histograms.
pub type FloatHistogramChunk = GenericHistogramChunk<FloatCounts>;
/// Iterator over a [`HistogramChunk`], yielding `(i64, Histogram)`.
pub type HistogramIter<'a> = GenericHistogramIter<'a, IntCounts>;
/// Iterator over a [`FloatHistogramChunk`], yielding `(i64, FloatHistogram)`.
pub type FloatHistogramIter<'a> = GenericHistogramIter<'a, FloatCounts>;

impl<C: Counts> Default for GenericHistogramChunk<C> {
    fn default() -> Self {
        Self::new()
    }
}

fn read_count(b: &[u8]) -> u16 {
    match b {
        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    }
}

impl<C: Counts> GenericHistogramChunk<C> {
    /// An empty chunk.
    pub fn new() -> Self {
        GenericHistogramChunk {
            w: BitWriter::with_header(HEADER),
            common: Common::default(),
            counts: C::default(),
        }
    }

    /// Loads an encoded chunk, decoding it fully to validate it and restore the appender state.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, ChunkError> {
        let mut it = GenericHistogramIter::<C>::new(&bytes);
        for _ in it.by_ref() {}
        if let Some(e) = it.err {
            return Err(e);
        }
        let end = it.r.bit_pos().max(HEADER * 8);
        let (common, counts) = (it.common, it.counts);
        Ok(GenericHistogramChunk {
            w: BitWriter::resume(bytes, end),
            common,
            counts,
        })
    }

    /// The encoded bytes (header included).
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    /// Number of samples stored.
    pub fn num_samples(&self) -> u16 {
        read_count(self.w.bytes())
    }

    /// The counter-reset header: what is known about the chunk's start (or `Gauge`).
    pub fn counter_reset_header(&self) -> CounterResetHint {
        hint_from_header(self.w.bytes().get(FLAG_POS).copied().unwrap_or(0))
    }

    /// Timestamp of the first sample, if any.
    pub fn first_time(&self) -> Option<i64> {
        if self.num_samples() == 0 {
            return None;
        }
        let mut r = BitReader::new(self.w.bytes(), HEADER);
        Layout::read(&mut r).ok()?;
        read_varbit_int(&mut r).ok()
    }

    /// Timestamp of the last sample, if any.
    pub fn last_time(&self) -> Option<i64> {
        (self.num_samples() > 0).then_some(self.common.t)
    }

    /// Appends a histogram at `t` (greater than the last timestamp, guaranteed by the caller).
    ///
    /// The first sample fixes the layout and records its `counter_reset_hint` in the chunk
    /// header. Later samples must have the same layout and, unless the chunk holds gauge
    /// histograms, no decrease of count, zero count or any bucket; otherwise
    /// [`AppendError::NewChunkNeeded`] says why and nothing is written. Staleness markers (sum is
    /// the stale NaN) always fit and carry no buckets.
    pub fn append(&mut self, t: i64, h: &C::Value) -> Result<(), AppendError> {
        let sum = C::sum(h);
        let stale = is_stale_nan(sum);
        if !stale {
            C::validate(h)?;
        }
        let num = self.num_samples();
        let cut = |reason| Err(AppendError::NewChunkNeeded { reason });
        if num == u16::MAX {
            return cut(CutReason::Full);
        }
        let LayoutRefPub(layout) = C::layout(h);
        if num == 0 {
            let flag = header_bits(C::hint(h));
            if let Some(b) = self.w.bytes_mut().get_mut(FLAG_POS) {
                *b = flag;
            }
            let full = (!stale).then_some(h);
            self.common.write_first_t(&mut self.w, t, &layout, stale);
            self.counts.write_head(&mut self.w, full, true);
            self.common.write_sum(&mut self.w, sum, true);
            if let Some(h) = full {
                self.counts.write_buckets(&mut self.w, h, true);
            }
        } else {
            if !stale {
                let gauge_chunk = self.counter_reset_header() == CounterResetHint::Gauge;
                let gauge = C::hint(h) == CounterResetHint::Gauge;
                if gauge_chunk != gauge {
                    return cut(CutReason::GaugeTransition);
                }
                if self.common.stale {
                    return cut(CutReason::AfterStale);
                }
                if !gauge && C::hint(h) == CounterResetHint::CounterReset {
                    return cut(CutReason::CounterReset);
                }
                if let Some(reason) = self.common.layout.differs(&layout) {
                    return cut(reason);
                }
                if !gauge && self.counts.decreased(h) {
                    return cut(CutReason::CounterReset);
                }
            }
            let full = (!stale).then_some(h);
            self.common.write_next_t(&mut self.w, t);
            self.counts.write_head(&mut self.w, full, false);
            self.common.write_sum(&mut self.w, sum, false);
            if let Some(h) = full {
                self.counts.write_buckets(&mut self.w, h, false);
            }
        }
        self.w.set_count(num + 1);
        Ok(())
    }

    /// Iterates over the samples in order.
    pub fn iter(&self) -> GenericHistogramIter<'_, C> {
        GenericHistogramIter::new(self.w.bytes())
    }
}

/// Iterator over the samples of a histogram chunk. It stops early at truncated or corrupt data;
/// [`err`](Self::err) then says why.
#[derive(Clone, Debug)]
pub struct GenericHistogramIter<'a, C: Counts> {
    r: BitReader<'a>,
    header: CounterResetHint,
    total: u16,
    read: u16,
    common: Common,
    counts: C,
    err: Option<ChunkError>,
}

impl<'a, C: Counts> GenericHistogramIter<'a, C> {
    /// Iterates over an encoded chunk (header included).
    pub fn new(bytes: &'a [u8]) -> Self {
        let err = (bytes.len() < HEADER).then_some(ChunkError::Truncated);
        GenericHistogramIter {
            r: BitReader::new(bytes, HEADER),
            header: hint_from_header(bytes.get(FLAG_POS).copied().unwrap_or(0)),
            total: read_count(bytes),
            read: 0,
            common: Common::default(),
            counts: C::default(),
            err,
        }
    }

    /// Why iteration stopped early, if it did.
    pub fn err(&self) -> Option<&ChunkError> {
        self.err.as_ref()
    }

    fn step(&mut self) -> Result<(), ChunkError> {
        let first = self.read == 0;
        if first {
            self.common.read_first_t(&mut self.r)?;
            let (p, n) = self.common.layout.bucket_counts();
            self.counts.reset(p, n);
        } else {
            self.common.read_next_t(&mut self.r)?;
        }
        self.counts.read_head(&mut self.r, first)?;
        self.common.read_sum(&mut self.r, first)?;
        if !self.common.stale {
            self.counts.read_buckets(&mut self.r, first)?;
        }
        Ok(())
    }
}

impl<C: Counts> Iterator for GenericHistogramIter<'_, C> {
    type Item = (i64, C::Value);

    fn next(&mut self) -> Option<Self::Item> {
        if self.err.is_some() || self.read >= self.total {
            return None;
        }
        if let Err(e) = self.step() {
            self.err = Some(e);
            return None;
        }
        self.read += 1;
        let hint = match self.header {
            CounterResetHint::Gauge => CounterResetHint::Gauge,
            h if self.read == 1 => h,
            _ => CounterResetHint::NotCounterReset,
        };
        Some((self.common.t, self.counts.output(&self.common, hint)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sextant_model::STALE_NAN;

    /// A random valid layout: (schema, zero threshold, positive spans, negative spans, custom).
    type LayoutParts = (i32, f64, Vec<Span>, Vec<Span>, Vec<f64>);

    fn spans() -> impl Strategy<Value = Vec<Span>> {
        (
            -60i32..60,
            proptest::collection::vec((0i32..4, 0u32..5), 0..4),
        )
            .prop_map(|(first, rest)| {
                rest.iter()
                    .enumerate()
                    .map(|(i, &(off, length))| Span {
                        offset: if i == 0 { first } else { off },
                        length,
                    })
                    .collect()
            })
    }

    fn layout() -> impl Strategy<Value = LayoutParts> {
        let zt = prop_oneof![
            Just(0.0),
            Just(2f64.powi(-128)),
            Just(0.001),
            Just(1024.0),
            Just(f64::MIN_POSITIVE / 4.0),
        ];
        prop_oneof![
            3 => (-4i32..=8, zt, spans(), spans()).prop_map(|(s, z, p, n)| (s, z, p, n, vec![])),
            1 => (spans(), proptest::collection::btree_set(-1000i32..1000, 0..6)).prop_map(
                |(p, cv)| {
                    let cv = cv.into_iter().map(|x| f64::from(x) / 8.0).collect();
                    (CUSTOM_BUCKETS_SCHEMA, 0.0, p, vec![], cv)
                }
            ),
        ]
    }

    fn n_buckets(s: &[Span]) -> usize {
        s.iter().map(|s| s.length as usize).sum()
    }

    fn deltas(abs: &[i64]) -> Vec<i64> {
        let mut prev = 0;
        abs.iter()
            .map(|&a| {
                let d = a - prev;
                prev = a;
                d
            })
            .collect()
    }

    /// A series of histograms on one layout. Counters only grow unless `gauge`.
    fn series(gauge: bool) -> impl Strategy<Value = (Vec<i64>, Vec<Histogram>)> {
        (layout(), 1usize..40, any::<u64>()).prop_flat_map(move |(l, n, seed)| {
            let (schema, zt, ps, ns, cv) = l;
            let (np, nn) = (n_buckets(&ps), n_buckets(&ns));
            let step = if gauge {
                (-1000i64..1000).boxed()
            } else {
                prop_oneof![Just(0i64), 0i64..5, 0i64..100_000].boxed()
            };
            let ts = proptest::collection::vec(1i64..100_000, n);
            let incs = proptest::collection::vec(
                (
                    proptest::collection::vec(step.clone(), np + nn + 1),
                    prop_oneof![
                        any::<u64>(),
                        (0u32..1000).prop_map(|x| f64::from(x).to_bits())
                    ],
                ),
                n,
            );
            (ts, incs).prop_map(move |(ts, incs)| {
                let mut t = (seed % 2_000_000) as i64 - 1_000_000;
                let mut abs = vec![1_000_000i64; np + nn + 1];
                let mut times = Vec::new();
                let mut out = Vec::new();
                for (dt, (inc, sum)) in ts.into_iter().zip(incs) {
                    for (a, i) in abs.iter_mut().zip(&inc) {
                        *a = (*a + i).max(0);
                    }
                    let sum = f64::from_bits(sum);
                    let sum = if is_stale_nan(sum) { 1.0 } else { sum };
                    let zero_count = abs[0] as u64;
                    let h = Histogram {
                        counter_reset_hint: if gauge {
                            CounterResetHint::Gauge
                        } else {
                            CounterResetHint::NotCounterReset
                        },
                        schema,
                        zero_threshold: zt,
                        zero_count,
                        count: abs.iter().map(|&a| a as u64).sum(),
                        sum,
                        positive_spans: ps.clone(),
                        negative_spans: ns.clone(),
                        positive_buckets: deltas(&abs[1..=np]),
                        negative_buckets: deltas(&abs[np + 1..]),
                        custom_values: cv.clone(),
                    };
                    times.push(t);
                    out.push(h);
                    t += dt;
                }
                (times, out)
            })
        })
    }

    /// Bit-exact comparison key (sums may be NaN).
    fn key_int(h: &Histogram) -> (u64, Histogram) {
        (
            h.sum.to_bits(),
            Histogram {
                sum: 0.0,
                ..h.clone()
            },
        )
    }

    fn key_float(h: &FloatHistogram) -> (u64, String) {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (
            h.sum.to_bits(),
            format!(
                "{:?} {} {} {} {} {:?} {:?} {:?} {:?} {:?}",
                h.counter_reset_hint,
                h.schema,
                h.zero_threshold.to_bits(),
                h.zero_count.to_bits(),
                h.count.to_bits(),
                h.positive_spans,
                h.negative_spans,
                bits(&h.positive_buckets),
                bits(&h.negative_buckets),
                bits(&h.custom_values)
            ),
        )
    }

    fn expected_hint(first: CounterResetHint, i: usize, gauge: bool) -> CounterResetHint {
        if gauge {
            CounterResetHint::Gauge
        } else if i == 0 {
            first
        } else {
            CounterResetHint::NotCounterReset
        }
    }

    fn first_hint() -> impl Strategy<Value = CounterResetHint> {
        prop_oneof![
            Just(CounterResetHint::Unknown),
            Just(CounterResetHint::CounterReset),
            Just(CounterResetHint::NotCounterReset),
        ]
    }

    fn decode_int(c: &HistogramChunk) -> Vec<(i64, Histogram)> {
        let mut it = c.iter();
        let v: Vec<_> = it.by_ref().collect();
        assert!(it.err().is_none(), "{:?}", it.err());
        v
    }

    fn decode_float(c: &FloatHistogramChunk) -> Vec<(i64, FloatHistogram)> {
        let mut it = c.iter();
        let v: Vec<_> = it.by_ref().collect();
        assert!(it.err().is_none(), "{:?}", it.err());
        v
    }

    #[test]
    fn zero_threshold_encoding() {
        for zt in [
            0.0,
            -0.0,
            2f64.powi(-128),
            2f64.powi(-243),
            2f64.powi(-244),
            1024.0,
            2048.0,
            0.001,
            f64::NAN,
            f64::INFINITY,
            -1.0,
        ] {
            let mut w = BitWriter::with_header(0);
            write_zero_threshold(&mut w, zt);
            let one_byte = zt == 0.0
                || (zt > 0.0 && zt.log2().fract() == 0.0 && (-243.0..=10.0).contains(&zt.log2()));
            assert_eq!(w.bit_len(), if one_byte { 8 } else { 72 }, "{zt}");
            let got = read_zero_threshold(&mut BitReader::new(w.bytes(), 0)).unwrap();
            // -0.0 is stored as 0, as Prometheus does; everything else is bit-exact.
            let want = if zt == 0.0 { 0.0 } else { zt };
            assert_eq!(got.to_bits(), want.to_bits(), "{zt}");
        }
        // Prometheus' default threshold 2^-128 is stored as the single byte 116.
        let mut w = BitWriter::with_header(0);
        write_zero_threshold(&mut w, 2f64.powi(-128));
        assert_eq!(w.bytes(), &[116, 0]);
    }

    #[test]
    fn custom_bound_encoding() {
        // (bound, bits used): small multiples of 0.001 are varbits of bound*1000+1.
        for (f, bits) in [
            (0.0, 5),
            (0.005, 5),
            (1.5, 17),
            (33554.43, 32),
            (33554.431, 65),
            (-1.0, 65),
            (0.1234, 65),
            (f64::INFINITY, 65),
            (f64::NAN, 65),
        ] {
            let mut w = BitWriter::with_header(0);
            write_custom_bound(&mut w, f);
            assert_eq!(w.bit_len(), bits, "{f}");
            let got = read_custom_bound(&mut BitReader::new(w.bytes(), 0)).unwrap();
            assert_eq!(got.to_bits(), f.to_bits(), "{f}");
        }
    }

    #[test]
    fn header_and_hints() {
        let h = Histogram {
            counter_reset_hint: CounterResetHint::CounterReset,
            count: 3,
            zero_count: 3,
            sum: 1.5,
            ..Histogram::default()
        };
        let mut c = HistogramChunk::new();
        assert_eq!(c.bytes(), &[0, 0, 0]);
        c.append(10, &h).unwrap();
        assert_eq!(c.bytes()[..3], [0, 1, 0b1000_0000]);
        assert_eq!(c.counter_reset_header(), CounterResetHint::CounterReset);
        let h2 = Histogram {
            counter_reset_hint: CounterResetHint::Unknown,
            count: 4,
            ..h.clone()
        };
        c.append(20, &h2).unwrap();
        let hints: Vec<_> = decode_int(&c)
            .iter()
            .map(|(_, h)| h.counter_reset_hint)
            .collect();
        assert_eq!(
            hints,
            [
                CounterResetHint::CounterReset,
                CounterResetHint::NotCounterReset
            ]
        );
        assert_eq!(c.first_time(), Some(10));
        assert_eq!(c.last_time(), Some(20));
        // An explicit reset hint always cuts; so does a switch to gauge.
        let before = c.bytes().to_vec();
        let err = |reason| Err(AppendError::NewChunkNeeded { reason });
        assert_eq!(c.append(30, &h), err(CutReason::CounterReset));
        let g = Histogram {
            counter_reset_hint: CounterResetHint::Gauge,
            ..h2.clone()
        };
        assert_eq!(c.append(30, &g), err(CutReason::GaugeTransition));
        assert_eq!(c.bytes(), &before[..]);
        // Invalid histograms are rejected.
        let bad = Histogram {
            positive_buckets: vec![1],
            ..h2.clone()
        };
        assert!(matches!(c.append(30, &bad), Err(AppendError::Invalid(_))));
        // Stale markers fit anywhere, and only stale markers may follow them.
        let stale = Histogram {
            sum: STALE_NAN,
            ..Histogram::default()
        };
        c.append(30, &stale).unwrap();
        c.append(40, &stale).unwrap();
        assert_eq!(c.append(50, &h2), err(CutReason::AfterStale));
        let got = decode_int(&c);
        assert!(is_stale_nan(got[2].1.sum) && is_stale_nan(got[3].1.sum));
        assert_eq!(got[3].0, 40);
        let re = HistogramChunk::from_bytes(c.bytes().to_vec()).unwrap();
        assert_eq!(re, c);
    }

    #[test]
    fn extreme_timestamps() {
        let ts = [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX];
        let mut c = FloatHistogramChunk::new();
        for (i, t) in ts.iter().enumerate() {
            let f = FloatHistogram {
                count: i as f64,
                sum: -(i as f64),
                ..FloatHistogram::default()
            };
            c.append(*t, &f).unwrap();
        }
        let got: Vec<i64> = decode_float(&c).into_iter().map(|(t, _)| t).collect();
        assert_eq!(got, ts);
        assert_eq!(
            FloatHistogramChunk::from_bytes(c.bytes().to_vec()).unwrap(),
            c
        );
    }

    #[test]
    fn short_inputs() {
        assert!(HistogramChunk::from_bytes(vec![]).is_err());
        assert!(FloatHistogramChunk::from_bytes(vec![0, 0]).is_err());
        assert_eq!(
            HistogramChunk::from_bytes(vec![0, 0, 0xc0])
                .unwrap()
                .num_samples(),
            0
        );
        // Span lengths far beyond the data are rejected before allocating.
        let mut w = BitWriter::with_header(HEADER);
        write_zero_threshold(&mut w, 0.0);
        write_varbit_int(&mut w, 0);
        write_varbit_uint(&mut w, 1);
        write_varbit_uint(&mut w, u64::from(u32::MAX));
        write_varbit_int(&mut w, 0);
        let mut b = w.bytes().to_vec();
        b[1] = 1;
        assert_eq!(HistogramChunk::from_bytes(b), Err(ChunkError::Truncated));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn int_roundtrip_and_reload((ts, hs) in series(false), first in first_hint(),
                                    split in any::<prop::sample::Index>()) {
            let mut hs = hs;
            hs[0].counter_reset_hint = first;
            let mut c = HistogramChunk::new();
            for (t, h) in ts.iter().zip(&hs) {
                prop_assert!(h.validate().is_ok());
                prop_assert_eq!(c.append(*t, h), Ok(()));
            }
            let got = decode_int(&c);
            prop_assert_eq!(got.len(), hs.len());
            for (i, ((t, h), (gt, gh))) in ts.iter().zip(&hs).zip(&got).enumerate() {
                prop_assert_eq!(t, gt);
                let want = Histogram { counter_reset_hint: expected_hint(first, i, false), ..h.clone() };
                prop_assert_eq!(key_int(gh), key_int(&want));
            }
            // Reload at a split point and continue: identical bytes.
            let k = split.index(hs.len() + 1);
            let mut part = HistogramChunk::new();
            for (t, h) in ts.iter().zip(&hs).take(k) {
                part.append(*t, h).unwrap();
            }
            let mut re = HistogramChunk::from_bytes(part.bytes().to_vec()).unwrap();
            prop_assert_eq!(&re, &part);
            for (t, h) in ts.iter().zip(&hs).skip(k) {
                re.append(*t, h).unwrap();
            }
            prop_assert_eq!(re.bytes(), c.bytes());
        }

        #[test]
        fn int_counter_reset_detected((ts, hs) in series(false), which in any::<prop::sample::Index>()) {
            let mut c = HistogramChunk::new();
            for (t, h) in ts.iter().zip(&hs) {
                c.append(*t, h).unwrap();
            }
            let last = hs[hs.len() - 1].clone();
            let nb = last.positive_buckets.len() + last.negative_buckets.len();
            let mut h = Histogram { counter_reset_hint: CounterResetHint::Unknown, ..last.clone() };
            match which.index(nb + 2) {
                0 => h.count -= 1,
                1 => { h.zero_count -= 1; h.count -= 1; }
                i => {
                    // Lower one bucket's absolute count by one, keeping the others.
                    let i = i - 2;
                    let np = h.positive_buckets.len();
                    let (b, j) = if i < np { (&mut h.positive_buckets, i) } else { (&mut h.negative_buckets, i - np) };
                    b[j] -= 1;
                    if j + 1 < b.len() { b[j + 1] += 1; }
                    h.count -= 1;
                }
            }
            let before = c.bytes().to_vec();
            let t = ts[ts.len() - 1] + 1;
            prop_assert_eq!(c.append(t, &h), Err(AppendError::NewChunkNeeded { reason: CutReason::CounterReset }));
            prop_assert_eq!(c.bytes(), &before[..]);
            // Layout changes are detected too.
            let mut l = last.clone();
            l.schema = if l.schema == 8 { 7 } else if l.schema == CUSTOM_BUCKETS_SCHEMA { 0 } else { l.schema + 1 };
            prop_assert_eq!(c.append(t, &l), Err(AppendError::NewChunkNeeded { reason: CutReason::LayoutChange }));
            let mut l = last.clone();
            l.positive_spans.push(Span { offset: 1, length: 1 });
            l.positive_buckets.push(0);
            prop_assert_eq!(c.append(t, &l), Err(AppendError::NewChunkNeeded { reason: CutReason::LayoutChange }));
            if last.schema == CUSTOM_BUCKETS_SCHEMA {
                let mut l = last.clone();
                l.custom_values.push(1e9);
                prop_assert_eq!(c.append(t, &l), Err(AppendError::NewChunkNeeded { reason: CutReason::CounterReset }));
            }
            // The new chunk records the reset.
            let mut n = HistogramChunk::new();
            h.counter_reset_hint = CutReason::CounterReset.counter_reset_hint();
            n.append(t, &h).unwrap();
            prop_assert_eq!(decode_int(&n)[0].1.counter_reset_hint, CounterResetHint::CounterReset);
        }

        #[test]
        fn int_gauge_roundtrip((ts, hs) in series(true)) {
            let mut c = HistogramChunk::new();
            for (t, h) in ts.iter().zip(&hs) {
                prop_assert_eq!(c.append(*t, h), Ok(()));
            }
            let got = decode_int(&c);
            for ((t, h), (gt, gh)) in ts.iter().zip(&hs).zip(&got) {
                prop_assert_eq!(t, gt);
                prop_assert_eq!(key_int(gh), key_int(h));
            }
            let counter = Histogram { counter_reset_hint: CounterResetHint::Unknown, ..hs[0].clone() };
            prop_assert_eq!(c.append(i64::MAX, &counter),
                Err(AppendError::NewChunkNeeded { reason: CutReason::GaugeTransition }));
        }

        #[test]
        fn float_roundtrip_and_reload((ts, hs) in series(false), gauge in any::<bool>(),
                                      split in any::<prop::sample::Index>(), first in first_hint()) {
            let mut fs: Vec<FloatHistogram> = hs.iter().map(|h| h.to_float()).collect();
            for (i, f) in fs.iter_mut().enumerate() {
                if gauge {
                    f.counter_reset_hint = CounterResetHint::Gauge;
                    // Gauges may go down and hold any float.
                    f.count = (i as f64) * -0.5;
                } else if i == 0 {
                    f.counter_reset_hint = first;
                }
            }
            let mut c = FloatHistogramChunk::new();
            for (t, f) in ts.iter().zip(&fs) {
                prop_assert!(f.validate().is_ok());
                prop_assert_eq!(c.append(*t, f), Ok(()));
            }
            let got = decode_float(&c);
            prop_assert_eq!(got.len(), fs.len());
            for (i, ((t, f), (gt, gf))) in ts.iter().zip(&fs).zip(&got).enumerate() {
                prop_assert_eq!(t, gt);
                let want = FloatHistogram { counter_reset_hint: expected_hint(first, i, gauge), ..f.clone() };
                prop_assert_eq!(key_float(gf), key_float(&want));
            }
            let k = split.index(fs.len() + 1);
            let mut part = FloatHistogramChunk::new();
            for (t, f) in ts.iter().zip(&fs).take(k) {
                part.append(*t, f).unwrap();
            }
            let mut re = FloatHistogramChunk::from_bytes(part.bytes().to_vec()).unwrap();
            prop_assert_eq!(&re, &part);
            for (t, f) in ts.iter().zip(&fs).skip(k) {
                re.append(*t, f).unwrap();
            }
            prop_assert_eq!(re.bytes(), c.bytes());
            if !gauge {
                let mut down = fs[fs.len() - 1].clone();
                down.counter_reset_hint = CounterResetHint::NotCounterReset;
                down.count -= 1.0;
                prop_assert_eq!(c.append(i64::MAX, &down),
                    Err(AppendError::NewChunkNeeded { reason: CutReason::CounterReset }));
                if let Some(b) = down.positive_buckets.first_mut() {
                    down.count += 1.0;
                    *b -= 0.5;
                    prop_assert_eq!(c.append(i64::MAX, &down),
                        Err(AppendError::NewChunkNeeded { reason: CutReason::CounterReset }));
                }
            }
        }

        #[test]
        fn histogram_garbage_and_truncation_never_panic(
            (ts, hs) in series(false),
            garbage in proptest::collection::vec(any::<u8>(), 0..80),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut c = HistogramChunk::new();
            let mut f = FloatHistogramChunk::new();
            for (t, h) in ts.iter().zip(&hs) {
                c.append(*t, h).unwrap();
                f.append(*t, &h.to_float()).unwrap();
            }
            for bytes in [c.bytes(), f.bytes()] {
                let k = cut.index(bytes.len());
                for input in [&bytes[..k], &garbage[..]] {
                    let mut it = HistogramIter::new(input);
                    let _ = it.by_ref().count();
                    let mut it = FloatHistogramIter::new(input);
                    let _ = it.by_ref().count();
                    if let Ok(mut c) = HistogramChunk::from_bytes(input.to_vec()) {
                        let _ = c.append(i64::MAX, &hs[0]);
                        let _ = c.iter().count();
                    }
                    if let Ok(mut c) = FloatHistogramChunk::from_bytes(input.to_vec()) {
                        let _ = c.append(i64::MAX, &hs[0].to_float());
                        let _ = c.iter().count();
                    }
                }
            }
            // Single bit flips in valid chunks never panic either.
            let bytes = c.bytes().to_vec();
            let bit = cut.index(bytes.len() * 8);
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let _ = HistogramIter::new(&flipped).count();
            if let Ok(mut c) = HistogramChunk::from_bytes(flipped) {
                let _ = c.append(i64::MAX, &hs[0]);
            }
            let mut flipped = f.bytes().to_vec();
            let bit = cut.index(flipped.len() * 8);
            flipped[bit / 8] ^= 1 << (bit % 8);
            let _ = FloatHistogramIter::new(&flipped).count();
            if let Ok(mut c) = FloatHistogramChunk::from_bytes(flipped) {
                let _ = c.append(i64::MAX, &hs[0].to_float());
            }
            // Truncation loses samples only with an error.
            let k = cut.index(c.bytes().len());
            let short = &c.bytes()[..k];
            let mut it = HistogramIter::new(short);
            let n = it.by_ref().count();
            prop_assert!(n == hs.len() || it.err().is_some());
            if k * 8 < c.w.bit_len() {
                // Only Go's trailing empty byte may be cut without losing data.
                prop_assert!(n < hs.len());
            }
        }
    }
}
