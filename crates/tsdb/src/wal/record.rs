//! WAL record payloads: what the head logs (new series, float samples, native histograms,
//! metadata) and its compact binary encoding.
//!
//! Every payload starts with one byte naming the record kind (numbers borrowed from Prometheus'
//! `tsdb/record` package, though the bytes are Sextant's own), followed by a varint entry count
//! and the entries:
//!
//! | kind | byte | entry |
//! | --- | --- | --- |
//! | series | 1 | uvarint ref, uvarint label count, then per label uvarint-length-prefixed name and value |
//! | samples | 2 | see below; value as 8 raw little-endian `f64` bits |
//! | exemplars | 4 | see below; value as `f64` bits, then the exemplar's labels like a series' (count, names and values) |
//! | metadata | 6 | kind byte ([`MetricType::to_u8`]), then metric family, unit and help as length-prefixed strings |
//! | histograms | 7 | see below; then the integer histogram |
//! | float histograms | 8 | see below; then the float histogram |
//!
//! Sample-like records (samples, exemplars, histograms, float histograms) with at least one entry store the
//! first entry's ref (uvarint) and timestamp (zigzag varint) once, then every entry (the first
//! included) as the zigzag-varint difference of its ref and timestamp to those, like Prometheus.
//! Differences use wrapping arithmetic, so any `u64`/`i64` pair round-trips. Floats are always
//! stored as raw bits, so NaN payloads such as the staleness marker survive bit for bit.
//!
//! A histogram is: counter-reset hint (u8), schema (zigzag varint), zero threshold (f64 bits),
//! zero count, count, sum, positive spans, negative spans, positive buckets, negative buckets,
//! custom values. Integer counts are uvarints, integer bucket deltas zigzag varints, float counts
//! and buckets f64 bits; spans are a uvarint count then (zigzag offset, uvarint length) pairs.
//!
//! [`decode`] checks every length against the bytes present, rejects trailing bytes and never
//! panics or allocates more than the input could describe.

use sextant_model::{
    CounterResetHint, Exemplar, FloatHistogram, Histogram, Label, Labels, Metadata, MetricType,
    Span,
};

use super::WalError;

/// Record kind byte of [`Record::Series`].
pub const TYPE_SERIES: u8 = 1;
/// Record kind byte of [`Record::Samples`].
pub const TYPE_SAMPLES: u8 = 2;
/// Record kind byte of [`Record::Exemplars`] (added later; logs without it still replay).
pub const TYPE_EXEMPLARS: u8 = 4;
/// Record kind byte of [`Record::Metadata`].
pub const TYPE_METADATA: u8 = 6;
/// Record kind byte of [`Record::Histograms`].
pub const TYPE_HISTOGRAMS: u8 = 7;
/// Record kind byte of [`Record::FloatHistograms`].
pub const TYPE_FLOAT_HISTOGRAMS: u8 = 8;

/// Whether `b` is the kind byte of a record this version can decode.
pub(crate) fn is_known_type(b: u8) -> bool {
    matches!(
        b,
        TYPE_SERIES
            | TYPE_SAMPLES
            | TYPE_EXEMPLARS
            | TYPE_METADATA
            | TYPE_HISTOGRAMS
            | TYPE_FLOAT_HISTOGRAMS
    )
}

/// One logical WAL record: a batch of entries of one kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// New series and the refs the head gave them.
    Series(Vec<RefSeries>),
    /// Float samples.
    Samples(Vec<RefSample>),
    /// Integer native histogram samples.
    Histograms(Vec<RefHistogram>),
    /// Float native histogram samples.
    FloatHistograms(Vec<RefFloatHistogram>),
    /// Metric metadata.
    Metadata(Vec<Metadata>),
    /// Exemplars of series with known refs.
    Exemplars(Vec<RefExemplar>),
}

impl Record {
    /// The kind byte that starts this record's payload.
    pub fn type_byte(&self) -> u8 {
        match self {
            Record::Series(_) => TYPE_SERIES,
            Record::Samples(_) => TYPE_SAMPLES,
            Record::Histograms(_) => TYPE_HISTOGRAMS,
            Record::FloatHistograms(_) => TYPE_FLOAT_HISTOGRAMS,
            Record::Metadata(_) => TYPE_METADATA,
            Record::Exemplars(_) => TYPE_EXEMPLARS,
        }
    }
}

