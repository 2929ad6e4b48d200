//! Asking the VPC's DNS resolver what it answers for the task's names: how the sidecar notices its
//! records changed behind its back without spending the account's Route53 API budget (a DNS query is
//! not an API call).
//!
//! One query over UDP (EDNS0, 4 KiB), again over TCP when the answer comes back truncated. Values are
//! rendered the way Route53 stores them, so they compare with the records the sidecar wrote.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType as DnsType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use ecssd_records::RecordType;

/// What the resolver answered for one name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name does not exist, or has no record of this type (NXDOMAIN or NODATA).
    Absent,
    /// The values, rendered as Route53 stores them (`1 1 80 target.domain` for SRV, quoted strings
    /// for TXT), sorted.
    Values(Vec<String>),
}

/// A DNS resolver reachable over UDP and TCP.
#[derive(Debug, Clone, Copy)]
pub struct Resolver {
    pub address: SocketAddr,
    pub timeout: Duration,
}

impl Resolver {
    pub fn new(address: SocketAddr) -> Self {
        Self { address, timeout: Duration::from_secs(2) }
    }

    /// The resolver's answer for `name` (fully qualified) and `record_type`; an error when it cannot
    /// be reached or does not answer plainly (SERVFAIL, REFUSED...), which tells nothing about the zone.
    pub async fn query(&self, name: &str, record_type: RecordType) -> Result<Answer, String> {
        let dns_type = match record_type {
            RecordType::A => DnsType::A,
            RecordType::Aaaa => DnsType::AAAA,
            RecordType::Srv => DnsType::SRV,
            RecordType::Txt => DnsType::TXT,
        };
        let name = fqdn(name)?;
        let response = self.exchange(&name, dns_type).await?;
        answer_of(&response, &name, dns_type).map_err(|code| format!("{} answered {code}", self.address))
    }

    /// One query for `name` and `dns_type`, and the resolver's response whatever its code: over UDP
    /// (EDNS0, 4 KiB), again over TCP when the answer comes back truncated, within the timeout.
    pub async fn exchange(&self, name: &Name, dns_type: DnsType) -> Result<Message, String> {
        let id = fastrand::u16(..);
        let mut request = Message::new();
        request
            .set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(name.clone(), dns_type));
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        request.set_edns(edns);
        let bytes = request.to_vec().map_err(|e| format!("cannot encode a query: {e}"))?;
        let call = async {
            let mut response = self.over_udp(&bytes, id).await?;
            if response.truncated() {
                response = self.over_tcp(&bytes, id).await?;
            }
            Ok::<_, String>(response)
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("no answer from {} within {:?}", self.address, self.timeout))?
    }

    async fn over_udp(&self, request: &[u8], id: u16) -> Result<Message, String> {
        let local: SocketAddr =
            if self.address.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local).await.map_err(|e| format!("UDP socket: {e}"))?;
        socket.connect(self.address).await.map_err(|e| format!("UDP to {}: {e}", self.address))?;
        socket.send(request).await.map_err(|e| format!("UDP to {}: {e}", self.address))?;
        let mut buffer = vec![0; 4096];
        loop {
            let read =
                socket.recv(&mut buffer).await.map_err(|e| format!("UDP from {}: {e}", self.address))?;
            // A stray datagram (another query's late answer, garbage) is not ours: keep waiting.
            if let Ok(message) = decode(buffer.get(..read).unwrap_or_default())
                && message.id() == id
                && message.message_type() == MessageType::Response
            {
                return Ok(message);
            }
        }
    }

    async fn over_tcp(&self, request: &[u8], id: u16) -> Result<Message, String> {
        let mut stream =
            TcpStream::connect(self.address).await.map_err(|e| format!("TCP to {}: {e}", self.address))?;
        let length = u16::try_from(request.len()).map_err(|_| "query too long".to_owned())?;
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(request);
        stream.write_all(&framed).await.map_err(|e| format!("TCP to {}: {e}", self.address))?;
        let length = stream.read_u16().await.map_err(|e| format!("TCP from {}: {e}", self.address))?;
        let mut body = vec![0; usize::from(length)];
        stream.read_exact(&mut body).await.map_err(|e| format!("TCP from {}: {e}", self.address))?;
        let message = decode(&body)?;
        if message.id() != id {
            return Err("answer to another query".into());
        }
        Ok(message)
    }
}

