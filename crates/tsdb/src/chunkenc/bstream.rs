//! Bit-level writer and reader shared by every chunk encoding.
//!
//! Gorilla-style encodings pack values into arbitrary bit widths, so chunks need a byte buffer
//! that can be written and read one bit (or a few bits) at a time. Bits are stored most
//! significant first, exactly as Prometheus' `bstream` does, which keeps our XOR chunks
//! byte-compatible. Reads never panic: running past the end of the data yields
//! [`ChunkError::Truncated`] so that corrupt or cut chunks on disk are reported, not fatal.
//! The module also holds the small integer codecs built on top of bits (Go-style varints and
//! Prometheus' "varbit" buckets) and the XOR float codec used by every chunk type.

use super::ChunkError;

/// An append-only bit buffer. The last byte may be partially filled; unused bits are zero.
///
/// To stay byte-identical with Prometheus, writing mirrors Go's `bstream`: writing whole bytes
/// (including the byte-sized pieces of [`write_bits`](Self::write_bits)) always leaves a fresh
/// last byte behind, so a stream that ends on a byte boundary after such a write carries one
/// trailing zero byte, while single bits never allocate ahead.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitWriter {
    buf: Vec<u8>,
    /// Number of still unused (low) bits in the last byte of `buf`, 0..=8.
    free: u32,
}

impl BitWriter {
    /// A writer whose buffer starts with `header` zero bytes (chunk headers patched later).
    pub fn with_header(header: usize) -> Self {
        BitWriter {
            buf: vec![0; header],
            free: 0,
        }
    }

    /// Continues writing after the first `bit_len` bits of `buf`, clearing every bit after
    /// them. Up to 8 unused bits at the end are kept as Go's writer would have left them; more
    /// trailing data is dropped. `bit_len` is clamped to the buffer size.
    pub fn resume(mut buf: Vec<u8>, bit_len: usize) -> Self {
        let total = buf.len().saturating_mul(8);
        let bit_len = bit_len.min(total);
        if total - bit_len > 8 {
            buf.truncate(bit_len.div_ceil(8));
        }
        let free = (buf.len() * 8 - bit_len) as u32;
        if let Some(last) = buf.last_mut() {
            *last &= !(((1u16 << free) - 1) as u8);
        }
        BitWriter { buf, free }
    }

    /// Releases spare capacity (for chunks that are complete).
    pub fn shrink_to_fit(&mut self) {
        self.buf.shrink_to_fit();
    }

    /// The bytes written so far (including any header).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Mutable access to the bytes, for patching headers. Callers must not change the length.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Stores a chunk's sample count in its first two bytes (big endian), when present.
    pub fn set_count(&mut self, n: u16) {
        if let Some(head) = self.buf.get_mut(..2) {
            head.copy_from_slice(&n.to_be_bytes());
        }
    }

    /// Number of bits written, header included.
    pub fn bit_len(&self) -> usize {
        self.buf.len() * 8 - self.free as usize
    }

    /// Appends one bit.
    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.buf.push(0);
            self.free = 8;
        }
        if bit {
            if let Some(last) = self.buf.last_mut() {
                *last |= 1 << (self.free - 1);
            }
        }
        self.free -= 1;
    }

    /// Appends the low `n` bits of `v`, most significant first. `n` above 64 is treated as 64.
    pub fn write_bits(&mut self, v: u64, n: u32) {
        let mut n = n.min(64);
        while n >= 8 {
            self.write_byte((v >> (n - 8)) as u8);
            n -= 8;
        }
        while n > 0 {
            self.write_bit((v >> (n - 1)) & 1 == 1);
            n -= 1;
        }
    }

    /// Appends eight bits.
    pub fn write_byte(&mut self, b: u8) {
        if self.free == 0 {
            self.buf.push(0);
            self.free = 8;
        }
        if let Some(last) = self.buf.last_mut() {
            *last |= b >> (8 - self.free);
        }
        self.buf.push((u16::from(b) << self.free) as u8);
    }

    /// Appends `v` as a Go `binary.PutUvarint` varint.
    pub fn write_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.write_byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.write_byte(v as u8);
    }

    /// Appends `v` as a Go `binary.PutVarint` (zig-zag) varint.
    pub fn write_varint(&mut self, v: i64) {
        let ux = ((v as u64) << 1) ^ ((v >> 63) as u64);
        self.write_uvarint(ux);
    }
}

