//! Salesforce org emulator (see issue 3).
