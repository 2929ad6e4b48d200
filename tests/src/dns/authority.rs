//! The zone's authoritative name server, as Route53's own servers answer for a hosted zone: from a
//! snapshot of the zone (its SOA and records) that is replaced in place as the zone changes, on UDP
//! and TCP on loopback. It never caches and never recurses; the caching resolver in front of it
//! ([`super::resolver`]) plays the VPC's Route53 Resolver.
//!
//! The answers ([`respond`], a pure function): AA set; a name's A, AAAA, SRV or TXT record sets with each
//! set's own TTL (the multivalue sets of one name and type together); the SOA at the apex; NXDOMAIN
//! for a name with no records at or below it, NOERROR without answers (NODATA) for a name that has
//! only other types or only names below it, both with the SOA in the authority section at
//! min(SOA TTL, MINIMUM), the TTL a resolver caches the absence for (RFC 2308 §3, §5); REFUSED for
//! names outside the zone and, while no zone has the domain, for every name, as a Route53 name
//! server answers for a zone it does not host. Not served: the apex NS records (nothing here asks).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use ecssd_records::{Record, RecordType, Soa};
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record as DnsRecord, RecordType as DnsType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// The EDNS payload size this server offers; a UDP answer larger than the client's gets TC set.
const EDNS_PAYLOAD: u16 = 4096;

/// What a hosted zone holds, as Route53 lists it: its SOA and its A, SRV and TXT record sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneContents {
    pub soa: Soa,
    pub records: Vec<Record>,
}

impl ZoneContents {
    /// The same contents whatever order the records were listed in, to compare snapshots.
    fn sorted(mut self) -> Self {
        self.records.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }
}

/// A zone ready to answer from: names parsed, values turned into DNS records.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    soa: SOA,
    soa_ttl: u32,
    negative_ttl: u32,
    /// Every record set's records by (owner name, type); names compare case-insensitively.
    rrsets: BTreeMap<(Name, DnsType), Vec<(u32, RData)>>,
}

impl Zone {
    /// Compiles `contents` of the zone named `domain`; an error names a record DNS cannot carry
    /// (Route53 refuses such a value, so the emulator accepting it is the bug to see).
    pub fn new(domain: &str, contents: &ZoneContents) -> anyhow::Result<Self> {
        let origin = fqdn(domain)?;
        let soa = &contents.soa;
        let soa_data = SOA::new(
            fqdn(&soa.primary)?,
            fqdn(&soa.mailbox)?,
            soa.serial,
            // The wire's 32 bits, which hickory types as signed.
            soa.refresh as i32,
            soa.retry as i32,
            soa.expire as i32,
            soa.minimum,
        );
        let mut rrsets: BTreeMap<(Name, DnsType), Vec<(u32, RData)>> = BTreeMap::new();
        for record in &contents.records {
            let name = fqdn(&record.key.name)?;
            anyhow::ensure!(origin.zone_of(&name), "record {} lies outside the zone {domain}", record.key);
            for value in record.values() {
                let data = rdata(record.key.record_type, value)
                    .with_context(|| format!("record {} value {value:?}", record.key))?;
                rrsets.entry((name.clone(), data.record_type())).or_default().push((record.ttl, data));
            }
        }
        Ok(Self { origin, soa: soa_data, soa_ttl: soa.ttl, negative_ttl: soa.negative_ttl(), rrsets })
    }

    /// Whether `name` exists: the apex, a name with records, or a name with records below it (an
    /// empty non-terminal, RFC 8020).
    fn has_name(&self, name: &Name) -> bool {
        *name == self.origin || self.rrsets.keys().any(|(owner, _)| name.zone_of(owner))
    }

    /// The SOA as the authority section of a negative answer carries it (RFC 2308 §3).
    fn negative_soa(&self) -> DnsRecord {
        DnsRecord::from_rdata(self.origin.clone(), self.negative_ttl, RData::SOA(self.soa.clone()))
    }
}

