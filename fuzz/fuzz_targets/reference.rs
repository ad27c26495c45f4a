//! Repository names, tags and references: whatever parses is safe as storage key components (no
//! empty, `.` or `..` component, nothing starting with `_`) and displays back identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_core::{Reference, RepositoryName, Tag};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(name) = s.parse::<RepositoryName>() {
        assert_eq!(name.as_str(), s);
        assert!(s.len() <= registry_core::reference::MAX_NAME_LEN);
        for c in s.split('/') {
            assert!(!c.is_empty() && c != "." && c != ".." && !c.starts_with('_') && !c.starts_with('.'));
        }
    }
    if let Ok(tag) = s.parse::<Tag>() {
        assert_eq!(tag.as_str(), s);
        assert!(!s.contains('/') && !s.starts_with('.'));
    }
    if let Ok(r) = s.parse::<Reference>() {
        assert_eq!(r.to_string(), s);
    }
});
