//! The transcribe stage: audio from `sms.media.v1` to text on `sms.transcripts.v1`.
