use super::*;

fn request(parsed: Parsed<Request>) -> (Request, usize) {
    parsed.expect("parses").expect("complete")
}

#[test]
fn socks4_and_4a() {
    let msg = [4, 1, 0, 80, 127, 0, 0, 1, b'u', 0, b'x'];
    let (r, used) = request(parse_socks4(&msg));
    assert_eq!((r.version, r.port, used), (Version::V4, 80, 10));
    assert_eq!(r.host, RequestHost::Ip("127.0.0.1".parse().unwrap()));
    let msg = b"\x04\x01\x00\x50\x00\x00\x00\x01\x00abc.i2p\x00";
    let (r, used) = request(parse_socks4(msg));
    assert_eq!((r.version, used), (Version::V4a, msg.len()));
    assert_eq!(r.host, RequestHost::Name(b"abc.i2p".to_vec()));
    // incomplete until the host's NUL
    assert!(parse_socks4(&msg[..msg.len() - 1]).unwrap().is_none());
    // BIND is refused with 91
    let refusal = parse_socks4(&[4, 2]).unwrap_err();
    assert_eq!(refusal.reply, vec![0, 91, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn socks5_requests() {
    let mut msg = vec![5, 1, 0, 3, 7];
    msg.extend_from_slice(b"abc.i2p");
    msg.extend_from_slice(&[0, 80]);
    let (r, used) = request(parse_request(&msg));
    assert_eq!((r.version, r.port, used), (Version::V5, 80, msg.len()));
    assert_eq!(r.host, RequestHost::Name(b"abc.i2p".to_vec()));
    for cut in 0..msg.len() {
        assert!(parse_request(&msg[..cut]).unwrap().is_none(), "cut {cut}");
    }
    let bind = parse_request(&[5, 2, 0, 1]).unwrap_err();
    assert_eq!(bind.reply[1], rep::COMMAND_NOT_SUPPORTED);
    let (udp, used) = request(parse_request(&[5, 3, 0, 1, 127, 0, 0, 1, 0x10, 0x00]));
    assert_eq!(
        (udp.command, udp.port, used),
        (Command::UdpAssociate, 4096, 10)
    );
    assert_eq!(udp.host, RequestHost::Ip("127.0.0.1".parse().unwrap()));
    assert_eq!(r.command, Command::Connect);
    let atyp = parse_request(&[5, 1, 0, 9]).unwrap_err();
    assert_eq!(atyp.reply[1], rep::ADDRESS_TYPE_NOT_SUPPORTED);
    let (r, _) = request(parse_request(&[
        5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0,
    ]));
    assert_eq!(r.host, RequestHost::Ip("::1".parse().unwrap()));
}

#[test]
fn greetings() {
    assert!(matches!(
        parse_hello(&[5, 2, 0, 2]).unwrap(),
        Some((Hello::V5(m), 4)) if m == [0, 2]
    ));
    assert_eq!(parse_hello(&[5, 0]).unwrap_err().reply, vec![5, 0xFF]);
    assert!(
        parse_hello(b"GET / HTTP/1.1")
            .unwrap_err()
            .reply
            .starts_with(b"HTTP/1.0 400")
    );
    assert!(parse_hello(&[0x16, 3, 1]).unwrap_err().reply.is_empty());
    assert_eq!(
        parse_password(&[1, 1, b'u', 1, b'p']).unwrap(),
        Some(((), 5))
    );
    assert!(parse_password(&[1, 1, b'u', 1]).unwrap().is_none());
    assert_eq!(parse_password(&[2]).unwrap_err().reply, vec![1, 1]);
}

#[tokio::test]
async fn a_whole_socks5_handshake_with_a_password_and_early_bytes() {
    let (mut client, mut server) = tokio::io::duplex(4096);
    let task = tokio::spawn(async move { handshake(&mut server, 600).await });
    client.write_all(&[5, 1, 2]).await.unwrap();
    let mut reply = [0u8; 2];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [5, 2]);
    client.write_all(&[1, 1, b'u', 0]).await.unwrap();
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [1, 0]);
    let mut msg = vec![5, 1, 0, 3, 5];
    msg.extend_from_slice(b"x.i2p\x01\xbbGET /");
    client.write_all(&msg).await.unwrap();
    let request = task.await.unwrap().unwrap();
    assert_eq!(request.host, RequestHost::Name(b"x.i2p".to_vec()));
    assert_eq!(request.port, 443);
    assert_eq!(&request.early[..], b"GET /");
}

#[tokio::test]
async fn an_endless_socks4_user_id_is_refused_at_the_limit() {
    let (mut client, mut server) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(async move { handshake(&mut server, 600).await });
    client.write_all(&[4, 1, 0, 80, 0, 0, 0, 1]).await.unwrap();
    client.write_all(&[b'a'; 5000]).await.unwrap();
    let refusal = task.await.unwrap().unwrap_err();
    assert_eq!(refusal.reply, vec![0, 91, 0, 0, 0, 0, 0, 0]);
    assert!(refusal.reason.contains("600"), "{}", refusal.reason);
}