/// `name` as a fully qualified DNS name.
fn fqdn(name: &str) -> anyhow::Result<Name> {
    let mut parsed = Name::from_ascii(name).with_context(|| format!("bad DNS name {name:?}"))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// One value, as Route53 stores it, as DNS record data.
fn rdata(record_type: RecordType, value: &str) -> anyhow::Result<RData> {
    Ok(match record_type {
        RecordType::A => RData::A(A(value.parse::<Ipv4Addr>()?)),
        RecordType::Aaaa => RData::AAAA(AAAA(value.parse::<Ipv6Addr>()?)),
        RecordType::Srv => {
            let fields: Vec<&str> = value.split_whitespace().collect();
            let [priority, weight, port, target] = fields[..] else {
                anyhow::bail!("not `priority weight port target`");
            };
            RData::SRV(SRV::new(priority.parse()?, weight.parse()?, port.parse()?, fqdn(target)?))
        }
        RecordType::Txt => {
            let strings = txt_strings(value);
            if let Some(long) = strings.iter().find(|s| s.len() > 255) {
                anyhow::bail!("a TXT string of {} bytes (at most 255)", long.len());
            }
            RData::TXT(TXT::new(strings))
        }
    })
}

/// The character-strings of a TXT value as Route53 stores it (`"a" "b"`; a backslash escapes the
/// next character; an unquoted run of characters is one string).
pub(crate) fn txt_strings(value: &str) -> Vec<String> {
    let mut strings = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let quoted = c == '"';
        if quoted {
            chars.next();
        }
        let mut string = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => string.extend(chars.next()),
                '"' if quoted => break,
                c if c.is_whitespace() && !quoted => break,
                c => string.push(c),
            }
        }
        strings.push(string);
    }
    strings
}

/// The response to `request` from `zone` (`None`: no zone has the domain now).
pub fn respond(zone: Option<&Zone>, request: &Message) -> Message {
    let mut response = Message::new();
    response.set_header(Header::response_from_request(request.header()));
    response.add_queries(request.queries().iter().cloned());
    if request.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD).set_version(0);
        response.set_edns(edns);
    }
    if request.op_code() != OpCode::Query {
        response.set_response_code(ResponseCode::NotImp);
        return response;
    }
    let [query] = request.queries() else {
        response.set_response_code(ResponseCode::FormErr);
        return response;
    };
    let name = query.name();
    let Some(zone) = zone.filter(|zone| query.query_class() == DNSClass::IN && zone.origin.zone_of(name))
    else {
        response.set_response_code(ResponseCode::Refused);
        return response;
    };
    response.set_authoritative(true);
    let query_type = query.query_type();
    if query_type == DnsType::SOA && *name == zone.origin {
        response.add_answer(DnsRecord::from_rdata(name.clone(), zone.soa_ttl, RData::SOA(zone.soa.clone())));
        return response;
    }
    if let Some(records) = zone.rrsets.get(&(name.clone(), query_type)) {
        // Owned by the name as asked (its case), as the question's compression pointer would give.
        response.add_answers(
            records.iter().map(|(ttl, data)| DnsRecord::from_rdata(name.clone(), *ttl, data.clone())),
        );
        return response;
    }
    if !zone.has_name(name) {
        response.set_response_code(ResponseCode::NXDomain);
    }
    response.add_name_server(zone.negative_soa());
    response
}

/// The bytes to send for `response` over a transport carrying at most `limit` bytes: the response,
/// or, when it does not fit, its header and question with TC set (the client asks again over TCP).
fn encode(response: &Message, limit: usize) -> Vec<u8> {
    match response.to_vec() {
        Ok(bytes) if bytes.len() <= limit => return bytes,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "authoritative DNS: cannot encode an answer; SERVFAIL");
            let mut failure = Message::error_msg(response.id(), response.op_code(), ResponseCode::ServFail);
            failure.add_queries(response.queries().iter().cloned());
            return failure.to_vec().unwrap_or_default();
        }
    }
    response.truncate().to_vec().unwrap_or_default()
}

/// What the server answers from: `None` while no zone has the domain.
type Snapshot = Arc<Option<Zone>>;

/// The zone's contents as served now, and the compiled zone answering for them.
#[derive(Debug)]
struct Served {
    contents: Option<ZoneContents>,
    zone: Snapshot,
}

/// The authoritative server on `127.0.0.1:<port>` (UDP and TCP); stops when dropped.
#[derive(Debug)]
pub struct Authority {
    domain: String,
    address: SocketAddr,
    served: Arc<Mutex<Served>>,
    servers: Vec<JoinHandle<()>>,
}

impl Authority {
    /// Starts serving `contents` of the zone named `domain` (`None`: no such zone) on a free
    /// loopback port.
    pub async fn start(domain: &str, contents: Option<ZoneContents>) -> anyhow::Result<Self> {
        let contents = contents.map(ZoneContents::sorted);
        let zone = contents.as_ref().map(|c| Zone::new(domain, c)).transpose()?;
        let served = Arc::new(Mutex::new(Served { contents, zone: Arc::new(zone) }));
        let (udp, tcp) = bind_udp_and_tcp().await?;
        let address = udp.local_addr()?;
        let servers =
            vec![tokio::spawn(serve_udp(udp, served.clone())), tokio::spawn(serve_tcp(tcp, served.clone()))];
        Ok(Self { domain: domain.to_owned(), address, served, servers })
    }