/// A series and its head ref.
#[derive(Debug, Clone, PartialEq)]
pub struct RefSeries {
    pub r: u64,
    pub labels: Labels,
}

/// A float sample of the series with ref `r`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    pub r: u64,
    pub t: i64,
    pub v: f64,
}

/// An exemplar of the series with ref `r`; `e.ts` is the entry's timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct RefExemplar {
    pub r: u64,
    pub e: Exemplar,
}

/// An integer native histogram sample of the series with ref `r`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefHistogram {
    pub r: u64,
    pub t: i64,
    pub h: Histogram,
}

/// A float native histogram sample of the series with ref `r`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefFloatHistogram {
    pub r: u64,
    pub t: i64,
    pub h: FloatHistogram,
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_spans(out: &mut Vec<u8>, spans: &[Span]) {
    put_uvarint(out, spans.len() as u64);
    for s in spans {
        put_varint(out, i64::from(s.offset));
        put_uvarint(out, u64::from(s.length));
    }
}

fn put_f64s(out: &mut Vec<u8>, vs: &[f64]) {
    put_uvarint(out, vs.len() as u64);
    for v in vs {
        put_f64(out, *v);
    }
}

/// Writes the shared (ref, t) base and calls `entry` for every element after its deltas.
fn put_ref_time_entries<T>(
    out: &mut Vec<u8>,
    items: &[T],
    key: impl Fn(&T) -> (u64, i64),
    mut entry: impl FnMut(&mut Vec<u8>, &T),
) {
    put_uvarint(out, items.len() as u64);
    let Some(first) = items.first() else {
        return;
    };
    let (r0, t0) = key(first);
    put_uvarint(out, r0);
    put_varint(out, t0);
    for it in items {
        let (r, t) = key(it);
        put_varint(out, r.wrapping_sub(r0) as i64);
        put_varint(out, t.wrapping_sub(t0));
        entry(out, it);
    }
}

fn put_histogram(out: &mut Vec<u8>, h: &Histogram) {
    out.push(h.counter_reset_hint as u8);
    put_varint(out, i64::from(h.schema));
    put_f64(out, h.zero_threshold);
    put_uvarint(out, h.zero_count);
    put_uvarint(out, h.count);
    put_f64(out, h.sum);
    put_spans(out, &h.positive_spans);
    put_spans(out, &h.negative_spans);
    for buckets in [&h.positive_buckets, &h.negative_buckets] {
        put_uvarint(out, buckets.len() as u64);
        for b in buckets.iter() {
            put_varint(out, *b);
        }
    }
    put_f64s(out, &h.custom_values);
}

fn put_float_histogram(out: &mut Vec<u8>, h: &FloatHistogram) {
    out.push(h.counter_reset_hint as u8);
    put_varint(out, i64::from(h.schema));
    put_f64(out, h.zero_threshold);
    put_f64(out, h.zero_count);
    put_f64(out, h.count);
    put_f64(out, h.sum);
    put_spans(out, &h.positive_spans);
    put_spans(out, &h.negative_spans);
    put_f64s(out, &h.positive_buckets);
    put_f64s(out, &h.negative_buckets);
    put_f64s(out, &h.custom_values);
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(out, labels.len() as u64);
    for l in labels.iter() {
        put_str(out, &l.name);
        put_str(out, &l.value);
    }
}

