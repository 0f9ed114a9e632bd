//! [`ObjectStoreBlobs`]: a [`BlobStore`] over any [`object_store`](::object_store) backend.

use std::sync::Arc;

use ::object_store::local::LocalFileSystem;
use ::object_store::path::Path;
use ::object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use bytes::Bytes;

use super::{BlobStore, BoxError, BoxFuture};

/// A [`BlobStore`] on an [`object_store::ObjectStore`](::object_store::ObjectStore): the local
/// filesystem, or S3, GCS, Azure and others by configuration. Objects are written once, with
/// `PutMode::Create` where the backend supports it, under `prefix`.
///
/// ```no_run
/// # async fn demo(session: &mazurka::Session) -> mazurka::Result<()> {
/// use std::sync::Arc;
/// use mazurka::blob::ObjectStoreBlobs;
/// use mazurka::{BlobOptions, Ref};
///
/// // A directory shared by every process (a network filesystem, say).
/// let store = ObjectStoreBlobs::local("/mnt/shared/mazurka-blobs")
///     .map_err(|e| mazurka::Error::Config(e.to_string()))?;
/// let options = BlobOptions::default().store(Arc::new(store));
/// let model: Ref<Vec<u8>> = Ref::new_with(session, "/models/current", vec![], options).await?;
/// # let _ = model; Ok(()) }
/// ```
///
/// For S3 (and likewise GCS or Azure), enable the `aws` feature of `object_store` in your own
/// `Cargo.toml` (the same version Mazurka uses) and build the store from a URL and options:
///
/// ```text
/// let url = url::Url::parse("s3://my-bucket/mazurka")?;
/// let (store, prefix) = object_store::parse_url_opts(&url, [("region", "eu-west-1")])?;
/// let blobs = ObjectStoreBlobs::new(Arc::from(store), prefix.as_ref());
/// ```
#[derive(Debug, Clone)]
pub struct ObjectStoreBlobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl ObjectStoreBlobs {
    /// Objects go to `store`, under `prefix` (`""` for the store's root).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> ObjectStoreBlobs {
        ObjectStoreBlobs {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    /// Objects go to files under the directory `dir` (created if missing).
    ///
    /// # Errors
    /// When the directory cannot be created or resolved.
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<ObjectStoreBlobs, BoxError> {
        std::fs::create_dir_all(dir.as_ref())?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(ObjectStoreBlobs::new(Arc::new(store), ""))
    }

    fn location(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }
}

impl BlobStore for ObjectStoreBlobs {
    fn describe(&self) -> String {
        format!("object_store {} (prefix {:?})", self.store, self.prefix)
    }

    fn put<'a>(&'a self, key: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let options = PutOptions::from(PutMode::Create);
            let location = self.location(key);
            match self
                .store
                .put_opts(&location, PutPayload::from(data.clone()), options)
                .await
            {
                // Keys are unique per chunk set: an existing one is an earlier attempt of ours.
                Ok(_) | Err(::object_store::Error::AlreadyExists { .. }) => Ok(()),
                Err(::object_store::Error::NotImplemented { .. }) => {
                    // A backend without create-only writes: a plain put of a unique key is as good.
                    let retry = self.store.put(&location, PutPayload::from(data)).await;
                    retry.map(|_| ()).map_err(BoxError::from)
                }
                Err(err) => Err(err.into()),
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BoxError>> {
        Box::pin(async move {
            match self
                .store
                .get_opts(&self.location(key), GetOptions::default())
                .await
            {
                Ok(result) => Ok(Some(result.bytes().await?)),
                Err(::object_store::Error::NotFound { .. }) => Ok(None),
                Err(err) => Err(err.into()),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            match self.store.delete(&self.location(key)).await {
                Ok(()) | Err(::object_store::Error::NotFound { .. }) => Ok(()),
                Err(err) => Err(err.into()),
            }
        })
    }
}
