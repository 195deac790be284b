//! Line framing: plain `Vec<u8>` API and the tokio-util codec.

use bob_codec::line::{LineCodec, LineItem, MAX_LINE_LEN, encode_line};
use bob_codec::{LineError, Reply};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{FramedRead, FramedWrite};

fn line(text: &str) -> LineItem {
    Ok(text.to_owned())
}

fn too_long(limit: usize) -> LineItem {
    Err(LineError::TooLong { limit })
}

/// Feeds `data` in `chunk`-byte pieces, draining after each, then ends the input.
fn feed(codec: &mut LineCodec, data: &[u8], chunk: usize) -> Vec<LineItem> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(item) = codec.decode_line(&mut buf) {
            out.push(item);
        }
    }
    while let Some(item) = codec.decode_line_eof(&mut buf) {
        out.push(item);
    }
    assert!(buf.is_empty());
    out
}

fn all_chunkings(data: &[u8], limit: usize, expected: &[LineItem]) {
    for chunk in [1, 2, 3, 5, 8, 64, data.len().max(1)] {
        let got = feed(&mut LineCodec::with_max_len(limit), data, chunk);
        assert_eq!(
            got,
            expected,
            "chunk {chunk}, data {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

#[test]
fn lf_and_crlf_end_lines() {
    all_chunkings(
        b"setnick a\nstart\r\n\r\n\nquit\r\n",
        MAX_LINE_LEN,
        &[
            line("setnick a"),
            line("start"),
            line(""),
            line(""),
            line("quit"),
        ],
    );
}

#[test]
fn only_one_cr_is_stripped_and_inner_crs_stay() {
    all_chunkings(
        b"a\r\r\nb\rc\n\r\n",
        64,
        &[line("a\r"), line("b\rc"), line("")],
    );
}

#[test]
fn pipelined_bytes_are_kept() {
    let mut codec = LineCodec::new();
    let mut buf = b"setnick t1\ninhost 127.0.0.1\ninport 1".to_vec();
    assert_eq!(codec.decode_line(&mut buf), Some(line("setnick t1")));
    assert_eq!(buf, b"inhost 127.0.0.1\ninport 1");
    assert_eq!(codec.decode_line(&mut buf), Some(line("inhost 127.0.0.1")));
    assert_eq!(codec.decode_line(&mut buf), None);
    assert_eq!(codec.decode_line(&mut buf), None);
    assert_eq!(buf, b"inport 1");
    buf.extend_from_slice(b"2\nquit\n");
    assert_eq!(codec.decode_line(&mut buf), Some(line("inport 12")));
    assert_eq!(codec.decode_line(&mut buf), Some(line("quit")));
    assert_eq!(codec.decode_line(&mut buf), None);
    assert!(buf.is_empty());
}

#[test]
fn final_unterminated_line_is_returned_at_eof() {
    all_chunkings(b"list\nquit", 64, &[line("list"), line("quit")]);
    all_chunkings(b"quit\r", 64, &[line("quit")]);
    all_chunkings(b"\r", 64, &[line("")]);
    all_chunkings(b"", 64, &[]);
    all_chunkings(b"\n", 64, &[line("")]);
}

#[test]
fn limit_boundaries() {
    let limit = 16;
    let exact = "x".repeat(limit);
    let over = "x".repeat(limit + 1);
    all_chunkings(format!("{exact}\n").as_bytes(), limit, &[line(&exact)]);
    all_chunkings(format!("{exact}\r\n").as_bytes(), limit, &[line(&exact)]);
    all_chunkings(format!("{exact}\r").as_bytes(), limit, &[line(&exact)]);
    all_chunkings(exact.as_bytes(), limit, &[line(&exact)]);
    all_chunkings(format!("{over}\n").as_bytes(), limit, &[too_long(limit)]);
    all_chunkings(format!("{over}\r\n").as_bytes(), limit, &[too_long(limit)]);
    all_chunkings(over.as_bytes(), limit, &[too_long(limit)]);
    all_chunkings(
        format!("{exact}\r\r\n").as_bytes(),
        limit,
        &[too_long(limit)],
    );
}

#[test]
fn over_long_line_yields_one_error_then_framing_goes_on() {
    let limit = 8;
    let data = format!("ok1\n{}\nok2\r\n{}\r\nok3", "y".repeat(100), "z".repeat(9));
    all_chunkings(
        data.as_bytes(),
        limit,
        &[
            line("ok1"),
            too_long(limit),
            line("ok2"),
            too_long(limit),
            line("ok3"),
        ],
    );
}

#[test]
fn over_long_line_at_eof_is_one_error() {
    all_chunkings(&[b'q'; 50], 8, &[too_long(8)]);
    all_chunkings(
        format!("a\n{}", "q".repeat(50)).as_bytes(),
        8,
        &[line("a"), too_long(8)],
    );
}

#[test]
fn default_limit_is_16_kib() {
    assert_eq!(MAX_LINE_LEN, 16 * 1024);
    assert_eq!(LineCodec::new().max_len(), MAX_LINE_LEN);
    assert_eq!(LineCodec::default().max_len(), MAX_LINE_LEN);
    let key = "A".repeat(MAX_LINE_LEN - 8);
    let ok = format!("setkeys {key}");
    let over = format!("setkeys {key}B");
    let data = format!("{ok}\r\n{over}\nquit\n");
    all_chunkings(
        data.as_bytes(),
        MAX_LINE_LEN,
        &[line(&ok), too_long(MAX_LINE_LEN), line("quit")],
    );
}

#[test]
fn buffer_stays_bounded_while_discarding() {
    let mut codec = LineCodec::with_max_len(32);
    let mut buf = Vec::new();
    let mut errors = 0;
    for _ in 0..1000 {
        buf.extend_from_slice(&[b'x'; 100]);
        while let Some(item) = codec.decode_line(&mut buf) {
            assert_eq!(item, too_long(32));
            errors += 1;
        }
        assert!(buf.len() <= 33, "buffer grew to {}", buf.len());
    }
    assert_eq!(errors, 1);
    buf.extend_from_slice(b"tail\nnext\n");
    assert_eq!(codec.decode_line(&mut buf), Some(line("next")));
}

#[test]
fn invalid_utf8_is_an_item_not_a_panic() {
    all_chunkings(
        b"setnick \xff\xfe\nstart\n\xc3\n\xc3\xa9\n",
        64,
        &[
            Err(LineError::InvalidUtf8),
            line("start"),
            Err(LineError::InvalidUtf8),
            line("\u{e9}"),
        ],
    );
}

#[test]
fn line_error_texts() {
    assert_eq!(
        too_long(16384).unwrap_err().to_string(),
        "line too long (limit 16384 bytes)"
    );
    assert_eq!(LineError::InvalidUtf8.to_string(), "invalid UTF-8 in line");
}

#[test]
fn encode_line_appends_a_newline_and_refuses_line_breaks() {
    let mut out = Vec::new();
    encode_line("setnick a", &mut out).unwrap();
    encode_line("", &mut out).unwrap();
    assert_eq!(out, b"setnick a\n\n");
    for bad in ["a\nb", "a\r", "\n"] {
        let err = encode_line(bad, &mut out).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
    assert_eq!(out, b"setnick a\n\n");
}

#[tokio::test]
async fn framed_read_over_a_one_byte_pipe() {
    let (mut client, server) = tokio::io::duplex(1);
    let writer = tokio::spawn(async move {
        client
            .write_all(b"setnick t1\r\nHELP\n\xff\nstart\nquit")
            .await
            .unwrap();
        // dropping `client` ends the stream
    });
    let items: Vec<LineItem> = FramedRead::new(server, LineCodec::new())
        .map(|r| r.expect("no I/O error"))
        .collect()
        .await;
    writer.await.unwrap();
    assert_eq!(
        items,
        [
            line("setnick t1"),
            line("HELP"),
            Err(LineError::InvalidUtf8),
            line("start"),
            line("quit")
        ]
    );
}

#[tokio::test]
async fn framed_read_reports_too_long_and_goes_on() {
    let data = format!("{}\nlist\n", "x".repeat(MAX_LINE_LEN * 3));
    let items: Vec<LineItem> = FramedRead::new(data.as_bytes(), LineCodec::new())
        .map(|r| r.expect("no I/O error"))
        .collect()
        .await;
    assert_eq!(items, [too_long(MAX_LINE_LEN), line("list")]);
}

#[tokio::test]
async fn framed_write_encodes_replies_and_lines() {
    let mut sink = FramedWrite::new(Vec::new(), LineCodec::new());
    sink.send(Reply::Ok(None)).await.unwrap();
    sink.send(&Reply::ok("Nickname set to t1")).await.unwrap();
    sink.send(Reply::error("tunnel is active")).await.unwrap();
    sink.send("setnick t1").await.unwrap();
    sink.send(Reply::Data("two\nlines\r".into())).await.unwrap();
    let err = sink.send("bad\nline").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        sink.get_ref().as_slice(),
        b"OK\nOK Nickname set to t1\nERROR tunnel is active\nsetnick t1\nDATA two lines \n"
    );
}