/// How deep compression pointers may nest in a response: deeper than any real name (each level of a
/// real name adds a label, two bytes at least, to a name of at most 255), and shallow enough for the
/// decoder, which follows each level by recursion.
const MAX_POINTER_DEPTH: usize = 128;

/// A response as the resolver sent it: any bytes from the network, so never a panic, whatever they
/// hold. hickory-proto follows compression pointers by recursion, as deep as the message nests them: a
/// chain of 8,000 pointers (16 KB, a TCP answer) takes 1 to 2 MiB of stack in a release build and
/// overflows a test thread's 2 MiB in a debug one, and a stack overflow aborts the process whatever
/// the panic strategy. Such a message is refused before it reaches the decoder; a panic of the decoder
/// on any other input is an error too.
fn decode(bytes: &[u8]) -> Result<Message, String> {
    let depth = pointer_depth(bytes);
    if depth > MAX_POINTER_DEPTH {
        return Err(format!("garbled answer: compression pointers nested {depth} deep"));
    }
    match std::panic::catch_unwind(|| Message::from_vec(bytes)) {
        Ok(decoded) => decoded.map_err(|e| format!("garbled answer: {e}")),
        Err(_) => Err("garbled answer: the DNS decoder panicked on it".to_owned()),
    }
}

/// The deepest a name starting anywhere in `message` could lead the decoder through compression
/// pointers; a bound on what it follows when it reads the message's names, wherever they are. From an
/// offset, a name is labels (a length byte of 1 to 63 and as many bytes), then a root byte or a pointer
/// (two bytes `11` + 14-bit offset), which the decoder follows only to an offset before the name's own
/// start: so the depth from each offset is known from those before it, in one pass.
fn pointer_depth(message: &[u8]) -> usize {
    let mut depth = vec![0_usize; message.len()];
    let mut deepest = 0;
    for start in 0..message.len() {
        let mut at = start;
        // Past 255 bytes of labels the decoder refuses the name (too long) before any pointer.
        while at - start <= 255
            && let Some(&length) = message.get(at)
            && length != 0
            && length & 0xC0 == 0
        {
            at += 1 + usize::from(length);
        }
        let (Some(&high), Some(&low)) = (message.get(at), message.get(at + 1)) else { continue };
        if high & 0xC0 != 0xC0 {
            continue;
        }
        let target = usize::from(u16::from_be_bytes([high & 0x3F, low]));
        if target < start
            && let Some(&below) = depth.get(target)
            && let Some(here) = depth.get_mut(start)
        {
            *here = below + 1;
            deepest = deepest.max(*here);
        }
    }
    deepest
}

/// What `response` says about `name` and `dns_type`: the values of its records of that name and type
/// (other records, e.g. of a CNAME chain, are not the ones ecssd wrote), or the response's code when it
/// answered neither plainly nor NXDOMAIN.
fn answer_of(response: &Message, name: &Name, dns_type: DnsType) -> Result<Answer, ResponseCode> {
    match response.response_code() {
        ResponseCode::NXDomain => return Ok(Answer::Absent),
        ResponseCode::NoError => {}
        code => return Err(code),
    }
    let mut values: Vec<String> = response
        .answers()
        .iter()
        .filter(|record| record.record_type() == dns_type && record.name() == name)
        .filter_map(|record| render(record.data()))
        .collect();
    if values.is_empty() {
        return Ok(Answer::Absent);
    }
    values.sort();
    Ok(Answer::Values(values))
}

