//! `Range` and `Content-Range` headers: any value parses or is refused, and a parsed range resolves
//! against any object size to a range inside the object, or to "not satisfiable".
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use registry_http::headers;

fuzz_target!(|data: &[u8]| {
    let (size, text) = if data.len() >= 8 {
        (u64::from_le_bytes(data[..8].try_into().unwrap_or_default()), &data[8..])
    } else {
        (0, data)
    };
    let Ok(value) = HeaderValue::from_bytes(text) else { return };
    let mut h = HeaderMap::new();
    h.insert(header::RANGE, value.clone());
    h.insert(header::CONTENT_RANGE, value);
    if let Ok(Some(range)) = headers::range(&h)
        && let Ok(r) = range.resolve(size)
    {
        assert!(r.start < r.end && r.end <= size);
    }
    if let Ok(Some((_, len))) = headers::content_range(&h) {
        assert!(len >= 1);
    }
});
