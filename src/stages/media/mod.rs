//! The media stage: fetch MMS attachments from Twilio safely and store them.