/// `name` as a fully qualified DNS name (a missing final dot is implied).
pub fn fqdn(name: &str) -> Result<Name, String> {
    let mut parsed = Name::from_ascii(name).map_err(|e| format!("bad name {name:?}: {e}"))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// One value as Route53 stores it; `None` for types ecssd does not write.
fn render(data: &RData) -> Option<String> {
    Some(match data {
        RData::A(address) => address.0.to_string(),
        RData::AAAA(address) => address.0.to_string(),
        RData::SRV(srv) => {
            let target = srv.target().to_ascii().to_ascii_lowercase();
            format!("{} {} {} {}", srv.priority(), srv.weight(), srv.port(), target.trim_end_matches('.'))
        }
        RData::TXT(txt) => txt
            .txt_data()
            .iter()
            .map(|string| format!("\"{}\"", String::from_utf8_lossy(string)))
            .collect::<Vec<_>>()
            .join(" "),
        _ => return None,
    })
}

/// The resolver the task uses: the first `nameserver` of `/etc/resolv.conf` (in an ECS task, the VPC's
/// resolver), port 53.
pub fn system_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    first_nameserver(&text)
}

fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_nameserver_of_resolv_conf_is_the_resolver() {
        let text = "# generated\nsearch ec2.internal\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
        assert_eq!(first_nameserver(text), Some("10.0.0.2:53".parse().expect("address")));
        assert_eq!(
            first_nameserver("nameserver fd00:ec2::253\n"),
            Some("[fd00:ec2::253]:53".parse().expect("address"))
        );
        assert_eq!(first_nameserver("search x\n"), None);
        assert_eq!(first_nameserver("nameserver not-an-ip\n"), None);
    }

    /// A response ecssd could get: a header, a question, answers of the types it asks about and others,
    /// an authority SOA, EDNS with options, names sharing suffixes (so compressed) and odd labels;
    /// encoded by hickory-proto itself.
    fn valid_response(rng: &mut fastrand::Rng) -> Vec<u8> {
        use hickory_proto::op::Edns;
        use hickory_proto::rr::Record;
        use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
        use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV, TXT};
        let zone = fqdn("servicediscovery.internal").unwrap();
        let name = |rng: &mut fastrand::Rng| -> Name {
            let mut labels: Vec<Vec<u8>> = Vec::new();
            for _ in 0..rng.usize(0..4) {
                let label: Vec<u8> = match rng.u8(0..4) {
                    0 => b"_web".to_vec(),
                    1 => b"_tcp".to_vec(),
                    2 => (0..rng.usize(1..64)).map(|_| rng.u8(..)).collect(),
                    _ => (0..rng.usize(1..12)).map(|_| rng.alphanumeric() as u8).collect(),
                };
                labels.push(label);
            }
            let relative = Name::from_labels(labels).unwrap_or_default();
            relative.append_domain(&zone).unwrap_or_else(|_| zone.clone())
        };
        let question = name(rng);
        let types = [DnsType::A, DnsType::SRV, DnsType::TXT];
        let mut message = Message::new();
        message
            .set_id(rng.u16(..))
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_truncated(rng.u8(..10) == 0)
            .set_recursion_available(rng.bool())
            .set_response_code(match rng.u8(..8) {
                0 => ResponseCode::NXDomain,
                1 => ResponseCode::ServFail,
                2 => ResponseCode::Refused,
                _ => ResponseCode::NoError,
            })
            .add_query(Query::query(question.clone(), types[rng.usize(..types.len())]));
        for _ in 0..rng.usize(0..10) {
            let owner = if rng.bool() { question.clone() } else { name(rng) };
            let data = match rng.u8(..6) {
                0 => RData::A(A::new(rng.u8(..), rng.u8(..), rng.u8(..), rng.u8(..))),
                1 => RData::AAAA(AAAA::from(std::net::Ipv6Addr::from(rng.u128(..)))),
                2 => RData::CNAME(CNAME(name(rng))),
                3 => RData::TXT(TXT::from_bytes(
                    (0..rng.usize(0..4))
                        .map(|_| (0..rng.usize(0..256)).map(|_| rng.u8(..)).collect::<Vec<u8>>())
                        .collect::<Vec<_>>()
                        .iter()
                        .map(Vec::as_slice)
                        .collect(),
                )),
                _ => RData::SRV(SRV::new(rng.u16(..), rng.u16(..), rng.u16(..), name(rng))),
            };
            message.add_answer(Record::from_rdata(owner, rng.u32(..), data));
        }
        if rng.bool() {
            let soa = SOA::new(name(rng), name(rng), rng.u32(..), 7200, 900, 1_209_600, rng.u32(..));
            message.add_name_server(Record::from_rdata(zone.clone(), 900, RData::SOA(soa)));
        }
        if rng.bool() {
            let mut edns = Edns::new();
            edns.set_max_payload(rng.u16(..)).set_rcode_high(rng.u8(..4)).set_version(rng.u8(..2));
            if rng.bool() {
                let address = std::net::Ipv4Addr::from(rng.u32(..)).into();
                let subnet = ClientSubnet::new(address, rng.u8(..=32), rng.u8(..=32));
                edns.options_mut().insert(EdnsOption::Subnet(subnet));
            }
            if rng.bool() {
                let data = (0..rng.usize(0..16)).map(|_| rng.u8(..)).collect();
                edns.options_mut().insert(EdnsOption::Unknown(rng.u16(..), data));
            }
            message.set_edns(edns);
        }
        message.to_vec().unwrap_or_default()
    }

    /// Type codes whose data hickory-proto decodes (besides A, SRV, TXT): written over a record's type
    /// so that mutated data reaches each decoder.
    const TYPE_CODES: [u16; 24] =
        [1, 2, 5, 6, 10, 12, 13, 15, 16, 28, 33, 35, 37, 41, 44, 52, 61, 62, 64, 65, 99, 250, 251, 257];

    /// `bytes` damaged the ways a packet or a broken resolver damages one, a few times over.
    fn mutate(rng: &mut fastrand::Rng, mut bytes: Vec<u8>, other: &[u8]) -> Vec<u8> {
        for _ in 0..rng.usize(1..8) {
            let at = rng.usize(..=bytes.len());
            match rng.u8(..11) {
                0 if !bytes.is_empty() => {
                    let i = rng.usize(..bytes.len());
                    bytes[i] ^= 1 << rng.u8(..8);
                }
                1 if !bytes.is_empty() => {
                    let i = rng.usize(..bytes.len());
                    bytes[i] = rng.u8(..);
                }
                // A compression pointer to anywhere (or a reserved label type).
                2 if at + 2 <= bytes.len() => {
                    let pointer = (u16::from(rng.u8(0x40..)) << 8 | u16::from(rng.u8(..))).to_be_bytes();
                    bytes[at..at + 2].copy_from_slice(&pointer);
                }
                // Counts in the header, up to the largest.
                3 if bytes.len() >= 12 => {
                    let i = 4 + 2 * rng.usize(..4);
                    let count = if rng.bool() { rng.u16(..) } else { rng.u16(..16) };
                    bytes[i..i + 2].copy_from_slice(&count.to_be_bytes());
                }
                4 if at + 2 <= bytes.len() => {
                    let code = TYPE_CODES[rng.usize(..TYPE_CODES.len())];
                    bytes[at..at + 2].copy_from_slice(&code.to_be_bytes());
                }
                5 => bytes.truncate(at),
                6 => {
                    let end = rng.usize(at..=bytes.len());
                    bytes.drain(at..end);
                }
                7 => {
                    let inserted: Vec<u8> = (0..rng.usize(1..16)).map(|_| rng.u8(..)).collect();
                    bytes.splice(at..at, inserted);
                }
                8 => {
                    let end = rng.usize(at..=bytes.len().min(at + 64));
                    let copy = bytes[at..end].to_vec();
                    let to = rng.usize(..=bytes.len());
                    bytes.splice(to..to, copy);
                }
                9 => {
                    let from = rng.usize(..=other.len());
                    bytes.truncate(at);
                    bytes.extend_from_slice(&other[from..]);
                }
                _ if at + 1 < bytes.len() => {
                    // A record data length, or any other 16-bit field, off by a little.
                    let value = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
                    let delta = rng.u16(..8);
                    let value =
                        if rng.bool() { value.wrapping_add(delta) } else { value.wrapping_sub(delta) };
                    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
                }
                _ => {}
            }
        }
        bytes
    }

    /// Feeds `bytes` to hickory-proto's decoder as it is (what `query` relied on before `decode`),
    /// unless the depth guard refuses them, then to the sidecar's whole path for each type it asks
    /// about: any outcome but a panic.
    fn check(bytes: &[u8]) -> Result<(), String> {
        use std::panic::catch_unwind;
        if pointer_depth(bytes) <= MAX_POINTER_DEPTH && catch_unwind(|| Message::from_vec(bytes)).is_err() {
            return Err("hickory-proto's decoder panicked".to_owned());
        }
        let name = fqdn("_web._tcp.servicediscovery.internal").unwrap();
        catch_unwind(|| {
            let mut outcomes = Vec::new();
            match decode(bytes) {
                Ok(message) => {
                    for dns_type in [DnsType::A, DnsType::SRV, DnsType::TXT] {
                        match answer_of(&message, &name, dns_type) {
                            Ok(answer) => outcomes.push(format!("{answer:?}")),
                            Err(code) => outcomes.push(format!("answered {code}")),
                        }
                    }
                }
                Err(e) => outcomes.push(e),
            }
            outcomes
        })
        .map(|_| ())
        .map_err(|_| "the sidecar's decoding panicked".to_owned())
    }

    #[test]
    fn dns_answers_of_any_bytes_never_panic() {
        // More with ECSSD_DNS_FUZZ_ITERATIONS (and another seed with ECSSD_DNS_FUZZ_SEED).
        let iterations: usize =
            std::env::var("ECSSD_DNS_FUZZ_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(60_000);
        let seed = std::env::var("ECSSD_DNS_FUZZ_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(0xEC55D);
        let mut rng = fastrand::Rng::with_seed(seed);
        let corpus: Vec<Vec<u8>> = (0..256).map(|_| valid_response(&mut rng)).collect();
        assert!(corpus.iter().all(|bytes| decode(bytes).is_ok()), "the corpus is valid");
        let mut decoded = 0;
        for i in 0..iterations {
            let bytes = match i % 10 {
                // Random bytes, some behind a plausible header.
                0 => {
                    let mut bytes: Vec<u8> = (0..rng.usize(0..600)).map(|_| rng.u8(..)).collect();
                    if rng.bool() && bytes.len() >= 12 {
                        bytes[..12].copy_from_slice(&[0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1]);
                    }
                    bytes
                }
                1 => valid_response(&mut rng),
                _ => {
                    let base = corpus[rng.usize(..corpus.len())].clone();
                    let other = &corpus[rng.usize(..corpus.len())];
                    mutate(&mut rng, base, other)
                }
            };
            if let Err(problem) = check(&bytes) {
                panic!("{problem} (seed {seed}, iteration {i}) on {} bytes: {bytes:02x?}", bytes.len());
            }
            decoded += usize::from(decode(&bytes).is_ok());
        }
        // The mutations keep enough of the messages intact to reach past the header.
        assert!(decoded > iterations / 10, "{decoded} of {iterations} decoded");
    }

    /// A response whose second answer is named by the last of `depth` compression pointers, each
    /// pointing at the one before it, hidden in the first answer's data.
    fn pointer_chain(depth: usize) -> Vec<u8> {
        let mut message = vec![0x12, 0x34, 0x81, 0x80, 0, 0, 0, 2, 0, 0, 0, 0];
        // Answer 1: the root's NULL record, whose data is a root label then the chain.
        message.extend_from_slice(&[0, 0, 10, 0, 1, 0, 0, 0, 10, 0, 0]);
        let start = message.len();
        message.push(0);
        let mut previous = start;
        for _ in 0..depth {
            let here = message.len();
            message.extend_from_slice(&(0xC000 | u16::try_from(previous).unwrap()).to_be_bytes());
            previous = here;
        }
        let length = u16::try_from(message.len() - start).unwrap().to_be_bytes();
        message[start - 2..start].copy_from_slice(&length);
        // Answer 2: an A record whose owner is the chain's end.
        message.extend_from_slice(&(0xC000 | u16::try_from(previous).unwrap()).to_be_bytes());
        message.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 10, 0, 0, 1]);
        message
    }

    #[test]
    fn compression_pointers_nested_deeper_than_any_name_are_refused_not_followed() {
        // 2,000 fit a UDP answer of 4 KiB; 8,000 (16 KB, a TCP answer) are as deep as 14-bit offsets go.
        for depth in [MAX_POINTER_DEPTH + 1, 2_000, 8_000] {
            let bytes = pointer_chain(depth);
            assert_eq!(pointer_depth(&bytes), depth + 1);
            let refused = decode(&bytes).expect_err("refused");
            assert!(refused.contains("compression pointers nested"), "{refused}");
            check(&bytes).unwrap();
        }
        // Shallow chains are only odd: decoded, and the answer is for the root.
        let message = decode(&pointer_chain(100)).expect("decoded");
        assert_eq!(message.answers().len(), 2);
        assert_eq!(
            answer_of(&message, &Name::root(), DnsType::A),
            Ok(Answer::Values(vec!["10.0.0.1".into()]))
        );
    }

    #[test]
    fn names_compressed_as_deep_as_names_go_are_decoded() {
        use hickory_proto::rr::Record;
        use hickory_proto::rr::rdata::A;
        // Each name is one label longer than the one before, so each is compressed into a pointer
        // to the one before: 126 deep, a name of 253 bytes.
        let mut message = Message::new();
        message.set_message_type(MessageType::Response);
        let mut name = Name::root();
        for i in 0..126 {
            name = Name::from_labels([b"a".as_slice()]).unwrap().append_domain(&name).unwrap();
            message.add_answer(Record::from_rdata(name.clone(), 10, RData::A(A::new(10, 0, 0, i))));
        }
        let bytes = message.to_vec().unwrap();
        assert!(pointer_depth(&bytes) >= 120, "{}", pointer_depth(&bytes));
        let decoded = decode(&bytes).expect("decoded");
        assert_eq!(answer_of(&decoded, &name, DnsType::A), Ok(Answer::Values(vec!["10.0.0.125".into()])));
    }

    #[test]
    fn answers_are_the_records_of_the_name_and_type_asked_rendered_as_route53_stores_them() {
        use hickory_proto::rr::Record;
        use hickory_proto::rr::rdata::{A, SRV, TXT};
        let name = fqdn("_web._tcp.servicediscovery.internal").unwrap();
        let other = fqdn("_calc._tcp.servicediscovery.internal").unwrap();
        let target = fqdn("Task-1.servicediscovery.internal").unwrap();
        let mut message = Message::new();
        message.set_message_type(MessageType::Response);
        message
            .add_answer(Record::from_rdata(
                name.clone(),
                10,
                RData::SRV(SRV::new(1, 1, 8080, target.clone())),
            ))
            .add_answer(Record::from_rdata(name.clone(), 10, RData::SRV(SRV::new(1, 1, 80, target))))
            .add_answer(Record::from_rdata(other, 10, RData::SRV(SRV::new(1, 1, 81, name.clone()))))
            .add_answer(Record::from_rdata(name.clone(), 10, RData::A(A::new(10, 0, 0, 1))))
            .add_answer(Record::from_rdata(
                name.clone(),
                10,
                RData::TXT(TXT::new(vec!["a".into(), "b".into()])),
            ));
        let decoded = decode(&message.to_vec().unwrap()).unwrap();
        let upper = fqdn("_WEB._tcp.servicediscovery.internal").unwrap();
        assert_eq!(
            answer_of(&decoded, &upper, DnsType::SRV),
            Ok(Answer::Values(vec![
                "1 1 80 task-1.servicediscovery.internal".into(),
                "1 1 8080 task-1.servicediscovery.internal".into()
            ]))
        );
        assert_eq!(answer_of(&decoded, &name, DnsType::TXT), Ok(Answer::Values(vec!["\"a\" \"b\"".into()])));
        message.set_response_code(ResponseCode::ServFail);
        let failed = decode(&message.to_vec().unwrap()).unwrap();
        assert_eq!(answer_of(&failed, &name, DnsType::SRV), Err(ResponseCode::ServFail));
        message.set_response_code(ResponseCode::NXDomain);
        let absent = decode(&message.to_vec().unwrap()).unwrap();
        assert_eq!(answer_of(&absent, &name, DnsType::SRV), Ok(Answer::Absent));
    }
}
