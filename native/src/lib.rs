//! `mailboat._native`: the Received reader of mailboat.trace compiled, for speed.
//!
//! `parse_received(text)` takes the unfolded header value and returns the fields of the `Hop`
//! after `raw`, in the dataclass's order, or None when it leaves the header to the Python reader:
//! text that is not ASCII, a date whose arithmetic would overflow, or any panic (caught here).
//! All parsing is safe Rust; the only unsafe code is inside pyo3.

mod dates;
mod received;
mod text;

use pyo3::prelude::*;
use pyo3::types::{timezone_utc, PyDateTime, PyTuple};

/// The native reader declines the header; the Python reader takes it.
#[derive(Debug)]
pub struct Fallback;

#[pyfunction]
fn parse_received(py: Python<'_>, text: &str) -> PyResult<PyObject> {
    if !text.is_ascii() {
        return Ok(py.None());
    }
    let fields = match std::panic::catch_unwind(|| received::parse(text)) {
        Ok(Ok(fields)) => fields,
        _ => return Ok(py.None()),
    };
    let timestamp: PyObject = match fields.timestamp {
        Some((y, mo, d, h, mi, s)) => {
            PyDateTime::new(py, y as i32, mo as u8, d as u8, h as u8, mi as u8, s as u8, 0, Some(timezone_utc(py)))?
                .into_py(py)
        }
        None => py.None(),
    };
    let extras = PyTuple::new(py, fields.extras.into_iter().map(|(k, v)| PyTuple::new(py, [k, v])));
    let items: [PyObject; 15] = [
        fields.helo.into_py(py),
        fields.rdns.into_py(py),
        fields.ip.into_py(py),
        fields.by_host.into_py(py),
        fields.protocol.into_py(py),
        fields.tls.into_py(py),
        fields.evidence.into_py(py),
        fields.id.into_py(py),
        fields.rcpt.into_py(py),
        fields.via.into_py(py),
        timestamp,
        fields.date_text.into_py(py),
        PyTuple::new(py, fields.warnings).into_py(py),
        extras.into_py(py),
        PyTuple::new(py, fields.comments).into_py(py),
    ];
    Ok(PyTuple::new(py, items).into_py(py))
}

#[pymodule]
fn _native(_py: Python<'_>, m: &PyModule) -> PyResult<()> {
    // A panic is an answer (None), not a message on the server's stderr.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var_os("MAILBOAT_NATIVE_PANICS").is_some() {
            default_hook(info);
        }
    }));
    m.add_function(wrap_pyfunction!(parse_received, m)?)?;
    Ok(())
}