    /// Answers from `contents` from now on (`None`: the zone is gone); true when that changed
    /// anything. Queries already being answered finish with the previous snapshot.
    pub fn serve(&self, contents: Option<ZoneContents>) -> anyhow::Result<bool> {
        let contents = contents.map(ZoneContents::sorted);
        let mut served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        if served.contents == contents {
            return Ok(false);
        }
        let zone = contents.as_ref().map(|c| Zone::new(&self.domain, c)).transpose()?;
        *served = Served { contents, zone: Arc::new(zone) };
        Ok(true)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

/// A UDP socket and a TCP listener on the same free loopback port.
async fn bind_udp_and_tcp() -> anyhow::Result<(UdpSocket, TcpListener)> {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").await?;
        if let Ok(udp) = UdpSocket::bind(tcp.local_addr()?).await {
            return Ok((udp, tcp));
        }
    }
    anyhow::bail!("no loopback port free for both TCP and UDP in 100 tries")
}

fn snapshot(served: &Mutex<Served>) -> Snapshot {
    served.lock().unwrap_or_else(PoisonError::into_inner).zone.clone()
}

/// The response to one query's bytes; `None` for what is not a query (dropped, as garbage is).
fn answer_bytes(served: &Mutex<Served>, request: &[u8], transport_limit: Option<usize>) -> Option<Vec<u8>> {
    let request = Message::from_vec(request).ok()?;
    if request.message_type() != MessageType::Query {
        return None;
    }
    let zone = snapshot(served);
    let response = respond(Option::as_ref(&zone), &request);
    // UDP: what the client said it takes (512 without EDNS); TCP: a message's 16-bit length.
    let limit = transport_limit.unwrap_or(usize::from(request.max_payload()));
    Some(encode(&response, limit))
}

async fn serve_udp(socket: UdpSocket, served: Arc<Mutex<Served>>) {
    let mut buffer = vec![0; 65_535];
    loop {
        let (read, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!(error = %e, "authoritative DNS: UDP receive failed");
                continue;
            }
        };
        if let Some(bytes) = answer_bytes(&served, &buffer[..read], None) {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, served: Arc<Mutex<Served>>) {
    // Owned here, so stopping the server (aborting this task) also ends its open connections.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, served.clone()));
                }
                Err(e) => tracing::debug!(error = %e, "authoritative DNS: TCP accept failed"),
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Answers length-prefixed queries on one connection until the client closes it (RFC 1035 §4.2.2).
async fn serve_connection(mut stream: TcpStream, served: Arc<Mutex<Served>>) {
    loop {
        let Ok(length) = stream.read_u16().await else { return };
        let mut request = vec![0; usize::from(length)];
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        let Some(bytes) = answer_bytes(&served, &request, Some(usize::from(u16::MAX))) else { return };
        let Ok(length) = u16::try_from(bytes.len()) else { return };
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use ecssd_records::RecordKey;
    use hickory_proto::op::Query;

    use super::*;

    const DOMAIN: &str = "servicediscovery.internal";

    fn record(name: &str, record_type: RecordType, set_identifier: Option<&str>, values: &[&str]) -> Record {
        let key = RecordKey {
            name: format!("{name}.{DOMAIN}."),
            record_type,
            set_identifier: set_identifier.map(String::from),
        };
        Record::new(key, 10, values.iter().map(|v| (*v).to_owned()).collect())
    }

    /// A zone like a new Route53 zone (TTL 900, MINIMUM 86400) holding one task's records.
    fn contents() -> ZoneContents {
        let soa = Soa::parse(900, "ns-2048.awsdns-64.com. hostmaster.amazon.com. 1 7200 900 1209600 86400")
            .expect("a valid SOA");
        let mut other_target =
            record("_web._tcp", RecordType::Srv, Some("b"), &["1 1 8081 t1.servicediscovery.internal"]);
        other_target.ttl = 20;
        ZoneContents {
            soa,
            records: vec![
                record("t1", RecordType::A, None, &["10.0.0.7"]),
                record("_web._tcp", RecordType::Srv, Some("a"), &["1 1 8080 t1.servicediscovery.internal"]),
                other_target,
                record(
                    "_ecssd.t1",
                    RecordType::Txt,
                    None,
                    &[r#""heritage=ecssd" "a, b""#, r#""say \"hi\"""#],
                ),
            ],
        }
    }

    fn zone() -> Zone {
        Zone::new(DOMAIN, &contents()).expect("compiles")
    }

    fn ask(zone: Option<&Zone>, name: &str, record_type: DnsType) -> Message {
        let mut request = Message::new();
        request
            .set_id(7)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(fqdn(name).expect("a name"), record_type));
        respond(zone, &request)
    }

    /// The authority section's one SOA: its TTL and MINIMUM.
    fn negative_soa(response: &Message) -> (u32, u32) {
        let [soa] = response.name_servers() else { panic!("one authority record: {response:?}") };
        let RData::SOA(data) = soa.data() else { panic!("an SOA: {soa:?}") };
        assert_eq!(soa.name(), &fqdn(DOMAIN).expect("the apex"));
        (soa.ttl(), data.minimum())
    }

    #[test]
    fn records_are_answered_authoritatively_with_their_own_ttls() {
        let zone = zone();
        let response = ask(Some(&zone), "t1.servicediscovery.internal", DnsType::A);
        assert_eq!(response.id(), 7);
        assert_eq!(response.message_type(), MessageType::Response);
        assert!(response.authoritative());
        assert!(!response.recursion_available(), "an authority does not recurse");
        assert_eq!(response.response_code(), ResponseCode::NoError);
        let [a] = response.answers() else { panic!("{response:?}") };
        assert_eq!((a.ttl(), a.data()), (10, &RData::A(A::new(10, 0, 0, 7))));
        assert!(response.name_servers().is_empty());

        let response = ask(Some(&zone), "_web._tcp.servicediscovery.internal", DnsType::SRV);
        let mut targets: Vec<(u32, u16)> = response
            .answers()
            .iter()
            .map(|r| match r.data() {
                RData::SRV(srv) => (r.ttl(), srv.port()),
                other => panic!("{other:?}"),
            })
            .collect();
        targets.sort();
        assert_eq!(targets, [(10, 8080), (20, 8081)], "every multivalue set of the name, each its TTL");
    }

    #[test]
    fn txt_values_are_their_character_strings() {
        let response = ask(Some(&zone()), "_ecssd.t1.servicediscovery.internal", DnsType::TXT);
        let mut rrs: Vec<Vec<String>> = response
            .answers()
            .iter()
            .map(|r| match r.data() {
                RData::TXT(txt) => {
                    txt.txt_data().iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        rrs.sort();
        assert_eq!(
            rrs,
            [vec!["heritage=ecssd".to_owned(), "a, b".to_owned()], vec![r#"say "hi""#.to_owned()]]
        );
    }

    #[test]
    fn names_are_case_insensitive_and_answered_as_asked() {
        let response = ask(Some(&zone()), "T1.ServiceDiscovery.INTERNAL", DnsType::A);
        let [a] = response.answers() else { panic!("{response:?}") };
        assert_eq!(a.name().to_ascii(), "T1.ServiceDiscovery.INTERNAL.");
    }

    #[test]
    fn a_name_without_records_is_nxdomain_with_the_soa_for_its_negative_ttl() {
        let response = ask(Some(&zone()), "_calc._tcp.servicediscovery.internal", DnsType::SRV);
        assert_eq!(response.response_code(), ResponseCode::NXDomain);
        assert!(response.authoritative());
        assert!(response.answers().is_empty());
        assert_eq!(negative_soa(&response), (900, 86_400), "min(TTL 900, MINIMUM 86400)");
    }

    #[test]
    fn a_name_with_other_types_or_names_below_is_nodata_with_the_soa() {
        let zone = zone();
        for (name, record_type) in [
            ("t1.servicediscovery.internal", DnsType::SRV),
            ("t1.servicediscovery.internal", DnsType::TXT),
            // Empty non-terminals: names below them exist.
            ("_tcp.servicediscovery.internal", DnsType::SRV),
            ("servicediscovery.internal", DnsType::A),
        ] {
            let response = ask(Some(&zone), name, record_type);
            assert_eq!(response.response_code(), ResponseCode::NoError, "{name} {record_type}");
            assert!(response.answers().is_empty(), "{name} {record_type}");
            assert_eq!(negative_soa(&response), (900, 86_400), "{name} {record_type}");
        }
    }

    #[test]
    fn the_negative_ttl_is_the_lesser_of_the_soa_ttl_and_minimum() {
        let mut short = contents();
        short.soa = short.soa.with_negative_ttl(10).expect("a change");
        short.soa.ttl = 30;
        let zone = Zone::new(DOMAIN, &short).expect("compiles");
        let response = ask(Some(&zone), "gone.servicediscovery.internal", DnsType::A);
        assert_eq!(negative_soa(&response), (10, 10));
        short.soa.ttl = 5;
        let zone = Zone::new(DOMAIN, &short).expect("compiles");
        let response = ask(Some(&zone), "gone.servicediscovery.internal", DnsType::A);
        assert_eq!(negative_soa(&response), (5, 10), "the SOA's own TTL when lower");
    }

    #[test]
    fn the_apex_answers_its_soa() {
        let response = ask(Some(&zone()), "servicediscovery.internal", DnsType::SOA);
        let [soa] = response.answers() else { panic!("{response:?}") };
        let RData::SOA(data) = soa.data() else { panic!("{soa:?}") };
        assert_eq!((soa.ttl(), data.serial(), data.minimum()), (900, 1, 86_400));
        assert_eq!(data.mname().to_ascii(), "ns-2048.awsdns-64.com.");
    }

    #[test]
    fn names_outside_the_zone_and_any_name_without_a_zone_are_refused() {
        let zone = zone();
        for (zone, name) in [
            (Some(&zone), "example.com"),
            (Some(&zone), "internal"),
            (Some(&zone), "xservicediscovery.internal"),
            (None, "t1.servicediscovery.internal"),
        ] {
            let response = ask(zone, name, DnsType::A);
            assert_eq!(response.response_code(), ResponseCode::Refused, "{name}");
            assert!(!response.authoritative(), "{name}");
            assert!(response.answers().is_empty() && response.name_servers().is_empty(), "{name}");
        }
    }

    #[test]
    fn only_plain_queries_are_answered() {
        let mut notify = Message::new();
        notify
            .set_op_code(OpCode::Notify)
            .add_query(Query::query(fqdn(DOMAIN).expect("a name"), DnsType::SOA));
        assert_eq!(respond(Some(&zone()), &notify).response_code(), ResponseCode::NotImp);
        let mut two = Message::new();
        two.add_query(Query::query(fqdn(DOMAIN).expect("a name"), DnsType::SOA));
        two.add_query(Query::query(fqdn(DOMAIN).expect("a name"), DnsType::A));
        assert_eq!(respond(Some(&zone()), &two).response_code(), ResponseCode::FormErr);
    }

    #[test]
    fn edns_is_answered_in_kind_and_an_answer_too_big_for_udp_is_truncated() {
        let many: Vec<String> =
            (0..60).map(|i| format!("1 1 {} t1.servicediscovery.internal", 8000 + i)).collect();
        let mut big = contents();
        big.records.push(record(
            "_big._tcp",
            RecordType::Srv,
            Some("x"),
            &many.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
        let zone = Zone::new(DOMAIN, &big).expect("compiles");
        let mut request = Message::new();
        request.add_query(Query::query(
            fqdn("_big._tcp.servicediscovery.internal").expect("a name"),
            DnsType::SRV,
        ));
        let plain = respond(Some(&zone), &request);
        assert!(plain.extensions().is_none(), "no EDNS asked, none answered");
        let bytes = encode(&plain, usize::from(request.max_payload()));
        assert!(bytes.len() <= 512);
        let truncated = Message::from_vec(&bytes).expect("decodes");
        assert!(truncated.truncated() && truncated.answers().is_empty());
        assert_eq!(truncated.queries(), request.queries());

        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        request.set_edns(edns);
        let response = respond(Some(&zone), &request);
        assert_eq!(response.extensions().as_ref().map(Edns::max_payload), Some(EDNS_PAYLOAD));
        let whole =
            Message::from_vec(&encode(&response, usize::from(request.max_payload()))).expect("decodes");
        assert!(!whole.truncated());
        assert_eq!(whole.answers().len(), 60);
    }

    #[test]
    fn a_value_dns_cannot_carry_is_an_error_naming_its_record() {
        let mut bad = contents();
        bad.records.push(record("t2", RecordType::A, None, &["10.0.0.256"]));
        let error = format!("{:#}", Zone::new(DOMAIN, &bad).expect_err("an invalid address"));
        assert!(error.contains("t2.servicediscovery.internal. A"), "{error}");
    }

    #[test]
    fn txt_values_split_into_their_strings() {
        assert_eq!(txt_strings(r#""heritage=ecssd" "owner=default""#), ["heritage=ecssd", "owner=default"]);
        assert_eq!(txt_strings(r#""a, b" "" plain"#), ["a, b", "", "plain"]);
        assert_eq!(txt_strings(r#""say \"hi\" \\o/""#), [r#"say "hi" \o/"#]);
    }
}
