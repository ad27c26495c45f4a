//! The stored upload-session state: any bytes read back from storage either decode into a session
//! (whose hash state may still be refused) or are refused; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_core::{Digester, UploadSession};

fuzz_target!(|data: &[u8]| {
    if let Ok(session) = serde_json::from_slice::<UploadSession>(data)
        && let Ok(state) = hex::decode(&session.hash_state)
        && let Some(h) = Digester::resume(&state)
    {
        let _ = h.finish();
    }
});
