//! The float chunk encoding of on-disk blocks (encoding byte [`ENCODING_FLOAT_BLOCK`]).
//!
//! The head keeps Prometheus' XOR chunks, which cost 3–4 bytes per counter sample. Blocks are
//! immutable and read far less often than they are kept, so they use a denser encoding in the
//! spirit of VictoriaMetrics:
//!
//! * timestamps: first value, first delta, then delta-of-deltas, all zig-zag varints;
//! * values: when the values are decimals with a common exponent (`v == m · 10^e` exactly, which
//!   covers integral counters and gauges like `0.25`), the integers `m` are stored as zig-zag
//!   varint deltas or delta-of-deltas (whichever is smaller). Values that do not survive that
//!   round-trip bit for bit (NaN incl. the staleness marker, ±Inf, `-0.0`, too many digits) are
//!   stored as exceptions with their raw bits. When exceptions dominate, the values fall back to
//!   Gorilla XOR bits;
//! * the whole payload is then compressed with zstd when that makes it smaller.
//!
//! Decoding is always bit-exact: the encoder checks every decimal value with the very function
//! the decoder uses. Decoding never panics on corrupt data; it returns [`ChunkError`].
//!
//! Layout of the chunk data:
//! ```text
//! flag u8 (0 = raw payload, 1 = zstd)  [if zstd: uvarint raw_len] payload-or-zstd-frame
//! payload: uvarint n
//!          varint t0, varint t1-t0, varint dod(t2) ... dod(t(n-1))      (wrapping arithmetic)
//!          mode u8: 0 = XOR bits | 1 = decimal deltas | 2 = decimal delta-of-deltas
//!          XOR:     64 raw bits of v0, then Gorilla XOR of each next value (bit stream to end)
//!          decimal: varint e, uvarint n_exceptions, n_exceptions × (uvarint index gap, u64 LE
//!                   bits), then varint m0 [, varint m1-m0] then deltas / delta-of-deltas; an
//!                   exception's slot carries the previous m.
//! ```

use sextant_model::Sample;

use crate::chunkenc::bstream::{xor_read, xor_write, BitReader, BitWriter, NO_WINDOW};
use crate::chunkenc::ChunkError;

/// Encoding byte of block float chunks (distinct from Prometheus' 1/2/3).
pub const ENCODING_FLOAT_BLOCK: u8 = 0x81;

/// Most samples written into one block float chunk.
pub const MAX_SAMPLES_PER_BLOCK_CHUNK: usize = 4096;

/// zstd level used for block chunks.
const ZSTD_LEVEL: i32 = 3;

/// Refuse to decompress chunks claiming more than this many bytes (corruption guard).
const MAX_RAW_LEN: u64 = 64 << 20;

const MODE_XOR: u8 = 0;
const MODE_DELTA: u8 = 1;
const MODE_DOD: u8 = 2;

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Largest integer magnitude that converts to f64 exactly.
const MAX_EXACT: i64 = 1 << 53;

/// `m · 10^e`, computed exactly as the decoder does (both factors exact, one rounding).
fn dec(m: i64, e: i32) -> Option<f64> {
    let p = *POW10.get(e.unsigned_abs() as usize)?;
    Some(if e >= 0 { m as f64 * p } else { m as f64 / p })
}

/// The decimal form `(m, e)` of `v` with the fewest digits, if any, and `|m| <= 2^53`.
fn decimal_of(v: f64) -> Option<(i64, i32)> {
    if !v.is_finite() {
        return None;
    }
    let bits = v.to_bits();
    let check = |m: f64, e: i32| -> Option<(i64, i32)> {
        if m.abs() > MAX_EXACT as f64 {
            return None;
        }
        let m = m as i64;
        (dec(m, e)?.to_bits() == bits).then_some((m, e))
    };
    if v.fract() == 0.0 {
        if let Some(r) = check(v, 0) {
            return Some(r);
        }
        for e in 1..=22 {
            if let Some(r) = check((v / POW10[e as usize]).round(), e) {
                return Some(r);
            }
        }
        return None;
    }
    for k in 1..=22i32 {
        let m = (v * POW10[k as usize]).round();
        if m.abs() > MAX_EXACT as f64 {
            return None;
        }
        if let Some(r) = check(m, -k) {
            return Some(r);
        }
    }
    None
}

pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v as u64) << 1) ^ ((v >> 63) as u64)
}

pub(crate) fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag(v));
}

fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// A bounds-checked cursor over bytes.
pub(crate) struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        ByteReader { data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ChunkError> {
        let b = *self.data.get(self.pos).ok_or(ChunkError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ChunkError> {
        let end = self.pos.checked_add(n).ok_or(ChunkError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(ChunkError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64, ChunkError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64, ChunkError> {
        let mut x: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(ChunkError::Corrupt("varint overflows 64 bits"));
            }
            x |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err(ChunkError::Corrupt("varint overflows 64 bits"))
    }

    pub(crate) fn varint(&mut self) -> Result<i64, ChunkError> {
        let ux = self.uvarint()?;
        let x = (ux >> 1) as i64;
        Ok(if ux & 1 != 0 { !x } else { x })
    }
}

/// Writes `vals` as first value, first delta, then delta-of-deltas (wrapping).
fn put_dod(buf: &mut Vec<u8>, vals: impl Iterator<Item = i64>) {
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    for (i, v) in vals.enumerate() {
        match i {
            0 => put_varint(buf, v),
            1 => {
                prev_delta = v.wrapping_sub(prev);
                put_varint(buf, prev_delta);
            }
            _ => {
                let d = v.wrapping_sub(prev);
                put_varint(buf, d.wrapping_sub(prev_delta));
                prev_delta = d;
            }
        }
        prev = v;
    }
}

fn read_dod(r: &mut ByteReader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), ChunkError> {
    let (mut prev, mut delta) = (0i64, 0i64);
    for i in 0..n {
        let x = r.varint()?;
        let v = match i {
            0 => x,
            1 => {
                delta = x;
                prev.wrapping_add(delta)
            }
            _ => {
                delta = delta.wrapping_add(x);
                prev.wrapping_add(delta)
            }
        };
        out.push(v);
        prev = v;
    }
    Ok(())
}

fn put_delta(buf: &mut Vec<u8>, vals: impl Iterator<Item = i64>) {
    let mut prev = 0i64;
    for v in vals {
        put_varint(buf, v.wrapping_sub(prev));
        prev = v;
    }
}

fn read_delta(r: &mut ByteReader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), ChunkError> {
    let mut prev = 0i64;
    for _ in 0..n {
        prev = prev.wrapping_add(r.varint()?);
        out.push(prev);
    }
    Ok(())
}

/// Encoded size of `vals` as deltas and as delta-of-deltas.
fn delta_sizes(vals: &[i64]) -> (usize, usize) {
    let (mut d_sz, mut dod_sz) = (0usize, 0usize);
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    for (i, &v) in vals.iter().enumerate() {
        let d = v.wrapping_sub(prev);
        d_sz += uvarint_len(zigzag(d));
        dod_sz += uvarint_len(zigzag(if i < 2 { d } else { d.wrapping_sub(prev_delta) }));
        prev_delta = d;
        prev = v;
    }
    (d_sz, dod_sz)
}

/// Decimal value section, or `None` when too many values are not decimals.
fn encode_decimal(samples: &[Sample]) -> Option<Vec<u8>> {
    let n = samples.len();
    let decs: Vec<Option<(i64, i32)>> = samples.iter().map(|s| decimal_of(s.v)).collect();
    let e = decs.iter().flatten().map(|&(_, e)| e).min()?;
    let mut ms = Vec::with_capacity(n);
    let mut exceptions: Vec<(usize, u64)> = Vec::new();
    let mut prev_m = 0i64;
    for (i, (s, d)) in samples.iter().zip(&decs).enumerate() {
        let scaled = d.and_then(|(m, ei)| {
            let f = 10i64.checked_pow(u32::try_from(ei - e).ok()?)?;
            let m = m.checked_mul(f)?;
            (m.abs() <= MAX_EXACT && dec(m, e)?.to_bits() == s.v.to_bits()).then_some(m)
        });
        match scaled {
            Some(m) => prev_m = m,
            None => exceptions.push((i, s.v.to_bits())),
        }
        ms.push(prev_m);
    }
    if exceptions.len() * 2 > n {
        return None;
    }
    let (d_sz, dod_sz) = delta_sizes(&ms);
    let mut out = Vec::with_capacity(d_sz.min(dod_sz) + 16 + exceptions.len() * 10);
    out.push(if d_sz <= dod_sz { MODE_DELTA } else { MODE_DOD });
    put_varint(&mut out, i64::from(e));
    put_uvarint(&mut out, exceptions.len() as u64);
    let mut last = 0usize;
    for &(i, bits) in &exceptions {
        put_uvarint(&mut out, (i - last) as u64);
        out.extend_from_slice(&bits.to_le_bytes());
        last = i;
    }
    if d_sz <= dod_sz {
        put_delta(&mut out, ms.iter().copied());
    } else {
        put_dod(&mut out, ms.iter().copied());
    }
    Some(out)
}

fn encode_xor(samples: &[Sample]) -> Vec<u8> {
    let mut w = BitWriter::with_header(1);
    w.bytes_mut()[0] = MODE_XOR;
    let (mut leading, mut trailing) = (NO_WINDOW, 0u8);
    let mut prev = 0u64;
    for (i, s) in samples.iter().enumerate() {
        let bits = s.v.to_bits();
        if i == 0 {
            w.write_bits(bits, 64);
        } else {
            xor_write(&mut w, bits, prev, &mut leading, &mut trailing);
        }
        prev = bits;
    }
    w.bytes().to_vec()
}

/// Encodes samples (any order is preserved; sorted input compresses best) into chunk data.
pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(samples.len() * 3 + 16);
    put_uvarint(&mut raw, samples.len() as u64);
    if !samples.is_empty() {
        put_dod(&mut raw, samples.iter().map(|s| s.t));
        let xor = encode_xor(samples);
        match encode_decimal(samples) {
            Some(d) if d.len() <= xor.len() => raw.extend_from_slice(&d),
            _ => raw.extend_from_slice(&xor),
        }
    }
    let mut out = Vec::with_capacity(raw.len() / 2 + 16);
    match zstd::bulk::compress(&raw, ZSTD_LEVEL) {
        Ok(z) if z.len() + uvarint_len(raw.len() as u64) < raw.len() => {
            out.push(1);
            put_uvarint(&mut out, raw.len() as u64);
            out.extend_from_slice(&z);
        }
        _ => {
            out.push(0);
            out.extend_from_slice(&raw);
        }
    }
    out
}

/// Decodes chunk data written by [`encode`].
pub fn decode(data: &[u8]) -> Result<Vec<Sample>, ChunkError> {
    let mut r = ByteReader::new(data);
    match r.u8()? {
        0 => decode_payload(r.rest()),
        1 => {
            let raw_len = r.uvarint()?;
            if raw_len > MAX_RAW_LEN {
                return Err(ChunkError::Corrupt("implausible uncompressed chunk size"));
            }
            let raw = zstd::bulk::decompress(r.rest(), raw_len as usize)
                .map_err(|_| ChunkError::Corrupt("zstd frame does not decompress"))?;
            if raw.len() as u64 != raw_len {
                return Err(ChunkError::Corrupt("uncompressed chunk size mismatch"));
            }
            decode_payload(&raw)
        }
        _ => Err(ChunkError::Corrupt("unknown block chunk flag")),
    }
}

fn decode_payload(data: &[u8]) -> Result<Vec<Sample>, ChunkError> {
    let mut r = ByteReader::new(data);
    let n = r.uvarint()?;
    // Every sample takes at least one byte of timestamp, so larger counts are corrupt.
    if n > data.len() as u64 {
        return Err(ChunkError::Corrupt("sample count exceeds chunk size"));
    }
    let n = n as usize;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut ts = Vec::with_capacity(n);
    read_dod(&mut r, n, &mut ts)?;
    let mode = r.u8()?;
    let mut out = Vec::with_capacity(n);
    match mode {
        MODE_XOR => {
            let rest = r.rest();
            let mut br = BitReader::new(rest, 0);
            let (mut leading, mut trailing) = (NO_WINDOW, 0u8);
            let mut v = 0u64;
            for (i, &t) in ts.iter().enumerate() {
                if i == 0 {
                    v = br.read_bits(64)?;
                } else {
                    xor_read(&mut br, &mut v, &mut leading, &mut trailing)?;
                }
                out.push(Sample::new(t, f64::from_bits(v)));
            }
        }
        MODE_DELTA | MODE_DOD => {
            let e = r.varint()?;
            let e = i32::try_from(e)
                .ok()
                .filter(|e| e.unsigned_abs() < POW10.len() as u32)
                .ok_or(ChunkError::Corrupt("decimal exponent out of range"))?;
            let n_exc = r.uvarint()?;
            if n_exc > n as u64 {
                return Err(ChunkError::Corrupt("more exceptions than samples"));
            }
            let mut exceptions = Vec::with_capacity(n_exc as usize);
            let mut idx = 0u64;
            for _ in 0..n_exc {
                idx = idx
                    .checked_add(r.uvarint()?)
                    .filter(|&i| i < n as u64)
                    .ok_or(ChunkError::Corrupt("exception index out of range"))?;
                exceptions.push((idx as usize, r.u64_le()?));
            }
            let mut ms = Vec::with_capacity(n);
            if mode == MODE_DELTA {
                read_delta(&mut r, n, &mut ms)?;
            } else {
                read_dod(&mut r, n, &mut ms)?;
            }
            for (&t, &m) in ts.iter().zip(&ms) {
                let v = dec(m, e).ok_or(ChunkError::Corrupt("decimal exponent out of range"))?;
                out.push(Sample::new(t, v));
            }
            for (i, bits) in exceptions {
                if let Some(s) = out.get_mut(i) {
                    s.v = f64::from_bits(bits);
                }
            }
        }
        _ => return Err(ChunkError::Corrupt("unknown block value mode")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bit_eq(a: &[Sample], b: &[Sample]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.bit_eq(y))
    }

    fn roundtrip(s: &[Sample]) {
        let enc = encode(s);
        let dec = decode(&enc).expect("decodes");
        assert!(bit_eq(s, &dec), "{s:?} != {dec:?}");
    }

    #[test]
    fn special_values() {
        let vals = [
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(sextant_model::STALE_NAN_BITS),
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            5e-324,
            0.1,
            0.25,
            123456789.0,
            1e22,
            9007199254740993.0,
            -3.5,
        ];
        let s: Vec<Sample> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample::new(i as i64 * 15_000 - 100, v))
            .collect();
        roundtrip(&s);
        roundtrip(&[]);
        roundtrip(&s[..1]);
        // Mostly decimals with a few exceptions take the decimal path.
        let mut s: Vec<Sample> = (0..100).map(|i| Sample::new(i, i as f64 * 0.5)).collect();
        s[50].v = f64::from_bits(sextant_model::STALE_NAN_BITS);
        s[7].v = -0.0;
        roundtrip(&s);
    }

    #[test]
    fn corrupt_never_panics() {
        let s: Vec<Sample> = (0..500)
            .map(|i| Sample::new(i * 15_000 + (i % 7), (i * 3) as f64))
            .collect();
        let enc = encode(&s);
        for cut in 0..enc.len() {
            let _ = decode(&enc[..cut]);
        }
        for i in 0..enc.len() {
            let mut c = enc.clone();
            c[i] ^= 0x5a;
            let _ = decode(&c);
        }
        // A raw (uncompressed) payload with garbage.
        for i in 0..64u8 {
            let _ = decode(&[0, i, 0xff, 0xff, 0x01, i, 2, 3]);
        }
    }

    fn arb_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            (-1_000_000i64..1_000_000, 0u32..6).prop_map(|(m, k)| m as f64 / 10f64.powi(k as i32)),
            Just(f64::NAN),
            Just(f64::from_bits(sextant_model::STALE_NAN_BITS)),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE),
        ]
    }

    proptest! {
        // Generating 300 arbitrary floats per case is slow in debug builds; 64 cases keep the
        // suite fast while still covering NaN payloads, infinities and signed zeros.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_roundtrip_bit_exact(
            mut ts in proptest::collection::vec(any::<i64>(), 0..300),
            vs in proptest::collection::vec(arb_f64(), 300),
        ) {
            ts.sort_unstable();
            let s: Vec<Sample> = ts.iter().zip(&vs).map(|(&t, &v)| Sample::new(t, v)).collect();
            let dec = decode(&encode(&s)).expect("decodes");
            prop_assert!(bit_eq(&s, &dec));
        }

        #[test]
        fn prop_roundtrip_decimal_series(
            start in -1_000_000_000i64..1_000_000_000,
            steps in proptest::collection::vec((0i64..20_000, -50i64..50), 1..300),
            k in 0i32..4,
        ) {
            let mut t = start;
            let mut m = 0i64;
            let mut s = Vec::new();
            for (dt, dm) in steps {
                t += dt;
                m += dm;
                s.push(Sample::new(t, m as f64 / 10f64.powi(k)));
            }
            let dec = decode(&encode(&s)).expect("decodes");
            prop_assert!(bit_eq(&s, &dec));
        }
    }
}
