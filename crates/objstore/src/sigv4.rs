//! AWS Signature Version 4 for S3 requests (header-based authentication).
//!
//! Written from AWS' published algorithm: a canonical request (method, URI-encoded path, sorted
//! query, sorted lower-case headers, payload hash) is hashed into a string to sign, which is
//! signed with a key derived from the secret by chained HMAC-SHA256 over date, region and
//! service. Unit-tested against the S3 examples in AWS' documentation.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// SHA-256 of the empty payload, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Hex SHA-256 of a payload.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// URI-encodes per SigV4: unreserved characters stay, everything else is `%XX` (upper case);
/// `/` stays only when `keep_slash` (object key paths).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What is signed: everything but the credentials.
pub struct SignInput<'a> {
    pub method: &'a str,
    /// The path as sent, already URI-encoded (e.g. `/bucket/key%20x`).
    pub encoded_path: &'a str,
    /// Query parameters, not encoded (they are encoded and sorted here).
    pub query: &'a [(String, String)],
    /// Headers to sign (name, value); must include `host`, `x-amz-date` and
    /// `x-amz-content-sha256`.
    pub headers: &'a [(String, String)],
    pub payload_sha256: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    pub region: &'a str,
}

/// The canonical query string: encoded `key=value` pairs sorted by key then value.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    q.sort();
    q.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Returns (canonical request, signed header list).
pub fn canonical_request(i: &SignInput<'_>) -> (String, String) {
    let mut hs: Vec<(String, String)> = i
        .headers
        .iter()
        .map(|(k, v)| {
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (k.to_ascii_lowercase(), v)
        })
        .collect();
    hs.sort();
    let canon_headers: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = hs
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let cr = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        i.method,
        i.encoded_path,
        canonical_query(i.query),
        canon_headers,
        signed,
        i.payload_sha256
    );
    (cr, signed)
}

/// The string to sign for a canonical request.
pub fn string_to_sign(amz_date: &str, region: &str, canonical: &str) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/s3/aws4_request\n{}",
        sha256_hex(canonical.as_bytes())
    )
}

/// The `Authorization` header value.
pub fn authorization(i: &SignInput<'_>, access_key: &str, secret: &str) -> String {
    let (cr, signed) = canonical_request(i);
    let sts = string_to_sign(i.amz_date, i.region, &cr);
    let date = i.amz_date.get(..8).unwrap_or(i.amz_date);
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, i.region.as_bytes());
    let k_service = hmac(&k_region, b"s3");
    let k_signing = hmac(&k_service, b"aws4_request");
    let sig = hex(&hmac(&k_signing, sts.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{date}/{}/s3/aws4_request, SignedHeaders={signed}, Signature={sig}",
        i.region
    )
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds.
pub fn amz_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn h(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    /// AWS S3 docs, "Signature Calculations for the Authorization Header", example GET Object.
    #[test]
    fn aws_example_get_object() {
        let headers = [
            h("Host", "examplebucket.s3.amazonaws.com"),
            h("Range", "bytes=0-9"),
            h("x-amz-content-sha256", EMPTY_SHA256),
            h("x-amz-date", "20130524T000000Z"),
        ];
        let i = SignInput {
            method: "GET",
            encoded_path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
            amz_date: "20130524T000000Z",
            region: "us-east-1",
        };
        let (cr, signed) = canonical_request(&i);
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        let sts = string_to_sign(i.amz_date, i.region, &cr);
        assert!(
            sts.ends_with("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"),
            "{sts}"
        );
        assert_eq!(
            authorization(&i, AK, SK),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// AWS S3 docs, example GET Bucket (List Objects) with a query string.
    #[test]
    fn aws_example_list_objects() {
        let headers = [
            h("Host", "examplebucket.s3.amazonaws.com"),
            h("x-amz-content-sha256", EMPTY_SHA256),
            h("x-amz-date", "20130524T000000Z"),
        ];
        let q = [h("max-keys", "2"), h("prefix", "J")];
        let i = SignInput {
            method: "GET",
            encoded_path: "/",
            query: &q,
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
            amz_date: "20130524T000000Z",
            region: "us-east-1",
        };
        assert!(authorization(&i, AK, SK).ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ));
    }

    #[test]
    fn encoding_and_dates() {
        assert_eq!(uri_encode("a b/c~d*", true), "a%20b/c~d%2A");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_date(951_782_400 + 3661), "20000229T010101Z");
    }
}
