//! The DNS prober: a small DNS client (RFC 1035 over UDP or TCP) that sends one query to the
//! target server and checks the response code and records the way blackbox_exporter does.
//! Records are rendered in zone-file form (`name. ttl IN A 1.2.3.4`, as `dig` and Go's miekg/dns
//! print them) so `validate_*_rrs` regular expressions written for blackbox_exporter work here.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::config::{Module, RrValidator, Transport};
use super::{resolve, split_host_port, Outcome, Samples};

const TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
    ("DS", 43),
    ("DNSKEY", 48),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("ANY", 255),
    ("CAA", 257),
];
const CLASSES: &[(&str, u16)] = &[("IN", 1), ("CH", 3), ("HS", 4), ("ANY", 255)];
const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];

fn lookup(t: &[(&str, u16)], s: &str) -> Option<u16> {
    t.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, c)| *c)
}

fn name_of(t: &[(&'static str, u16)], c: u16) -> Option<&'static str> {
    t.iter().find(|(_, v)| *v == c).map(|(n, _)| *n)
}

/// The numeric query type of `A`, `AAAA`, `MX`, … (`TYPE65`-style numbers too).
pub fn qtype_code(s: &str) -> Option<u16> {
    lookup(TYPES, s).or_else(|| s.strip_prefix("TYPE")?.parse().ok())
}

/// The numeric class of `IN`, `CH`, `HS`, `ANY`.
pub fn qclass_code(s: &str) -> Option<u16> {
    lookup(CLASSES, s)
}

/// The numeric response code of `NOERROR`, `NXDOMAIN`, ….
pub fn rcode_code(s: &str) -> Option<u16> {
    lookup(RCODES, s)
}

/// Encodes a query for `name` (absolute or relative; the root is implied).
pub fn encode_query(
    id: u16,
    name: &str,
    qtype: u16,
    qclass: u16,
    rd: bool,
) -> Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&(if rd { 0x0100u16 } else { 0 }).to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let mut total = 1;
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!("query_name {name:?}: invalid label {label:?}"));
            }
            total += label.len() + 1;
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
    }
    if total > 255 {
        return Err(format!("query_name {name:?}: longer than 255 bytes"));
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&qclass.to_be_bytes());
    Ok(m)
}

/// A parsed response.
#[derive(Debug, Default, PartialEq)]
pub struct Message {
    pub id: u16,
    pub rcode: u16,
    pub truncated: bool,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    /// The serial of the first SOA record of the answer section.
    pub soa_serial: Option<u32>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.pos).ok_or("truncated message")?;
        self.pos += 1;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok((self.u16()? as u32) << 16 | self.u16()? as u32)
    }
    fn bytes(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).ok_or("truncated message")?;
        let s = self.b.get(self.pos..end).ok_or("truncated message")?;
        self.pos = end;
        Ok(s)
    }
    /// A possibly compressed domain name, rendered with a trailing dot.
    fn name(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut jumped = false;
        for _ in 0..128 {
            let len = *self.b.get(pos).ok_or("truncated name")? as usize;
            if len & 0xc0 == 0xc0 {
                let lo = *self.b.get(pos + 1).ok_or("truncated name")? as usize;
                if !jumped {
                    self.pos = pos + 2;
                }
                jumped = true;
                pos = (len & 0x3f) << 8 | lo;
                continue;
            }
            if len == 0 {
                if !jumped {
                    self.pos = pos + 1;
                }
                if out.is_empty() {
                    out.push('.');
                }
                return Ok(out);
            }
            let label = self.b.get(pos + 1..pos + 1 + len).ok_or("truncated name")?;
            for &c in label {
                if c == b'.' || c == b'\\' {
                    out.push('\\');
                    out.push(c as char);
                } else if c.is_ascii_graphic() {
                    out.push(c as char);
                } else {
                    out.push_str(&format!("\\{c:03}"));
                }
            }
            out.push('.');
            pos += 1 + len;
        }
        Err("name compression loop".into())
    }
}

/// Parses a response message.
pub fn parse_message(b: &[u8]) -> Result<Message, String> {
    let mut r = Reader { b, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err("not a response (QR bit unset)".into());
    }
    let (qd, an, ns, ar) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    for _ in 0..qd {
        r.name()?;
        r.bytes(4)?;
    }
    let mut m = Message {
        id,
        rcode: flags & 0x000f,
        truncated: flags & 0x0200 != 0,
        ..Message::default()
    };
    for (section, n) in [(0, an), (1, ns), (2, ar)] {
        for _ in 0..n {
            let (rr, serial) = record(&mut r)?;
            match section {
                0 => {
                    if m.soa_serial.is_none() {
                        m.soa_serial = serial;
                    }
                    m.answer.push(rr)
                }
                1 => m.authority.push(rr),
                _ => m.additional.push(rr),
            }
        }
    }
    Ok(m)
}

