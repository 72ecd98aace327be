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
//! Byte layout: 2 bytes big-endian sample count, 1 flag byte (bits 7..6: counter-reset header),
//! the layout, then samples. Sample 1 is `t` (varbit int), sum (64 raw bits) and, unless the sum
//! is the staleness marker, count, zero count and buckets raw. Later samples are `t`
//! delta-of-delta, sum XOR, then (unless stale) the counts and buckets. Stale markers carry no
//! buckets, and after a stale marker only further stale markers fit in the chunk.

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

fn bits_eq(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl Layout {
    /// Why `l` cannot share a chunk with this layout, if it cannot.
    fn differs(&self, l: &LayoutRef<'_>) -> Option<CutReason> {
        if self.schema != l.schema || self.zero_threshold.to_bits() != l.zero_threshold.to_bits() {
            return Some(CutReason::LayoutChange);
        }
        if self.schema == CUSTOM_BUCKETS_SCHEMA && !bits_eq(&self.custom_values, l.custom_values) {
            // Prometheus treats changed custom bounds as a counter reset.
            return Some(CutReason::CounterReset);
        }
        if self.positive_spans != l.positive_spans || self.negative_spans != l.negative_spans {
            return Some(CutReason::LayoutChange);
        }
        None
    }

    fn bucket_counts(&self) -> (usize, usize) {
        let n = |s: &[Span]| s.iter().map(|s| s.length as usize).sum::<usize>();
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
                w.write_bits(v.to_bits(), 64);
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
            if n > (r.remaining() / 64) as u64 {
                return Err(ChunkError::Truncated);
            }
            for _ in 0..n {
                custom_values.push(f64::from_bits(r.read_bits(64)?));
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
    if bits == 0 {
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

/// State shared by both histogram flavours: everything but the counts.
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
    fn write_first(&mut self, w: &mut BitWriter, t: i64, layout: &LayoutRef<'_>, sum: f64) {
        let stale = is_stale_nan(sum);
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
        w.write_bits(sum.to_bits(), 64);
        self.t = t;
        self.t_delta = 0;
        self.sum = XorVal::raw(sum.to_bits());
        self.stale = stale;
    }

    fn write_next(&mut self, w: &mut BitWriter, t: i64, sum: f64) {
        let t_delta = t.wrapping_sub(self.t);
        write_varbit_int(w, t_delta.wrapping_sub(self.t_delta));
        self.sum.write(w, sum.to_bits());
        self.t = t;
        self.t_delta = t_delta;
        self.stale = is_stale_nan(sum);
    }

    fn read_first(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
        self.layout = Layout::read(r)?;
        self.t = read_varbit_int(r)?;
        self.sum = XorVal::raw(r.read_bits(64)?);
        self.stale = is_stale_nan(f64::from_bits(self.sum.bits));
        Ok(())
    }

    fn read_next(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
        let dod = read_varbit_int(r)?;
        self.t_delta = self.t_delta.wrapping_add(dod);
        self.t = self.t.wrapping_add(self.t_delta);
        self.sum.read(r)?;
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
    #[doc(hidden)]
    fn write_first(&mut self, w: &mut BitWriter, v: &Self::Value);
    #[doc(hidden)]
    fn write_next(&mut self, w: &mut BitWriter, v: &Self::Value);
    #[doc(hidden)]
    fn reset(&mut self, pos: usize, neg: usize);
    #[doc(hidden)]
    fn read_first(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError>;
    #[doc(hidden)]
    fn read_next(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError>;
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

    fn write_first(&mut self, w: &mut BitWriter, v: &Histogram) {
        write_varbit_uint(w, v.count);
        write_varbit_uint(w, v.zero_count);
        for b in v.positive_buckets.iter().chain(&v.negative_buckets) {
            write_varbit_int(w, *b);
        }
        *self = IntCounts {
            cnt: v.count,
            cnt_delta: 0,
            zcnt: v.zero_count,
            zcnt_delta: 0,
            pos: v.positive_buckets.clone(),
            pos_delta: vec![0; v.positive_buckets.len()],
            neg: v.negative_buckets.clone(),
            neg_delta: vec![0; v.negative_buckets.len()],
        };
    }

    fn write_next(&mut self, w: &mut BitWriter, v: &Histogram) {
        let cnt_delta = (v.count as i64).wrapping_sub(self.cnt as i64);
        write_varbit_int(w, cnt_delta.wrapping_sub(self.cnt_delta));
        let zcnt_delta = (v.zero_count as i64).wrapping_sub(self.zcnt as i64);
        write_varbit_int(w, zcnt_delta.wrapping_sub(self.zcnt_delta));
        self.cnt = v.count;
        self.cnt_delta = cnt_delta;
        self.zcnt = v.zero_count;
        self.zcnt_delta = zcnt_delta;
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

    fn read_first(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
        self.cnt = read_varbit_uint(r)?;
        self.zcnt = read_varbit_uint(r)?;
        for b in self.pos.iter_mut().chain(self.neg.iter_mut()) {
            *b = read_varbit_int(r)?;
        }
        Ok(())
    }

    fn read_next(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
        self.cnt_delta = self.cnt_delta.wrapping_add(read_varbit_int(r)?);
        self.cnt = self.cnt.wrapping_add(self.cnt_delta as u64);
        self.zcnt_delta = self.zcnt_delta.wrapping_add(read_varbit_int(r)?);
        self.zcnt = self.zcnt.wrapping_add(self.zcnt_delta as u64);
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

    fn write_first(&mut self, w: &mut BitWriter, v: &FloatHistogram) {
        let vals = [v.count, v.zero_count];
        for x in vals
            .iter()
            .chain(&v.positive_buckets)
            .chain(&v.negative_buckets)
        {
            w.write_bits(x.to_bits(), 64);
        }
        let raw = |xs: &[f64]| xs.iter().map(|x| XorVal::raw(x.to_bits())).collect();
        *self = FloatCounts {
            cnt: XorVal::raw(v.count.to_bits()),
            zcnt: XorVal::raw(v.zero_count.to_bits()),
            pos: raw(&v.positive_buckets),
            neg: raw(&v.negative_buckets),
        };
    }

    fn write_next(&mut self, w: &mut BitWriter, v: &FloatHistogram) {
        self.cnt.write(w, v.count.to_bits());
        self.zcnt.write(w, v.zero_count.to_bits());
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

    fn read_first(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
        self.cnt = XorVal::raw(r.read_bits(64)?);
        self.zcnt = XorVal::raw(r.read_bits(64)?);
        for b in self.pos.iter_mut().chain(self.neg.iter_mut()) {
            *b = XorVal::raw(r.read_bits(64)?);
        }
        Ok(())
    }

    fn read_next(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
        self.cnt.read(r)?;
        self.zcnt.read(r)?;
        for b in self.pos.iter_mut().chain(self.neg.iter_mut()) {
            b.read(r)?;
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
            self.w.bytes_mut()[FLAG_POS] = flag;
            self.common.write_first(&mut self.w, t, &layout, sum);
            if stale {
                self.counts.reset(0, 0);
            } else {
                self.counts.write_first(&mut self.w, h);
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
            self.common.write_next(&mut self.w, t, sum);
            if !stale {
                self.counts.write_next(&mut self.w, h);
            }
        }
        let n = (num + 1).to_be_bytes();
        self.w.bytes_mut()[..2].copy_from_slice(&n);
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
        if self.read == 0 {
            self.common.read_first(&mut self.r)?;
            let (p, n) = self.common.layout.bucket_counts();
            self.counts.reset(p, n);
            if !self.common.stale {
                self.counts.read_first(&mut self.r)?;
            }
        } else {
            self.common.read_next(&mut self.r)?;
            if !self.common.stale {
                self.counts.read_next(&mut self.r)?;
            }
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
