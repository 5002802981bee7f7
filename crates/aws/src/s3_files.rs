//! File store on S3: `s3://<bucket>/<tenant>/<path>`.
//!
//! Commit-to-publish, like the local adapter's rename: nothing is visible
//! under the key until [`FileWriter::commit`]. Small files are buffered and
//! written with one `PutObject` on commit; once the buffer reaches the part
//! size the writer switches to a multipart upload, whose parts S3 keeps out of
//! sight until `CompleteMultipartUpload` (on commit) or drops on
//! `AbortMultipartUpload` (on abort). Memory stays at about one part whatever
//! the file's size. Uploads abandoned by a crashed run are removed by the
//! bucket's lifecycle rule (`AbortIncompleteMultipartUpload` in
//! infra/template.yaml).
//!
//! A writer's durable point is its last uploaded part: the upload id and the
//! parts' numbers and entity tags ([`Upload`]) let another invocation go on
//! with the same upload. A part is cut only at the end of a `write` call, when
//! the buffer holds at least the part size; what is buffered after the last
//! part is not durable (S3 takes a part under 5 MiB only as the last), and a
//! continuation writes it again under the next part number, so no part
//! repeats records. Parts past a checkpoint that a crashed invocation
//! uploaded are replaced (same number) or left out of the completed file.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use aws_sdk_s3::error::SdkError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use ferry_core::model::ids::is_valid_id;
use ferry_core::ports::files::{check_path, FileError, FileStore, FileWriter, Upload, UploadedPart};

use crate::unavailable::{service_error, OperationError};

/// S3's smallest part (all but the last part of an upload must be this big).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

pub struct S3FileStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    part_size: usize,
}

impl S3FileStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into(), part_size: DEFAULT_PART_SIZE }
    }

    /// Bytes buffered before a part is uploaded; at least [`MIN_PART_SIZE`].
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn key(&self, tenant: &str, path: &str) -> Result<String, FileError> {
        if !is_valid_id(tenant) {
            return Err(FileError::InvalidPath(format!("{tenant}/{path}")));
        }
        check_path(path)?;
        Ok(format!("{tenant}/{path}"))
    }
}

struct Multipart {
    upload_id: String,
    parts: Vec<UploadedPart>,
}

struct S3Writer {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    /// The tenant-relative path, as resumable uploads name it.
    path: String,
    part_size: usize,
    buffer: Vec<u8>,
    upload: Option<Multipart>,
}

impl S3Writer {
    /// Uploads the buffer as the next part, starting the upload if needed.
    async fn upload_part(&mut self) -> Result<(), FileError> {
        if self.upload.is_none() {
            let started = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .send()
                .await
                .map_err(failed)?;
            let upload_id = started.upload_id().ok_or_else(|| backend_msg("S3 returned no upload id"))?.to_owned();
            self.upload = Some(Multipart { upload_id, parts: Vec::new() });
        }
        let Some(upload) = self.upload.as_mut() else { return Err(backend_msg("no multipart upload")) };
        let number = u32::try_from(upload.parts.len() + 1).map_err(|_| backend_msg("too many parts"))?;
        let body = std::mem::take(&mut self.buffer);
        let bytes = body.len() as u64;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload.upload_id)
            .part_number(number as i32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(failed)?;
        let etag = out.e_tag.ok_or_else(|| backend_msg("S3 returned no entity tag for a part"))?;
        upload.parts.push(UploadedPart { number, etag, bytes });
        self.buffer = Vec::with_capacity(self.part_size);
        Ok(())
    }

    fn durable_bytes(&self) -> u64 {
        self.upload.as_ref().map_or(0, |u| u.parts.iter().map(|p| p.bytes).sum())
    }

    async fn abort_upload(&mut self) -> Result<(), FileError> {
        if let Some(upload) = self.upload.take() {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload.upload_id)
                .send()
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}

#[async_trait]
impl FileWriter for S3Writer {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= self.part_size {
            self.upload_part().await?;
        }
        Ok(())
    }

