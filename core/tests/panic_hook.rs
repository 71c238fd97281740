//! The panic hook logs where a panic happened, never its message (a mapping may format a value
//! into it). Its own test binary: the hook is process-wide.

use std::sync::{Arc, Mutex};

use fhir_pipes_core::logging::{LogFilter, filtered, install_panic_hook};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_logs_its_location_and_not_its_message() {
    let captured = Captured::default();
    let writer = captured.clone();
    let layer = tracing_subscriber::fmt::layer().json().with_writer(move || writer.clone());
    let subscriber = filtered(layer, LogFilter::new(Some("trace"), "info"));
    install_panic_hook();
    let outcome = tracing::subscriber::with_default(subscriber, || {
        std::panic::catch_unwind(|| panic!("cannot map the birth date of Ermintrude Scrimgeour"))
    });
    assert!(outcome.is_err());
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("panicked") && logs.contains("panic_hook.rs"), "{logs}");
    assert!(!logs.contains("Scrimgeour"), "{logs}");
}
