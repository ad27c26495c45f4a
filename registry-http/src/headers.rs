//! The names of the headers the distribution API adds to HTTP's, parsing of the request headers
//! the API reads (`Range`, `Content-Range`, `Content-Length`) and the `Range`-style values it
//! writes.

use http::HeaderMap;
use registry_core::GetRange;

use crate::error::{ApiError, ErrorCode};

/// `Docker-Distribution-API-Version`, sent on every response.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";
/// `Docker-Content-Digest`
pub const CONTENT_DIGEST_HEADER: &str = "docker-content-digest";
/// `Docker-Upload-UUID`
pub const UPLOAD_UUID_HEADER: &str = "docker-upload-uuid";
/// `OCI-Subject`
pub const OCI_SUBJECT_HEADER: &str = "oci-subject";
/// `X-Request-Id`: taken from the request when it carries a sane one, else made up; echoed back.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// `OCI-Filters-Applied`
pub const OCI_FILTERS_APPLIED_HEADER: &str = "oci-filters-applied";

/// Reads `Range: bytes=a-b | bytes=a- | bytes=-n` for a blob GET. A header that is absent, of
/// another unit or with several ranges is ignored (the whole blob is sent), as RFC 9110 allows;
/// a malformed single byte range is refused with 416.
pub fn range(headers: &HeaderMap) -> Result<Option<GetRange>, ApiError> {
    let Some(value) = headers.get(http::header::RANGE) else {
        return Ok(None);
    };
    let bad = || ApiError::new(ErrorCode::RangeInvalid, "malformed Range header");
    let text = value.to_str().map_err(|_| bad())?.trim();
    let Some(spec) = text.strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.trim().split_once('-').ok_or_else(bad)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    Ok(Some(
        match (start.trim().is_empty(), end.trim().is_empty()) {
            (true, true) => return Err(bad()),
            (true, false) => GetRange::Suffix(num(end)?),
            (false, true) => GetRange::Offset(num(start)?),
            (false, false) => {
                let (a, b) = (num(start)?, num(end)?);
                if b < a {
                    return Err(bad());
                }
                GetRange::Bounded(a..b.saturating_add(1))
            }
        },
    ))
}

/// Reads a chunk's `Content-Range: a-b` (also `bytes a-b/*` and `bytes=a-b`): the offset the chunk
/// starts at and its length.
pub fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = headers.get(http::header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            ErrorCode::BlobUploadInvalid,
            "malformed Content-Range header",
        )
        .with_status(http::StatusCode::RANGE_NOT_SATISFIABLE)
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    let text = text
        .strip_prefix("bytes=")
        .or_else(|| text.strip_prefix("bytes "))
        .unwrap_or(text);
    let text = text.split_once('/').map_or(text, |(r, _)| r);
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    let len = (b - a).checked_add(1).ok_or_else(bad)?;
    Ok(Some((a, len)))
}

/// The request's `Content-Length`, if present and valid.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    match headers.get(http::header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(ErrorCode::SizeInvalid, "malformed Content-Length header")
            }),
    }
}

/// A header value from text this crate formats itself (numbers, digests, paths of valid names),
/// which is always visible ASCII; anything else becomes an empty value rather than a panic.
pub fn value(s: impl std::fmt::Display) -> http::HeaderValue {
    http::HeaderValue::from_str(&s.to_string())
        .unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

/// The `Range` value describing an upload holding `offset` bytes: `0-<last byte>`, `0-0` when empty.
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: http::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, v.parse().unwrap());
        h
    }

    #[test]
    fn ranges() {
        let r = |v: &str| range(&with(http::header::RANGE, v));
        assert_eq!(r("bytes=0-9").unwrap(), Some(GetRange::Bounded(0..10)));
        assert_eq!(r("bytes=5-").unwrap(), Some(GetRange::Offset(5)));
        assert_eq!(r("bytes=-3").unwrap(), Some(GetRange::Suffix(3)));
        assert_eq!(r("items=0-1").unwrap(), None);
        assert_eq!(r("bytes=0-1,4-5").unwrap(), None);
        assert_eq!(range(&HeaderMap::new()).unwrap(), None);
        for bad in [
            "bytes=",
            "bytes=-",
            "bytes=9-1",
            "bytes=a-b",
            "bytes=1",
            "bytes=99999999999999999999999-",
        ] {
            assert!(r(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            r("bytes=0-18446744073709551615").unwrap(),
            Some(GetRange::Bounded(0..u64::MAX))
        );
    }

    #[test]
    fn content_ranges() {
        let r = |v: &str| content_range(&with(http::header::CONTENT_RANGE, v));
        assert_eq!(r("0-99").unwrap(), Some((0, 100)));
        assert_eq!(r("bytes 100-199/*").unwrap(), Some((100, 100)));
        assert_eq!(r("bytes=5-5").unwrap(), Some((5, 1)));
        for bad in ["", "5", "9-1", "a-b", "-1", "1-", "0-18446744073709551615"] {
            assert!(r(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn upload_ranges() {
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(10), "0-9");
    }
}