    fn durable(&self) -> Option<Upload> {
        let upload = self.upload.as_ref().filter(|u| !u.parts.is_empty())?;
        Some(Upload {
            path: self.path.clone(),
            id: upload.upload_id.clone(),
            bytes: self.durable_bytes(),
            parts: upload.parts.clone(),
        })
    }

    async fn sync(&mut self) -> Result<Option<Upload>, FileError> {
        Ok(self.durable())
    }

    fn written(&self) -> u64 {
        self.durable_bytes() + self.buffer.len() as u64
    }

    #[tracing::instrument(name = "s3.commit", skip_all, fields(key = %self.key))]
    async fn commit(mut self: Box<Self>) -> Result<(), FileError> {
        if self.upload.is_none() {
            let body = std::mem::take(&mut self.buffer);
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(failed)?;
            return Ok(());
        }
        if !self.buffer.is_empty() {
            if let Err(e) = self.upload_part().await {
                let _ = self.abort_upload().await;
                return Err(e);
            }
        }
        let Some(upload) = self.upload.take() else { return Err(backend_msg("no multipart upload")) };
        let parts = upload
            .parts
            .iter()
            .map(|p| CompletedPart::builder().e_tag(&p.etag).part_number(p.number as i32).build())
            .collect();
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await;
        if let Err(e) = completed {
            // Leave nothing half-made behind (the lifecycle rule would, later).
            self.upload = Some(Multipart { upload_id: upload.upload_id, parts: Vec::new() });
            let _ = self.abort_upload().await;
            return Err(failed(e));
        }
        Ok(())
    }

    async fn abort(mut self: Box<Self>) -> Result<(), FileError> {
        self.buffer = Vec::new();
        self.abort_upload().await
    }
}

#[async_trait]
impl FileStore for S3FileStore {
    async fn create(&self, tenant: &str, path: &str) -> Result<Box<dyn FileWriter>, FileError> {
        let key = self.key(tenant, path)?;
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key,
            path: path.to_owned(),
            part_size: self.part_size,
            buffer: Vec::new(),
            upload: None,
        }))
    }

    async fn resume(&self, tenant: &str, upload: &Upload) -> Result<Box<dyn FileWriter>, FileError> {
        let key = self.key(tenant, &upload.path)?;
        // Not checked against S3 here (one more call per invocation): an
        // upload removed since (the lifecycle rule) fails its next part.
        let contiguous = upload.parts.iter().enumerate().all(|(i, p)| p.number as usize == i + 1);
        if upload.parts.is_empty() || !contiguous {
            return Err(FileError::Gone(upload.path.clone()));
        }
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key,
            path: upload.path.clone(),
            part_size: self.part_size,
            buffer: Vec::new(),
            upload: Some(Multipart { upload_id: upload.id.clone(), parts: upload.parts.clone() }),
        }))
    }

    async fn read(&self, tenant: &str, path: &str) -> Result<Option<Vec<u8>>, FileError> {
        let key = self.key(tenant, path)?;
        let out = match self.client.get_object().bucket(&self.bucket).key(&key).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = answer(e)?;
                if e.is_no_such_key() {
                    return Ok(None);
                }
                return Err(FileError::backend(e));
            }
        };
        // The body streams after the answer: failing now, the connection failed.
        let bytes = out.body.collect().await.map_err(FileError::unavailable)?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    fn backend_name(&self) -> &'static str {
        "s3"
    }
}

/// The service's error to match on, or the file store's unavailable error
/// (see [`crate::unavailable`]).
fn answer<E: OperationError>(e: SdkError<E, HttpResponse>) -> Result<E, FileError> {
    service_error(e).map_err(FileError::unavailable)
}

/// A failed call as the file store's error: unavailable, or the service's refusal.
fn failed<E: OperationError>(e: SdkError<E, HttpResponse>) -> FileError {
    match answer(e) {
        Ok(refused) => FileError::backend(refused),
        Err(unavailable) => unavailable,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unexpected(&'static str);

fn backend_msg(msg: &'static str) -> FileError {
    FileError::backend(Unexpected(msg))
}
