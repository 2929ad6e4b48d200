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
            RecordType::Srv => DnsType::SRV,
            RecordType::Txt => DnsType::TXT,
        };
        let name = fqdn(name)?;
        let response = self.exchange(&name, dns_type).await?;
        match response.response_code() {
            ResponseCode::NXDomain => return Ok(Answer::Absent),
            ResponseCode::NoError => {}
            code => return Err(format!("{} answered {code}", self.address)),
        }
        let mut values: Vec<String> = response
            .answers()
            .iter()
            .filter(|record| record.record_type() == dns_type && record.name() == &name)
            .filter_map(|record| render(record.data()))
            .collect();
        if values.is_empty() {
            return Ok(Answer::Absent);
        }
        values.sort();
        Ok(Answer::Values(values))
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
            // A stray datagram (another query's late answer) is not ours: keep waiting.
            if let Ok(message) = Message::from_vec(&buffer[..read])
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
        let message = Message::from_vec(&body).map_err(|e| format!("garbled answer: {e}"))?;
        if message.id() != id {
            return Err("answer to another query".into());
        }
        Ok(message)
    }
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
}