/// A cursor over bits of a byte slice.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Absolute bit position of the next read.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// Reads `data` starting at byte `start_byte`.
    pub fn new(data: &'a [u8], start_byte: usize) -> Self {
        BitReader {
            data,
            pos: start_byte.saturating_mul(8),
        }
    }

    /// Absolute bit position of the next read (from the start of the slice).
    pub fn bit_pos(&self) -> usize {
        self.pos
    }

    /// Bits left to read.
    pub fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// Reads one bit.
    pub fn read_bit(&mut self) -> Result<bool, ChunkError> {
        Ok(self.read_bits(1)? == 1)
    }

    /// Reads `n` (at most 64) bits as the low bits of a `u64`.
    pub fn read_bits(&mut self, n: u32) -> Result<u64, ChunkError> {
        let n = n.min(64);
        if self.remaining() < n as usize {
            return Err(ChunkError::Truncated);
        }
        // Fast path (the decoders' hot loop): the bits lie in one big-endian 8-byte word.
        let (byte, off) = (self.pos / 8, (self.pos % 8) as u32);
        if n > 0 && off + n <= 64 {
            if let Some(w) = self.data.get(byte..byte + 8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(w);
                let v = (u64::from_be_bytes(b) << off) >> (64 - n);
                self.pos += n as usize;
                return Ok(v);
            }
        }
        let mut out: u64 = 0;
        let mut left = n;
        while left > 0 {
            let byte = self
                .data
                .get(self.pos / 8)
                .copied()
                .ok_or(ChunkError::Truncated)?;
            let avail = 8 - (self.pos % 8) as u32;
            let take = left.min(avail);
            let shifted = (byte >> (avail - take)) as u64 & ((1u64 << take) - 1);
            out = if take == 64 {
                shifted
            } else {
                (out << take) | shifted
            };
            left -= take;
            self.pos += take as usize;
        }
        Ok(out)
    }

    /// Reads eight bits.
    pub fn read_byte(&mut self) -> Result<u8, ChunkError> {
        Ok(self.read_bits(8)? as u8)
    }

    /// Reads a Go-style unsigned varint.
    pub fn read_uvarint(&mut self) -> Result<u64, ChunkError> {
        let mut x: u64 = 0;
        let mut s: u32 = 0;
        for i in 0..10 {
            let b = self.read_byte()?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(ChunkError::Corrupt("varint overflows 64 bits"));
                }
                return Ok(x | (u64::from(b) << s));
            }
            x |= u64::from(b & 0x7f) << s;
            s += 7;
        }
        Err(ChunkError::Corrupt("varint overflows 64 bits"))
    }

    /// Reads a Go-style signed (zig-zag) varint.
    pub fn read_varint(&mut self) -> Result<i64, ChunkError> {
        let ux = self.read_uvarint()?;
        let x = (ux >> 1) as i64;
        Ok(if ux & 1 != 0 { !x } else { x })
    }
}

/// Whether `x` fits the `nbits`-bit two's-complement bucket Prometheus uses: a slightly
/// asymmetric range `-(2^(n-1) - 1) ..= 2^(n-1)`.
pub fn bit_range(x: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= x && x <= half
}

/// Undoes the two's-complement packing of an `sz`-bit field written by `write_bits`.
pub fn sign_extend(bits: u64, sz: u32) -> i64 {
    if sz < 64 && bits > (1u64 << (sz - 1)) {
        bits.wrapping_sub(1u64 << sz) as i64
    } else {
        bits as i64
    }
}

/// Bit widths of Prometheus' varbit buckets after the 1-bit zero case; the prefix of bucket `i`
/// is `i + 1` one bits followed by a zero (the last bucket has no terminating zero).
const VARBIT_SIZES: [u32; 8] = [3, 6, 9, 12, 18, 25, 56, 64];

