//! Prometheus-compatible XOR ("Gorilla") chunks for float samples.
//!
//! The head keeps the most recent samples of every float series in one of these. The layout is
//! byte-for-byte that of Prometheus' `tsdb/chunkenc/xor.go`, so chunks can be exchanged with
//! Prometheus tooling and its well-understood size characteristics carry over:
//!
//! - 2 bytes: big-endian sample count;
//! - sample 1: timestamp as a signed varint, value as 64 raw bits;
//! - sample 2: timestamp delta as an unsigned varint, value XOR-encoded;
//! - later samples: timestamp delta-of-delta in buckets `0` (zero), `10` + 14 bits,
//!   `110` + 17 bits, `1110` + 20 bits, `1111` + 64 bits, then the value XOR-encoded against
//!   the previous one (`0` same value, `10` reuse the previous leading/trailing-zero window,
//!   `11` + 5 bits leading zeros + 6 bits significant-bit count + the significant bits).

use super::bstream::{sign_extend, xor_read, xor_write, BitReader, BitWriter, NO_WINDOW};
use super::ChunkError;

/// Size of the sample-count header.
const HEADER: usize = 2;

/// An XOR-encoded chunk of float samples, appendable in place.
#[derive(Clone, Debug, PartialEq)]
pub struct XorChunk {
    w: BitWriter,
    t: i64,
    v: u64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// An empty chunk.
    pub fn new() -> Self {
        XorChunk {
            w: BitWriter::with_header(HEADER),
            t: 0,
            v: 0,
            t_delta: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// Loads an encoded chunk, decoding it fully to validate it and to restore the appender
    /// state, so that further appends continue the same stream.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, ChunkError> {
        let mut it = XorIter::new(&bytes);
        for _ in it.by_ref() {}
        if let Some(e) = it.err() {
            return Err(e.clone());
        }
        let (t, v, t_delta, leading, trailing) = (it.t, it.v, it.t_delta, it.leading, it.trailing);
        let end = it.r.bit_pos().max(HEADER * 8);
        Ok(XorChunk {
            w: BitWriter::resume(bytes, end),
            t,
            v,
            t_delta,
            leading,
            trailing,
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

    /// Releases spare buffer capacity once the chunk is complete (the head keeps many).
    pub fn shrink_to_fit(&mut self) {
        self.w.shrink_to_fit();
    }

    /// True when no further sample fits the 16-bit sample counter.
    pub fn is_full(&self) -> bool {
        self.num_samples() == u16::MAX
    }

    /// Timestamp of the first sample, if any.
    pub fn first_time(&self) -> Option<i64> {
        if self.num_samples() == 0 {
            return None;
        }
        BitReader::new(self.w.bytes(), HEADER).read_varint().ok()
    }

    /// Timestamp of the last sample, if any.
    pub fn last_time(&self) -> Option<i64> {
        (self.num_samples() > 0).then_some(self.t)
    }

    /// Appends a sample. The caller guarantees `t` is greater than the last timestamp; values
    /// are stored bit-exactly (any NaN, including the staleness marker). A chunk that
    /// [`is_full`](Self::is_full) ignores the sample; the head cuts chunks long before that.
    pub fn append(&mut self, t: i64, v: f64) {
        let num = self.num_samples();
        if num == u16::MAX {
            return;
        }
        let bits = v.to_bits();
        let mut t_delta = 0u64;
        match num {
            0 => {
                self.w.write_varint(t);
                self.w.write_bits(bits, 64);
            }
            1 => {
                t_delta = t.wrapping_sub(self.t) as u64;
                self.w.write_uvarint(t_delta);
                xor_write(
                    &mut self.w,
                    bits,
                    self.v,
                    &mut self.leading,
                    &mut self.trailing,
                );
            }
            _ => {
                t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                write_dod(&mut self.w, dod);
                xor_write(
                    &mut self.w,
                    bits,
                    self.v,
                    &mut self.leading,
                    &mut self.trailing,
                );
            }
        }
        self.t = t;
        self.v = bits;
        self.t_delta = t_delta;
        self.w.set_count(num + 1);
    }

    /// Iterates over the samples in order.
    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(self.w.bytes())
    }
}

fn read_count(b: &[u8]) -> u16 {
    match b {
        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    }
}

fn write_dod(w: &mut BitWriter, dod: i64) {
    use super::bstream::bit_range;
    if dod == 0 {
        w.write_bit(false);
    } else if bit_range(dod, 14) {
        w.write_bits(0b10, 2);
        w.write_bits(dod as u64, 14);
    } else if bit_range(dod, 17) {
        w.write_bits(0b110, 3);
        w.write_bits(dod as u64, 17);
    } else if bit_range(dod, 20) {
        w.write_bits(0b1110, 4);
        w.write_bits(dod as u64, 20);
    } else {
        w.write_bits(0b1111, 4);
        w.write_bits(dod as u64, 64);
    }
}

fn read_dod(r: &mut BitReader<'_>) -> Result<i64, ChunkError> {
    let mut ones = 0;
    while ones < 4 {
        if !r.read_bit()? {
            break;
        }
        ones += 1;
    }
    let sz = match ones {
        0 => return Ok(0),
        1 => 14,
        2 => 17,
        3 => 20,
        _ => return Ok(r.read_bits(64)? as i64),
    };
    Ok(sign_extend(r.read_bits(sz)?, sz))
}

/// Iterator over the `(timestamp, value)` samples of an [`XorChunk`]. It stops early at
/// truncated or corrupt data; [`XorIter::err`] then says why.
#[derive(Clone, Debug)]
pub struct XorIter<'a> {
    r: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    v: u64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
    err: Option<ChunkError>,
}

impl<'a> XorIter<'a> {
    /// Iterates over an encoded XOR chunk (header included).
    pub fn new(bytes: &'a [u8]) -> Self {
        let err = (bytes.len() < HEADER).then_some(ChunkError::Truncated);
        XorIter {
            r: BitReader::new(bytes, HEADER),
            total: read_count(bytes),
            read: 0,
            t: 0,
            v: 0,
            t_delta: 0,
            leading: NO_WINDOW,
            trailing: 0,
            err,
        }
    }

    /// Why iteration stopped early, if it did.
    pub fn err(&self) -> Option<&ChunkError> {
        self.err.as_ref()
    }

    fn step(&mut self) -> Result<(), ChunkError> {
        match self.read {
            0 => {
                self.t = self.r.read_varint()?;
                self.v = self.r.read_bits(64)?;
            }
            1 => {
                self.t_delta = self.r.read_uvarint()?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                xor_read(
                    &mut self.r,
                    &mut self.v,
                    &mut self.leading,
                    &mut self.trailing,
                )?;
            }
            _ => {
                let dod = read_dod(&mut self.r)?;
                self.t_delta = self.t_delta.wrapping_add(dod as u64);
                self.t = self.t.wrapping_add(self.t_delta as i64);
                xor_read(
                    &mut self.r,
                    &mut self.v,
                    &mut self.leading,
                    &mut self.trailing,
                )?;
            }
        }
        Ok(())
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.err.is_some() || self.read >= self.total {
            return None;
        }
        match self.step() {
            Ok(()) => {
                self.read += 1;
                Some((self.t, f64::from_bits(self.v)))
            }
            Err(e) => {
                self.err = Some(e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sextant_model::STALE_NAN_BITS;

    fn collect(c: &XorChunk) -> Vec<(i64, u64)> {
        let mut it = c.iter();
        let out: Vec<_> = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
        assert!(it.err().is_none(), "{:?}", it.err());
        out
    }

    /// Pins the byte layout against a hand-computed encoding following Prometheus' xor.go.
    #[test]
    fn byte_layout_matches_prometheus() {
        let mut c = XorChunk::new();
        assert_eq!(c.bytes(), &[0, 0]);
        c.append(1000, 1.0);
        // count=1; varint(1000) = zigzag 2000 = 0xd0 0x0f; 1.0 = 0x3ff0000000000000; like Go's
        // bstream, byte-wise writes leave an empty trailing byte.
        assert_eq!(
            c.bytes(),
            &[0, 1, 0xd0, 0x0f, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0]
        );
        c.append(1015, 1.0);
        // uvarint(15) = 0x0f, then value bit '0' (same value) -> 0x00 with 7 free bits.
        assert_eq!(
            c.bytes(),
            &[0, 2, 0xd0, 0x0f, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x0f, 0x00]
        );
        c.append(1030, 2.0);
        // dod 0 -> '0'; 1.0 ^ 2.0 = 0x7ff0000000000000: leading 1, trailing 52, sig 11:
        // '1' '1' 00001 001011 11111111111 after the first bit '0' of the previous value.
        // bits: 0 | 0 | 1 1 00001 001011 11111111111
        // byte 13: 0 0 1 1 0 0 0 0 = 0x30, byte 14: 1 0 0 1 0 1 1 1 = 0x97,
        // byte 15: 1 1 1 1 1 1 1 1 = 0xff, byte 16: 1 1 (pad) = 0xc0.
        assert_eq!(c.bytes()[..2], [0, 3]);
        assert_eq!(&c.bytes()[13..], &[0x30, 0x97, 0xff, 0xc0]);
        c.append(1046, 2.0);
        // dod +1 -> '10' + 14 bits of 1, value '0': 2 + 14 + 1 = 17 bits after the 2 used bits.
        // byte 16: 1 1 | 1 0 | 0000 = 0xe0, byte 17: 0000 0000, byte 18: 01 | 0 | pad = 0x40.
        assert_eq!(&c.bytes()[16..], &[0xe0, 0x00, 0x40]);
        assert_eq!(
            collect(&c),
            vec![
                (1000, 1f64.to_bits()),
                (1015, 1f64.to_bits()),
                (1030, 2f64.to_bits()),
                (1046, 2f64.to_bits())
            ]
        );
        assert_eq!(c.first_time(), Some(1000));
        assert_eq!(c.last_time(), Some(1046));
    }

    #[test]
    fn empty_and_short_inputs() {
        assert!(XorChunk::from_bytes(vec![]).is_err());
        assert!(XorChunk::from_bytes(vec![0]).is_err());
        let c = XorChunk::from_bytes(vec![0, 0]).unwrap();
        assert_eq!(c.num_samples(), 0);
        assert_eq!(c.first_time(), None);
        assert!(XorChunk::from_bytes(vec![0, 1, 0x02]).is_err());
    }

    #[test]
    fn stale_nan_and_64_bit_values() {
        let mut c = XorChunk::new();
        let vals = [
            0u64,
            u64::MAX,
            STALE_NAN_BITS,
            1,
            0x8000_0000_0000_0000,
            f64::NAN.to_bits(),
        ];
        for (i, v) in vals.iter().enumerate() {
            c.append(i as i64 * 10, f64::from_bits(*v));
        }
        let got: Vec<u64> = collect(&c).into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, vals);
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Bytes of the chunk Prometheus 2.42 (`promtool tsdb create-blocks-from openmetrics`)
    /// wrote for these samples; the NaN is Go's `math.NaN()`.
    #[test]
    fn bytes_match_chunk_written_by_prometheus() {
        let samples: [(i64, f64); 9] = [
            (1_700_000_000_000, 1.0),
            (1_700_000_015_000, 1.0),
            (1_700_000_030_000, 2.0),
            (1_700_000_046_000, 2.0),
            (1_700_000_061_003, -3.25),
            (1_700_000_075_999, 1e300),
            (1_700_000_090_000, f64::from_bits(0x7ff8_0000_0000_0001)),
            (1_700_001_090_000, 0.1),
            (1_700_001_091_000, 0.2),
        ];
        let want = unhex(
            "000980a0abfef9623ff000000000000098753097ffe0fa1783780f800b7ff383ebe3de43c8800759ef\
             0773f3cfe43c8800759df00000000000f0b8fc3fc04199999999999bffffffffffff0c1a8803800000\
             00000000",
        );
        let mut c = XorChunk::new();
        for (t, v) in samples {
            c.append(t, v);
        }
        assert_eq!(c.bytes(), &want[..]);
        let got = XorChunk::from_bytes(want).unwrap();
        let decoded: Vec<(i64, u64)> = collect(&got);
        let expect: Vec<(i64, u64)> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(decoded, expect);

        let mut one = XorChunk::new();
        one.append(1_700_101_091_000, 123456.789);
        assert_eq!(
            one.bytes(),
            &unhex("0001f0badfdefa6240fe240c9fbe76c900")[..]
        );
    }

    #[test]
    fn extreme_timestamps() {
        let ts = [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX];
        let mut c = XorChunk::new();
        for (i, t) in ts.iter().enumerate() {
            c.append(*t, i as f64);
        }
        let got: Vec<i64> = collect(&c).into_iter().map(|(t, _)| t).collect();
        assert_eq!(got, ts);
        assert_eq!(XorChunk::from_bytes(c.bytes().to_vec()).unwrap(), c);
    }

    fn samples() -> impl Strategy<Value = Vec<(i64, u64)>> {
        let delta = prop_oneof![
            4 => 1i64..100_000,
            1 => 1i64..i64::MAX / 200,
            1 => Just(15_000i64),
        ];
        let value = prop_oneof![
            any::<u64>(),
            (0u32..1000).prop_map(|x| f64::from(x).to_bits()),
            Just(STALE_NAN_BITS),
        ];
        (
            any::<i64>().prop_map(|t| t / 2),
            proptest::collection::vec((delta, value), 0..150),
        )
            .prop_map(|(start, rest)| {
                let mut t = start;
                let mut out = Vec::new();
                for (d, v) in rest {
                    out.push((t, v));
                    match t.checked_add(d) {
                        Some(n) => t = n,
                        None => break,
                    }
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn roundtrip_bit_exact(s in samples()) {
            let mut c = XorChunk::new();
            for &(t, v) in &s {
                c.append(t, f64::from_bits(v));
            }
            prop_assert_eq!(c.num_samples() as usize, s.len());
            prop_assert_eq!(collect(&c), s.clone());
            prop_assert_eq!(c.first_time(), s.first().map(|x| x.0));
            prop_assert_eq!(c.last_time(), s.last().map(|x| x.0));
        }

        #[test]
        fn reload_then_append_matches(s in samples(), split in any::<prop::sample::Index>()) {
            let k = if s.is_empty() { 0 } else { split.index(s.len() + 1) };
            let mut whole = XorChunk::new();
            for &(t, v) in &s {
                whole.append(t, f64::from_bits(v));
            }
            let mut part = XorChunk::new();
            for &(t, v) in &s[..k] {
                part.append(t, f64::from_bits(v));
            }
            let mut reloaded = XorChunk::from_bytes(part.bytes().to_vec()).unwrap();
            prop_assert_eq!(&reloaded, &part);
            for &(t, v) in &s[k..] {
                reloaded.append(t, f64::from_bits(v));
            }
            prop_assert_eq!(reloaded.bytes(), whole.bytes());
            prop_assert_eq!(collect(&reloaded), s);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut it = XorIter::new(&bytes);
            let n = it.by_ref().count();
            prop_assert!(n <= read_count(&bytes) as usize);
            if let Ok(mut c) = XorChunk::from_bytes(bytes.clone()) {
                prop_assert!(c.iter().err().is_none());
                c.append(i64::MAX, 1.0);
            }
        }

        #[test]
        fn bit_flips_never_panic(s in samples(), bit in any::<prop::sample::Index>()) {
            let mut c = XorChunk::new();
            for &(t, v) in &s {
                c.append(t, f64::from_bits(v));
            }
            let mut b = c.bytes().to_vec();
            let i = bit.index(b.len() * 8);
            b[i / 8] ^= 1 << (i % 8);
            let _ = XorIter::new(&b).count();
            if let Ok(mut c) = XorChunk::from_bytes(b) {
                c.append(i64::MAX, 0.5);
                let _ = c.iter().count();
            }
        }

        #[test]
        fn truncation_is_detected(s in samples(), cut in any::<prop::sample::Index>()) {
            let mut c = XorChunk::new();
            for &(t, v) in &s {
                c.append(t, f64::from_bits(v));
            }
            let b = c.bytes();
            let k = cut.index(b.len());
            let short = b[..k].to_vec();
            let mut it = XorIter::new(&short);
            let got: Vec<_> = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
            prop_assert!(got.len() <= s.len());
            prop_assert_eq!(&got[..], &s[..got.len()]);
            if got.len() < s.len() {
                prop_assert!(it.err().is_some());
                prop_assert!(XorChunk::from_bytes(short).is_err());
            }
        }
    }
}
