//! Zero-copy reader for the remote write 1.0 `prometheus.WriteRequest`.
//!
//! The hot parts of the message (`TimeSeries.labels` and `TimeSeries.samples`) are read in place:
//! label names and values are UTF-8-checked `&str` slices of the input, so each string is
//! allocated once (when the `Labels` is built) instead of twice, and samples are read straight
//! into model `Sample`s. The rare parts (histograms, exemplars, metadata) are handed to prost's
//! generated `merge_field` for that one field, so their decoding is prost's own.
//!
//! The reader mirrors prost's decoding exactly, including where it reports errors and with what
//! text: it walks one `&[u8]` cursor over the whole input like prost's `merge_loop` does (so a
//! sub-message that overruns its declared length is read on and then reported as "delimited
//! length exceeded", as prost does), uses prost's own varint/key/scalar/skip primitives, passes
//! prost the same recursion depth for skipped groups, and builds the same
//! `Message.field: ` location stack in its error text.

use std::fmt;
use std::sync::OnceLock;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{
    check_wire_type, decode_key, decode_varint, skip_field, DecodeContext, WireType,
};
use prost::Message;
use sextant_model::Sample;

use super::proto::v1;

/// A decoding error with the same text prost would give for the same input.
pub(super) enum WireError {
    /// An error produced by a prost primitive or generated `merge_field`.
    Prost(prost::DecodeError),
    /// One of the errors prost raises from code we re-implement.
    Own(Box<OwnError>),
}

pub(super) struct OwnError {
    description: &'static str,
    stack: Vec<(&'static str, &'static str)>,
}

impl WireError {
    #[cold]
    fn own(description: &'static str) -> Self {
        WireError::Own(Box::new(OwnError {
            description,
            stack: Vec::new(),
        }))
    }

    #[cold]
    fn underflow() -> Self {
        Self::own("buffer underflow")
    }

    /// Adds a location, innermost first, like `prost::DecodeError::push`.
    #[cold]
    fn push(mut self, message: &'static str, field: &'static str) -> Self {
        match &mut self {
            WireError::Prost(e) => e.push(message, field),
            WireError::Own(e) => e.stack.push((message, field)),
        }
        self
    }
}

impl From<prost::DecodeError> for WireError {
    #[cold]
    fn from(e: prost::DecodeError) -> Self {
        WireError::Prost(e)
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Prost(e) => fmt::Display::fmt(e, f),
            WireError::Own(e) => {
                // Same layout as prost's `DecodeError` Display.
                f.write_str("failed to decode Protobuf message: ")?;
                for (message, field) in &e.stack {
                    write!(f, "{message}.{field}: ")?;
                }
                f.write_str(e.description)
            }
        }
    }
}

/// The decode contexts prost would use one and two message levels below the top
/// (`TimeSeries` fields and `Label`/`Sample` fields). prost only exposes a way to make a top-level
/// context, so these are captured once from prost's own recursion through a probe message.
/// They only matter for skipping deeply nested unknown groups, where prost stops at a depth limit.
struct Contexts {
    top: DecodeContext,
    series: DecodeContext,
    leaf: DecodeContext,
}

fn contexts() -> &'static Contexts {
    static CTX: OnceLock<Contexts> = OnceLock::new();
    CTX.get_or_init(|| {
        let mut probe = CtxProbe::default();
        // A top-level message holding field 1 = { field 1 = { field 1: varint 0 } }.
        let bytes: &[u8] = &[0x0a, 0x04, 0x0a, 0x02, 0x08, 0x00];
        let top = DecodeContext::default();
        // The probe only ever succeeds on this fixed input; fall back to the top context should
        // a future prost behave differently (that can only make group skipping more lenient).
        let _ = probe.merge(bytes);
        Contexts {
            series: probe.seen.first().cloned().unwrap_or_else(|| top.clone()),
            leaf: probe.seen.get(1).cloned().unwrap_or_else(|| top.clone()),
            top,
        }
    })
}

/// Records the contexts prost hands to `merge_field` below the top level.
#[derive(Debug, Default)]
struct CtxProbe {
    depth: usize,
    seen: Vec<DecodeContext>,
}

impl Message for CtxProbe {
    fn encode_raw(&self, _buf: &mut impl BufMut) {}

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        if self.depth > 0 {
            self.seen.push(ctx.clone());
        }
        if wire_type == WireType::LengthDelimited {
            self.depth += 1;
            prost::encoding::message::merge(wire_type, self, buf, ctx)
        } else {
            skip_field(wire_type, tag, buf, ctx)
        }
    }

    fn encoded_len(&self) -> usize {
        0
    }

    fn clear(&mut self) {}
}

/// What the reader hands over for each decoded time series.
pub(super) struct SeriesParts<'s, 'a> {
    /// Label pairs in wire order, borrowed from the input.
    pub labels: &'s [(&'a str, &'a str)],
    pub samples: &'s [Sample],
    /// Histograms and exemplars as decoded by prost; the consumer may drain them.
    pub rare: &'s mut v1::TimeSeries,
}