fn write_varbit_prefix(w: &mut BitWriter, idx: usize) {
    let ones = idx as u32 + 1;
    if idx + 1 == VARBIT_SIZES.len() {
        w.write_bits((1u64 << ones) - 1, ones);
    } else {
        w.write_bits(((1u64 << ones) - 1) << 1, ones + 1);
    }
}

/// Reads the varbit prefix; `None` means the zero case, `Some(i)` the bucket index.
fn read_varbit_prefix(r: &mut BitReader<'_>) -> Result<Option<usize>, ChunkError> {
    let mut ones = 0usize;
    while ones < VARBIT_SIZES.len() {
        if !r.read_bit()? {
            break;
        }
        ones += 1;
    }
    Ok(ones.checked_sub(1))
}

/// Writes a signed integer with Prometheus' varbit buckets (1 bit for zero, up to 72 bits).
pub fn write_varbit_int(w: &mut BitWriter, v: i64) {
    if v == 0 {
        w.write_bit(false);
        return;
    }
    let idx = VARBIT_SIZES
        .iter()
        .position(|&sz| sz == 64 || bit_range(v, sz))
        .unwrap_or(VARBIT_SIZES.len() - 1);
    write_varbit_prefix(w, idx);
    w.write_bits(v as u64, VARBIT_SIZES[idx]);
}

/// Reads an integer written by [`write_varbit_int`].
pub fn read_varbit_int(r: &mut BitReader<'_>) -> Result<i64, ChunkError> {
    match read_varbit_prefix(r)? {
        None => Ok(0),
        Some(idx) => {
            let sz = VARBIT_SIZES[idx];
            let bits = r.read_bits(sz)?;
            Ok(sign_extend(bits, sz))
        }
    }
}

/// Writes an unsigned integer with Prometheus' varbit buckets.
pub fn write_varbit_uint(w: &mut BitWriter, v: u64) {
    if v == 0 {
        w.write_bit(false);
        return;
    }
    let idx = VARBIT_SIZES
        .iter()
        .position(|&sz| sz == 64 || v >> sz == 0)
        .unwrap_or(VARBIT_SIZES.len() - 1);
    write_varbit_prefix(w, idx);
    w.write_bits(v, VARBIT_SIZES[idx]);
}

/// Reads an integer written by [`write_varbit_uint`].
pub fn read_varbit_uint(r: &mut BitReader<'_>) -> Result<u64, ChunkError> {
    match read_varbit_prefix(r)? {
        None => Ok(0),
        Some(idx) => r.read_bits(VARBIT_SIZES[idx]),
    }
}

/// Sentinel for "no leading/trailing window chosen yet" in the XOR float codec.
pub const NO_WINDOW: u8 = 0xff;

/// Writes `new` XOR-ed against `old` (both raw f64 bits) with Gorilla control bits, updating the
/// leading/trailing-zero window exactly like Prometheus' `xorWrite`.
pub fn xor_write(w: &mut BitWriter, new: u64, old: u64, leading: &mut u8, trailing: &mut u8) {
    let delta = new ^ old;
    if delta == 0 {
        w.write_bit(false);
        return;
    }
    w.write_bit(true);
    let lead = (delta.leading_zeros() as u8).min(31);
    let trail = delta.trailing_zeros() as u8;
    if *leading != NO_WINDOW && lead >= *leading && trail >= *trailing {
        w.write_bit(false);
        let sig = 64 - u32::from(*leading) - u32::from(*trailing);
        w.write_bits(delta >> *trailing, sig);
    } else {
        *leading = lead;
        *trailing = trail;
        w.write_bit(true);
        w.write_bits(u64::from(lead), 5);
        let sig = 64 - u32::from(lead) - u32::from(trail);
        // 64 significant bits do not fit in 6 bits; 0 never occurs otherwise, so it stands for 64.
        w.write_bits(u64::from(sig) & 0x3f, 6);
        w.write_bits(delta >> trail, sig);
    }
}

