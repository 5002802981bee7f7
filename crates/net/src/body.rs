//! Reading a response body without trusting its size.

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the response is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the response body could not be read")]
    Read(#[source] reqwest::Error),
}

/// The body, read chunk by chunk and given up as soon as it passes `limit`
/// bytes, so an oversized answer never sits in memory whole.
pub async fn read_capped(mut res: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if res.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::with_capacity(res.content_length().map_or(0, |n| n as usize).min(limit));
    while let Some(chunk) = res.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
