//! Started without its configuration, the binary stops at init and names what
//! is missing.

#[path = "../../testing/startup.rs"]
mod startup;

#[test]
fn refuses_to_start_without_its_configuration() {
    startup::refuses_to_start_without_its_configuration(
        env!("CARGO_BIN_EXE_oauth-callback"),
        "OAUTH_CALLBACK_URL",
    );
}
