//! Digests: parsing accepts only what displays back identically; restoring a hash state from any
//! bytes never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_core::{Digest, Digester};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(d) = s.parse::<Digest>()
    {
        assert_eq!(d.to_string(), s);
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
        assert!(!d.hex().contains('/') && !d.hex().contains('.'));
    }
    if let Some(mut h) = Digester::resume(data) {
        h.update(data);
        let _ = h.finish();
    }
});
