//! The route parser: any path after `/v2/` is no API path, an error, or a route whose repository
//! name displays back as the leading part of the path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_http::Route;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    if let Some(Ok(route)) = Route::parse(path)
        && let Some(name) = route.repository()
    {
        assert!(path.starts_with(&format!("{name}/")));
    }
});
