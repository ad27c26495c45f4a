//! The conformance suite every [`Storage`] backend runs, with one line:
//!
//! ```ignore
//! registry_core::storage_testsuite!({
//!     let store = registry_storage::MemoryStorage::new();
//!     move || std::sync::Arc::new(store.clone()) as std::sync::Arc<dyn registry_core::Storage>
//! });
//! ```
//!
//! The argument is an expression giving an opener: a closure that returns a new handle on the same
//! data each time it is called (so that a case can check what another process would see). The
//! macro makes one `#[tokio::test]` per case, and each test fails if its case leaves anything behind.
//! Attributes in brackets before the opener go on every test, e.g. to skip them where the backend's
//! service is missing: `storage_testsuite!([#[cfg_attr(not(has_s3), ignore = "…")]] { … })`;
//! `storage_testsuite!(@cases [attributes] { … }; case, case…)` runs some cases only.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::storage::{ByteStream, GetRange, GetResult, ObjectMeta, Storage, StorageExt};

mod multipart;
mod objects;

pub use multipart::*;
pub use objects::*;

/// What the suite is handed: a way to open the same store again.
pub type Opener<'a> = &'a dyn Fn() -> Arc<dyn Storage>;

/// Makes one test per case of the suite for the backend that `$open` opens.
#[macro_export]
macro_rules! storage_testsuite {
    (@case [$(#[$attr:meta])*] $open:expr; $case:ident) => {
        $(#[$attr])*
        #[tokio::test]
        async fn $case() {
            let open = $open;
            $crate::testsuite::$case(&open).await;
            $crate::testsuite::assert_empty(&*open()).await;
        }
    };
    (@cases $attrs:tt $open:expr; $($case:ident),*) => {
        $($crate::storage_testsuite!(@case $attrs $open; $case);)*
    };
    ([$(#[$attr:meta])*] $open:expr) => {
        $crate::storage_testsuite!(@cases [$(#[$attr])*] $open;
            put_get_head_delete, ranges, immutable_reads, empty_objects, listing, pages, rename,
            rename_if_absent, concurrent_puts, puts_beside_deletes, multipart_complete, multipart_zero_parts, multipart_abort,
            multipart_resumed_by_new_instance, multipart_invisible_until_complete,
            multipart_failed_part_retried, multipart_racing_uploads,
            multipart_receipts_name_their_bytes, streams_large_objects);
    };
    ($open:expr) => {
        $crate::storage_testsuite!([] $open);
    };
}

fn stream_of(chunks: Vec<&'static [u8]>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed()
}

async fn read_all(store: &dyn Storage, key: &str, range: Option<GetRange>) -> Vec<u8> {
    bytes_of(store.get(key, range).await.expect("get")).await
}

/// Everything a read's stream carries.
async fn bytes_of(res: GetResult) -> Vec<u8> {
    res.stream
        .try_fold(Vec::new(), |mut acc, c| async move {
            acc.extend_from_slice(&c);
            Ok(acc)
        })
        .await
        .expect("read stream")
}

fn keys(objects: &[ObjectMeta]) -> Vec<&str> {
    objects.iter().map(|o| o.key.as_str()).collect()
}

/// Fails when anything is left in the store.
pub async fn assert_empty(store: &dyn Storage) {
    let left: Vec<ObjectMeta> = store.list_recursive("").try_collect().await.expect("list");
    assert!(
        left.is_empty(),
        "case left objects behind: {:?}",
        keys(&left)
    );
}