/// Appends the payload of `rec` (kind byte and entries, no framing) to `out`.
pub fn encode(rec: &Record, out: &mut Vec<u8>) {
    out.push(rec.type_byte());
    match rec {
        Record::Series(series) => {
            put_uvarint(out, series.len() as u64);
            for s in series {
                put_uvarint(out, s.r);
                put_labels(out, &s.labels);
            }
        }
        Record::Samples(samples) => {
            put_ref_time_entries(out, samples, |s| (s.r, s.t), |out, s| put_f64(out, s.v));
        }
        Record::Exemplars(es) => {
            put_ref_time_entries(
                out,
                es,
                |x| (x.r, x.e.ts),
                |out, x| {
                    put_f64(out, x.e.value);
                    put_labels(out, &x.e.labels);
                },
            );
        }
        Record::Histograms(hs) => {
            put_ref_time_entries(out, hs, |s| (s.r, s.t), |out, s| put_histogram(out, &s.h));
        }
        Record::FloatHistograms(hs) => {
            put_ref_time_entries(
                out,
                hs,
                |s| (s.r, s.t),
                |out, s| put_float_histogram(out, &s.h),
            );
        }
        Record::Metadata(ms) => {
            put_uvarint(out, ms.len() as u64);
            for m in ms {
                out.push(m.kind.to_u8());
                put_str(out, &m.metric_family);
                put_str(out, &m.unit);
                put_str(out, &m.help);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// A cursor over a payload; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: &'static str) -> WalError {
        WalError::Decode {
            at: self.pos,
            reason,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn u8(&mut self) -> Result<u8, WalError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err("unexpected end of record"))?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], WalError> {
        if n > self.remaining() {
            return Err(self.err("length exceeds record"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn uvarint(&mut self) -> Result<u64, WalError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err("varint overflows 64 bits"))
    }

    fn varint(&mut self) -> Result<i64, WalError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, WalError> {
        i32::try_from(self.varint()?).map_err(|_| self.err("value out of i32 range"))
    }

    fn u32(&mut self) -> Result<u32, WalError> {
        u32::try_from(self.uvarint()?).map_err(|_| self.err("value out of u32 range"))
    }

    fn f64(&mut self) -> Result<f64, WalError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_bits(u64::from_le_bytes(a)))
    }

    fn string(&mut self) -> Result<String, WalError> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| self.err("length exceeds record"))?;
        let at = self.pos;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| WalError::Decode {
            at,
            reason: "string is not valid UTF-8",
        })
    }

    /// Reads an element count and returns it with a capacity the remaining bytes can justify
    /// (every element takes at least `min_size` bytes), so corrupt counts cannot exhaust memory.
    fn count(&mut self, min_size: usize) -> Result<(u64, usize), WalError> {
        let n = self.uvarint()?;
        let max = (self.remaining() / min_size.max(1)) as u64;
        if n > max {
            return Err(self.err("entry count exceeds record size"));
        }
        Ok((n, n as usize))
    }

    fn spans(&mut self) -> Result<Vec<Span>, WalError> {
        let (n, cap) = self.count(2)?;
        let mut v = Vec::with_capacity(cap);
        for _ in 0..n {
            let offset = self.i32()?;
            let length = self.u32()?;
            v.push(Span { offset, length });
        }
        Ok(v)
    }

    fn f64s(&mut self) -> Result<Vec<f64>, WalError> {
        let (n, cap) = self.count(8)?;
        let mut v = Vec::with_capacity(cap);
        for _ in 0..n {
            v.push(self.f64()?);
        }
        Ok(v)
    }

    fn i64s(&mut self) -> Result<Vec<i64>, WalError> {
        let (n, cap) = self.count(1)?;
        let mut v = Vec::with_capacity(cap);
        for _ in 0..n {
            v.push(self.varint()?);
        }
        Ok(v)
    }

    fn hint(&mut self) -> Result<CounterResetHint, WalError> {
        let b = self.u8()?;
        if b > 3 {
            return Err(self.err("unknown counter reset hint"));
        }
        Ok(CounterResetHint::from_u8(b))
    }

    fn histogram(&mut self) -> Result<Histogram, WalError> {
        Ok(Histogram {
            counter_reset_hint: self.hint()?,
            schema: self.i32()?,
            zero_threshold: self.f64()?,
            zero_count: self.uvarint()?,
            count: self.uvarint()?,
            sum: self.f64()?,
            positive_spans: self.spans()?,
            negative_spans: self.spans()?,
            positive_buckets: self.i64s()?,
            negative_buckets: self.i64s()?,
            custom_values: self.f64s()?,
        })
    }

    fn float_histogram(&mut self) -> Result<FloatHistogram, WalError> {
        Ok(FloatHistogram {
            counter_reset_hint: self.hint()?,
            schema: self.i32()?,
            zero_threshold: self.f64()?,
            zero_count: self.f64()?,
            count: self.f64()?,
            sum: self.f64()?,
            positive_spans: self.spans()?,
            negative_spans: self.spans()?,
            positive_buckets: self.f64s()?,
            negative_buckets: self.f64s()?,
            custom_values: self.f64s()?,
        })
    }

    /// Reads a label set as [`put_labels`] wrote it.
    fn labels(&mut self) -> Result<Labels, WalError> {
        let (nl, cap) = self.count(2)?;
        let mut labels: Vec<Label> = Vec::with_capacity(cap);
        for _ in 0..nl {
            let at = self.pos;
            let name = self.string()?;
            let value = self.string()?;
            // Labels are sorted, unique and never carry empty values; anything else was
            // not written by `encode`.
            if value.is_empty() || labels.last().is_some_and(|p| p.name >= name) {
                return Err(WalError::Decode {
                    at,
                    reason: "labels not sorted, unique and non-empty",
                });
            }
            labels.push(Label { name, value });
        }
        Ok(Labels::from_pairs(
            labels.into_iter().map(|l| (l.name, l.value)),
        ))
    }

    /// Reads the entries of a sample-like record: base (ref, t), then per entry the deltas and
    /// what `entry` reads. `min_size` is the least number of bytes one entry can take.
    fn ref_time_entries<T>(
        &mut self,
        min_size: usize,
        mut entry: impl FnMut(&mut Self, u64, i64) -> Result<T, WalError>,
    ) -> Result<Vec<T>, WalError> {
        let (n, cap) = self.count(min_size)?;
        let mut v = Vec::with_capacity(cap);
        if n == 0 {
            return Ok(v);
        }
        let r0 = self.uvarint()?;
        let t0 = self.varint()?;
        for _ in 0..n {
            let r = r0.wrapping_add(self.varint()? as u64);
            let t = t0.wrapping_add(self.varint()?);
            v.push(entry(self, r, t)?);
        }
        Ok(v)
    }
}