/// Reads a value written by [`xor_write`], updating `value` (raw bits) and the window.
pub fn xor_read(
    r: &mut BitReader<'_>,
    value: &mut u64,
    leading: &mut u8,
    trailing: &mut u8,
) -> Result<(), ChunkError> {
    if !r.read_bit()? {
        return Ok(());
    }
    if r.read_bit()? {
        let lead = r.read_bits(5)? as u8;
        let mut sig = r.read_bits(6)? as u8;
        if sig == 0 {
            sig = 64;
        }
        let trail = 64u8
            .checked_sub(lead)
            .and_then(|x| x.checked_sub(sig))
            .ok_or(ChunkError::Corrupt("xor window wider than 64 bits"))?;
        *leading = lead;
        *trailing = trail;
    } else if *leading == NO_WINDOW {
        // Never produced by our writer; Go decodes it with an all-64-bit window.
        *leading = 0;
        *trailing = 0;
    }
    let sig = 64 - u32::from(*leading) - u32::from(*trailing);
    let bits = r.read_bits(sig)?;
    *value ^= if *trailing >= 64 {
        0
    } else {
        bits << *trailing
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bits_roundtrip_and_end_of_data() {
        let mut w = BitWriter::with_header(0);
        w.write_bit(true);
        w.write_bits(0b101, 3);
        w.write_bits(u64::MAX, 64);
        w.write_byte(0xab);
        assert_eq!(w.bit_len(), 76);
        // Like Go's bstream: whole bytes leave a fresh (here empty) byte behind.
        let mut a = BitWriter::with_header(0);
        a.write_byte(0xab);
        assert_eq!(a.bytes(), &[0xab, 0]);
        a.write_bit(true);
        assert_eq!(a.bytes(), &[0xab, 0x80]);
        let mut r = BitReader::new(w.bytes(), 0);
        assert!(r.read_bit().unwrap());
        assert_eq!(r.read_bits(3).unwrap(), 0b101);
        assert_eq!(r.read_bits(64).unwrap(), u64::MAX);
        assert_eq!(r.read_byte().unwrap(), 0xab);
        assert_eq!(r.read_bits(4).unwrap(), 0);
        assert_eq!(r.read_bit(), Err(ChunkError::Truncated));
    }

    #[test]
    fn resume_clears_padding() {
        let w = BitWriter::resume(vec![0xff, 0xff, 0xff], 12);
        assert_eq!(w.bytes(), &[0xff, 0xf0]);
        assert_eq!(w.bit_len(), 12);
        let w = BitWriter::resume(vec![0xff, 0xff, 0xff], 16);
        assert_eq!(w.bytes(), &[0xff, 0xff, 0]);
        assert_eq!(w.bit_len(), 16);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn codecs_roundtrip(ints in proptest::collection::vec(any::<i64>(), 0..20),
                            small in proptest::collection::vec(-5000i64..5000, 0..20),
                            uints in proptest::collection::vec(any::<u64>(), 0..20)) {
            let mut w = BitWriter::with_header(1);
            for &v in ints.iter().chain(&small) {
                write_varbit_int(&mut w, v);
                w.write_varint(v);
            }
            for &v in &uints {
                write_varbit_uint(&mut w, v);
                write_varbit_uint(&mut w, v >> 40);
                w.write_uvarint(v);
            }
            let mut r = BitReader::new(w.bytes(), 1);
            for &v in ints.iter().chain(&small) {
                prop_assert_eq!(read_varbit_int(&mut r).unwrap(), v);
                prop_assert_eq!(r.read_varint().unwrap(), v);
            }
            for &v in &uints {
                prop_assert_eq!(read_varbit_uint(&mut r).unwrap(), v);
                prop_assert_eq!(read_varbit_uint(&mut r).unwrap(), v >> 40);
                prop_assert_eq!(r.read_uvarint().unwrap(), v);
            }
            prop_assert_eq!(r.bit_pos(), w.bit_len());
        }
    }
}
