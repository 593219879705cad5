//! Content coding of large answers: gzip when the client accepts it (RFC 9110 `Accept-Encoding`).
//!
//! Only the plays route uses it: its bodies are the large ones (about 56 KB for 100 plays, a tenth of that
//! gzipped), and they are compressed once per body-cache fill (on every request only while the cache is
//! down), on a blocking thread.

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use hyper::HeaderMap;
use hyper::header::ACCEPT_ENCODING;

/// True when `headers` accept the `gzip` coding: listed (or `*` without gzip listed) with a non-zero quality.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let quality = parts
                .find_map(|p| {
                    let (key, value) = p.split_once('=')?;
                    key.trim().eq_ignore_ascii_case("q").then(|| value.trim().parse::<f32>().unwrap_or(0.0))
                })
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                // An explicit entry decides, whatever `*` says.
                return quality > 0.0;
            }
            if coding == "*" {
                star = quality > 0.0;
            }
        }
    }
    star
}

/// `body` gzipped (the default level: it runs once per cache fill).
pub(crate) fn gzip(body: &[u8]) -> std::io::Result<Bytes> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
    encoder.write_all(body)?;
    Ok(encoder.finish()?.into())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use hyper::header::HeaderValue;

    use super::*;

    fn accepts(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn reads_accept_encoding_as_rfc_9110_says() {
        assert!(!accepts(&[]));
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["gzip, deflate, br"]));
        assert!(accepts(&["br;q=1.0, GZIP;q=0.5"]));
        assert!(accepts(&["identity", "gzip"]), "several header lines");
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip; q=0.000"]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["identity"]));
        assert!(accepts(&["*"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["*, gzip;q=0"]), "an explicit gzip entry beats the star");
        assert!(accepts(&["*;q=0, gzip"]));
        assert!(!accepts(&["gzip;q=abc"]), "an unreadable quality counts as zero");
    }

    #[test]
    fn gzip_round_trips() {
        let body = br#"{"plays":[{"id":"1","text":"Jump ball"}]}"#.repeat(100);
        let zipped = gzip(&body).unwrap();
        assert!(zipped.len() < body.len() / 5, "{} of {}", zipped.len(), body.len());
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..]).read_to_end(&mut unzipped).unwrap();
        assert_eq!(unzipped, body);
    }
}