fn record(r: &mut Reader) -> Result<(String, Option<u32>), String> {
    let name = r.name()?;
    let ty = r.u16()?;
    let class = r.u16()?;
    let ttl = r.u32()?;
    let len = r.u16()? as usize;
    let start = r.pos;
    let end = start + len;
    if end > r.b.len() {
        return Err("truncated record".into());
    }
    let class_s = name_of(CLASSES, class)
        .map(str::to_string)
        .unwrap_or_else(|| format!("CLASS{class}"));
    let ty_s = name_of(TYPES, ty)
        .map(str::to_string)
        .unwrap_or_else(|| format!("TYPE{ty}"));
    if ty == 41 {
        // EDNS OPT pseudo-record.
        r.pos = end;
        return Ok((format!(". 0 CLASS{class} OPT"), None));
    }
    let mut serial = None;
    let data = match ty {
        1 if len == 4 => {
            let b = r.bytes(4)?;
            Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
        }
        28 if len == 16 => {
            let b: [u8; 16] = r.bytes(16)?.try_into().map_err(|_| "bad AAAA")?;
            Ipv6Addr::from(b).to_string()
        }
        2 | 5 | 12 => r.name()?,
        15 => {
            let pref = r.u16()?;
            format!("{pref} {}", r.name()?)
        }
        16 => {
            let mut parts = Vec::new();
            while r.pos < end {
                let n = r.u8()? as usize;
                let s = r.bytes(n)?;
                let mut q = String::from("\"");
                for &c in s {
                    match c {
                        b'"' | b'\\' => {
                            q.push('\\');
                            q.push(c as char)
                        }
                        0x20..=0x7e => q.push(c as char),
                        _ => q.push_str(&format!("\\{c:03}")),
                    }
                }
                q.push('"');
                parts.push(q);
            }
            parts.join(" ")
        }
        6 => {
            let mname = r.name()?;
            let rname = r.name()?;
            let s = r.u32()?;
            serial = Some(s);
            let (refresh, retry, expire, min) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
            format!("{mname} {rname} {s} {refresh} {retry} {expire} {min}")
        }
        33 => {
            let (p, w, port) = (r.u16()?, r.u16()?, r.u16()?);
            format!("{p} {w} {port} {}", r.name()?)
        }
        _ => {
            let b = r.bytes(len)?;
            let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
            format!("\\# {len} {hex}")
        }
    };
    if r.pos > end {
        return Err(format!("{ty_s} record data longer than its length"));
    }
    r.pos = end;
    Ok((format!("{name}\t{ttl}\t{class_s}\t{ty_s}\t{data}"), serial))
}

fn next_id() -> u16 {
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos as u16) ^ ((nanos >> 16) as u16) ^ COUNTER.fetch_add(0x9e37, Ordering::Relaxed)
}

/// Checks one section's records; the error names the check.
fn validate(rrs: &[String], v: &RrValidator, section: &str) -> Result<(), String> {
    for re in &v.fail_if_matches_regexp {
        if let Some(rr) = rrs.iter().find(|rr| re.0.is_match(rr)) {
            return Err(format!(
                "{section} record {rr:?} matched fail_if_matches_regexp {:?}",
                re.0.as_str()
            ));
        }
    }
    for re in &v.fail_if_all_match_regexp {
        if !rrs.is_empty() && rrs.iter().all(|rr| re.0.is_match(rr)) {
            return Err(format!(
                "all {section} records matched fail_if_all_match_regexp {:?}",
                re.0.as_str()
            ));
        }
    }
    for re in &v.fail_if_not_matches_regexp {
        if let Some(rr) = rrs.iter().find(|rr| !re.0.is_match(rr)) {
            return Err(format!(
                "{section} record {rr:?} did not match fail_if_not_matches_regexp {:?}",
                re.0.as_str()
            ));
        }
    }
    for re in &v.fail_if_none_matches_regexp {
        if !rrs.iter().any(|rr| re.0.is_match(rr)) {
            return Err(format!(
                "no {section} record matched fail_if_none_matches_regexp {:?}",
                re.0.as_str()
            ));
        }
    }
    Ok(())
}