/// Decodes one record payload as written by [`encode`]. Never panics, whatever `buf` holds.
pub fn decode(buf: &[u8]) -> Result<Record, WalError> {
    let mut rd = Reader { buf, pos: 0 };
    let kind = rd.u8()?;
    let rec = match kind {
        TYPE_SERIES => {
            let (n, cap) = rd.count(2)?;
            let mut series = Vec::with_capacity(cap);
            for _ in 0..n {
                let r = rd.uvarint()?;
                let labels = rd.labels()?;
                series.push(RefSeries { r, labels });
            }
            Record::Series(series)
        }
        TYPE_SAMPLES => Record::Samples(
            rd.ref_time_entries(10, |rd, r, t| Ok(RefSample { r, t, v: rd.f64()? }))?,
        ),
        TYPE_EXEMPLARS => Record::Exemplars(rd.ref_time_entries(11, |rd, r, ts| {
            let value = rd.f64()?;
            let labels = rd.labels()?;
            Ok(RefExemplar {
                r,
                e: Exemplar { labels, value, ts },
            })
        })?),
        TYPE_HISTOGRAMS => Record::Histograms(rd.ref_time_entries(27, |rd, r, t| {
            Ok(RefHistogram {
                r,
                t,
                h: rd.histogram()?,
            })
        })?),
        TYPE_FLOAT_HISTOGRAMS => Record::FloatHistograms(rd.ref_time_entries(40, |rd, r, t| {
            Ok(RefFloatHistogram {
                r,
                t,
                h: rd.float_histogram()?,
            })
        })?),
        TYPE_METADATA => {
            let (n, cap) = rd.count(4)?;
            let mut ms = Vec::with_capacity(cap);
            for _ in 0..n {
                let at = rd.pos;
                let kind_byte = rd.u8()?;
                let kind = MetricType::from_u8(kind_byte);
                if kind.to_u8() != kind_byte {
                    return Err(WalError::Decode {
                        at,
                        reason: "unknown metric type",
                    });
                }
                let metric_family = rd.string()?;
                let unit = rd.string()?;
                let help = rd.string()?;
                ms.push(Metadata {
                    metric_family,
                    kind,
                    help,
                    unit,
                });
            }
            Record::Metadata(ms)
        }
        other => return Err(WalError::UnknownRecordType(other)),
    };
    if rd.remaining() != 0 {
        return Err(rd.err("trailing bytes after record"));
    }
    Ok(rec)
}
