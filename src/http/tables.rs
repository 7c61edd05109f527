//! Byte-class tables shared by the request parser, the framing layer and the chunked decoder.
//!
//! Each table is a `[bool; 256]` built at compile time, so a class test is one indexed load
//! (the index is a `u8`, so the compiler drops the bounds check).

/// Builds a table that is `true` for every byte in `set` and for ASCII letters and digits when
/// `alnum` is set.
const fn build(set: &[u8], alnum: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < set.len() {
        table[set[i] as usize] = true;
        i += 1;
    }
    if alnum {
        let mut b = 0usize;
        while b < 256 {
            let c = b as u8;
            if c.is_ascii_alphanumeric() {
                table[b] = true;
            }
            b += 1;
        }
    }
    table
}

/// `tchar` (RFC 9110 §5.6.2): the bytes of a token (methods, field names, codings).
pub(crate) static TCHAR: [bool; 256] = build(b"!#$%&'*+-.^_`|~", true);

/// Bytes allowed anywhere in a request-target: RFC 3986 `pchar` plus `/`, `?` and the `[` `]`
/// of IP literals (checked separately per target form). `%` is validated afterwards.
pub(crate) static URI: [bool; 256] = build(b"-._~!$&'()*+,;=:@/?%[]", true);

/// Bytes of a `reg-name` host (RFC 3986 §3.2.2) *without* the comma, which would let
/// `Host: a,b` look like a list. `%` is validated afterwards.
pub(crate) static REG_NAME: [bool; 256] = build(b"-._~!$&'()*+;=%", true);

/// `true` for a byte that may not appear in a field value: a control other than HTAB, or DEL.
/// Branch-free so that loops over it vectorise.
#[inline(always)]
pub(crate) fn is_bad_value_byte(b: u8) -> bool {
    (b < 0x20 && b != b'\t') | (b == 0x7f)
}

/// Index of the first byte of `s` that may not appear in a field value.
///
/// Works on 32-byte blocks with a non-short-circuiting fold, which the compiler turns into SIMD
/// compares; the exact position is only searched for inside a block that has a bad byte.
#[inline]
pub(crate) fn first_bad_value_byte(s: &[u8]) -> Option<usize> {
    let mut base = 0;
    for block in s.chunks(32) {
        let bad = block
            .iter()
            .fold(false, |acc, &b| acc | is_bad_value_byte(b));
        if bad {
            return block
                .iter()
                .position(|&b| is_bad_value_byte(b))
                .map(|i| base + i);
        }
        base += block.len();
    }
    None
}

/// The value of an ASCII hex digit, or `None`.
#[inline]
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Strips SP and HTAB (and nothing else: not VT, FF or Unicode spaces) from both ends.
#[inline]
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