/// Probes the DNS server `target` (`host[:port]`, port 53 by default).
pub async fn probe(module: &Module, target: &str) -> Outcome {
    let mut out = Samples::default();
    let mut phases = [0f64; 3];
    let mut succeeded = false;
    let r = run(module, target, &mut out, &mut phases, &mut succeeded).await;
    for (i, p) in ["resolve", "connect", "request"].iter().enumerate() {
        out.push("probe_dns_duration_seconds", &[("phase", p)], phases[i]);
    }
    out.push(
        "probe_dns_query_succeeded",
        &[],
        if succeeded { 1.0 } else { 0.0 },
    );
    let msg = match r {
        Ok(m) => m,
        Err(e) => {
            for s in ["answer", "authority", "additional"] {
                out.push(&format!("probe_dns_{s}_rrs"), &[], 0.0);
            }
            return Outcome::fail(out, e);
        }
    };
    out.push("probe_dns_answer_rrs", &[], msg.answer.len() as f64);
    out.push("probe_dns_authority_rrs", &[], msg.authority.len() as f64);
    out.push("probe_dns_additional_rrs", &[], msg.additional.len() as f64);
    if let Some(s) = msg.soa_serial {
        out.push("probe_dns_serial", &[], s as f64);
    }
    let d = &module.dns;
    let valid: Vec<u16> = if d.valid_rcodes.is_empty() {
        vec![0]
    } else {
        d.valid_rcodes
            .iter()
            .filter_map(|r| rcode_code(r))
            .collect()
    };
    let check = || -> Result<(), String> {
        if !valid.contains(&msg.rcode) {
            let name = name_of(RCODES, msg.rcode)
                .map(str::to_string)
                .unwrap_or_else(|| format!("RCODE{}", msg.rcode));
            return Err(format!("rcode {name} is not in valid_rcodes"));
        }
        validate(&msg.answer, &d.validate_answer_rrs, "answer")?;
        validate(&msg.authority, &d.validate_authority_rrs, "authority")?;
        validate(&msg.additional, &d.validate_additional_rrs, "additional")
    };
    match check() {
        Ok(()) => Outcome {
            success: true,
            samples: out,
            error: String::new(),
        },
        Err(e) => Outcome::fail(out, e),
    }
}

async fn run(
    module: &Module,
    target: &str,
    out: &mut Samples,
    phases: &mut [f64; 3],
    succeeded: &mut bool,
) -> Result<Message, String> {
    let d = &module.dns;
    let (host, port) = split_host_port(target, Some(53))?;
    let (addr, took) = resolve(
        &host,
        port,
        d.preferred_ip_protocol,
        d.ip_protocol_fallback.0,
        out,
    )
    .await?;
    phases[0] = took.as_secs_f64();
    let qtype =
        qtype_code(d.query_type.as_deref().unwrap_or("ANY")).ok_or("dns.query_type: invalid")?;
    let qclass =
        qclass_code(d.query_class.as_deref().unwrap_or("IN")).ok_or("dns.query_class: invalid")?;
    let id = next_id();
    let query = encode_query(id, &d.query_name, qtype, qclass, d.recursion_desired.0)?;
    let t = Instant::now();
    let reply = match d.transport_protocol {
        Transport::Udp => {
            let bind = if addr.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let sock = UdpSocket::bind(bind)
                .await
                .map_err(|e| format!("opening a UDP socket: {e}"))?;
            sock.connect(addr)
                .await
                .map_err(|e| format!("connecting to {addr}: {e}"))?;
            phases[1] = t.elapsed().as_secs_f64();
            let t = Instant::now();
            sock.send(&query)
                .await
                .map_err(|e| format!("sending the query to {addr}: {e}"))?;
            let mut buf = vec![0u8; 65535];
            let msg = loop {
                let n = sock
                    .recv(&mut buf)
                    .await
                    .map_err(|e| format!("reading the response from {addr}: {e}"))?;
                match parse_message(&buf[..n]) {
                    // A stray datagram with another id is ignored, as resolvers do.
                    Ok(m) if m.id != id => continue,
                    Ok(m) => break m,
                    Err(e) => return Err(format!("invalid response from {addr}: {e}")),
                }
            };
            phases[2] = t.elapsed().as_secs_f64();
            msg
        }
        Transport::Tcp => {
            let mut s = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connecting to {addr}: {e}"))?;
            phases[1] = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut framed = (query.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&query);
            s.write_all(&framed)
                .await
                .map_err(|e| format!("sending the query to {addr}: {e}"))?;
            let len = s
                .read_u16()
                .await
                .map_err(|e| format!("reading the response from {addr}: {e}"))?;
            let mut buf = vec![0u8; len as usize];
            s.read_exact(&mut buf)
                .await
                .map_err(|e| format!("reading the response from {addr}: {e}"))?;
            let m =
                parse_message(&buf).map_err(|e| format!("invalid response from {addr}: {e}"))?;
            if m.id != id {
                return Err(format!(
                    "response from {addr} has id {} instead of {id}",
                    m.id
                ));
            }
            phases[2] = t.elapsed().as_secs_f64();
            m
        }
    };
    *succeeded = true;
    Ok(reply)
}