/// Reads a `prometheus.WriteRequest`, calling `on_series` for each time series in order. Returns
/// the metadata entries. Any decoding error fails the whole request (after some series may have
/// been handed over).
pub(super) fn read_write_request<'a>(
    raw: &'a [u8],
    mut on_series: impl FnMut(SeriesParts<'_, 'a>),
) -> Result<Vec<v1::MetricMetadata>, WireError> {
    let ctx = contexts();
    let mut buf: &'a [u8] = raw;
    let mut labels: Vec<(&'a str, &'a str)> = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut rare = v1::TimeSeries::default();
    let mut meta = v1::WriteRequest::default();
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match tag {
            1 => {
                labels.clear();
                samples.clear();
                rare.exemplars.clear();
                rare.histograms.clear();
                read_time_series(
                    wire_type,
                    &mut buf,
                    ctx,
                    &mut labels,
                    &mut samples,
                    &mut rare,
                )
                .map_err(|e| e.push("WriteRequest", "timeseries"))?;
                on_series(SeriesParts {
                    labels: &labels,
                    samples: &samples,
                    rare: &mut rare,
                });
            }
            // Metadata (tag 3) is rare: prost decodes it, with its own error locations.
            3 => meta.merge_field(tag, wire_type, &mut buf, ctx.top.clone())?,
            _ => skip_field(wire_type, tag, &mut buf, ctx.top.clone())?,
        }
    }
    Ok(meta.metadata)
}

/// Starts a length-delimited sub-message like prost's `merge_repeated` + `merge_loop`: checks
/// the wire type, reads the length, and returns the remaining length at which the message ends.
#[inline(always)]
fn enter_message(wire_type: WireType, buf: &mut &[u8]) -> Result<usize, WireError> {
    check_wire_type(WireType::LengthDelimited, wire_type)?;
    let len = decode_varint(buf)?;
    let remaining = buf.len();
    if len > remaining as u64 {
        return Err(WireError::underflow());
    }
    Ok(remaining - len as usize)
}

/// Ends a sub-message like prost's `merge_loop`: fields may have run past the declared end.
#[inline(always)]
fn leave_message(buf: &[u8], limit: usize) -> Result<(), WireError> {
    if buf.len() != limit {
        return Err(WireError::own("delimited length exceeded"));
    }
    Ok(())
}

fn read_time_series<'a>(
    wire_type: WireType,
    buf: &mut &'a [u8],
    ctx: &Contexts,
    labels: &mut Vec<(&'a str, &'a str)>,
    samples: &mut Vec<Sample>,
    rare: &mut v1::TimeSeries,
) -> Result<(), WireError> {
    let limit = enter_message(wire_type, buf)?;
    while buf.len() > limit {
        let (tag, wire_type) = decode_key(buf)?;
        match tag {
            1 => {
                let l =
                    read_label(wire_type, buf, ctx).map_err(|e| e.push("TimeSeries", "labels"))?;
                labels.push(l);
            }
            2 => {
                let s = read_sample(wire_type, buf, ctx)
                    .map_err(|e| e.push("TimeSeries", "samples"))?;
                samples.push(s);
            }
            // Exemplars (3) and histograms (4): prost's generated code, same context depth.
            3 | 4 => rare.merge_field(tag, wire_type, buf, ctx.series.clone())?,
            _ => skip_field(wire_type, tag, buf, ctx.series.clone())?,
        }
    }
    leave_message(buf, limit)
}

#[inline]
fn read_label<'a>(
    wire_type: WireType,
    buf: &mut &'a [u8],
    ctx: &Contexts,
) -> Result<(&'a str, &'a str), WireError> {
    let limit = enter_message(wire_type, buf)?;
    let mut name = "";
    let mut value = "";
    while buf.len() > limit {
        let (tag, wire_type) = decode_key(buf)?;
        match tag {
            1 => name = read_str(wire_type, buf).map_err(|e| e.push("Label", "name"))?,
            2 => value = read_str(wire_type, buf).map_err(|e| e.push("Label", "value"))?,
            _ => skip_field(wire_type, tag, buf, ctx.leaf.clone())?,
        }
    }
    leave_message(buf, limit)?;
    Ok((name, value))
}

/// A protobuf `string` as a slice of the input, checked like prost's `string::merge`.
#[inline]
fn read_str<'a>(wire_type: WireType, buf: &mut &'a [u8]) -> Result<&'a str, WireError> {
    check_wire_type(WireType::LengthDelimited, wire_type)?;
    let len = decode_varint(buf)?;
    if len > buf.len() as u64 {
        return Err(WireError::underflow());
    }
    let (bytes, rest) = buf.split_at(len as usize);
    *buf = rest;
    std::str::from_utf8(bytes)
        .map_err(|_| WireError::own("invalid string value: data is not UTF-8 encoded"))
}

#[inline]
fn read_sample(wire_type: WireType, buf: &mut &[u8], ctx: &Contexts) -> Result<Sample, WireError> {
    let limit = enter_message(wire_type, buf)?;
    let mut value = 0.0f64;
    let mut timestamp = 0i64;
    while buf.len() > limit {
        let (tag, wire_type) = decode_key(buf)?;
        match tag {
            1 => prost::encoding::double::merge(wire_type, &mut value, buf, ctx.leaf.clone())
                .map_err(|e| WireError::from(e).push("Sample", "value"))?,
            2 => prost::encoding::int64::merge(wire_type, &mut timestamp, buf, ctx.leaf.clone())
                .map_err(|e| WireError::from(e).push("Sample", "timestamp"))?,
            _ => skip_field(wire_type, tag, buf, ctx.leaf.clone())?,
        }
    }
    leave_message(buf, limit)?;
    Ok(Sample::new(timestamp, value))
}
