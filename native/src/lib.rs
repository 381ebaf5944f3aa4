//! `mailboat._native`: the Received reader of mailboat.trace compiled, for speed.
//!
//! `parse_received(value)` takes a header value (str) and returns its `Hop` (the classes come
//! from `configure`), or None when it leaves the value to the Python reader: text that is not
//! ASCII, CR or LF outside folds, or a panic (caught here; there should be none).
//! All parsing is safe Rust; the only unsafe code is inside pyo3.

mod dates;
mod fromclause;
mod oddates;
mod received;
mod text;

use std::borrow::Cow;

use pyo3::once_cell::GILOnceCell;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{timezone_utc, PyDateTime, PyString, PyTuple};

/// `parse.parse_received`'s own unfolding of a str value: the CRLF of every CRLF + WSP fold
/// removed, the value stripped, a leading "Received:" name dropped. None when a CR or LF is left
/// (a bare one, or CRLF not followed by WSP): the Python reader's full `unfold` takes those.
fn unfold(value: &str) -> Option<Cow<'_, str>> {
    if value.contains('\r') {
        let joined = value.replace("\r\n\t", "\t").replace("\r\n ", " ");
        if joined.contains(['\r', '\n']) {
            return None;
        }
        return Some(Cow::Owned(without_name(&joined).to_string()));
    }
    if value.contains('\n') {
        return None;
    }
    Some(Cow::Borrowed(without_name(value)))
}

/// The value stripped, less a leading "Received:" name.
fn without_name(value: &str) -> &str {
    let stripped = text::strip(value);
    if stripped.len() >= 9 && stripped.as_bytes()[8] == b':' && stripped[..9].eq_ignore_ascii_case("received:") {
        return stripped[9..].trim_start_matches(|c: char| c.is_ascii() && text::is_space(c as u8));
    }
    stripped
}

/// The Hop of one Received header value (a str; `raw` is the unfolded text), or None to leave
/// the value to the Python reader.
#[pyfunction]
fn parse_received(py: Python<'_>, value: &PyString) -> PyResult<PyObject> {
    // A str that is not valid UTF-8 (a lone surrogate, as surrogateescape makes from undecodable
    // bytes) is not ASCII either: the Python reader takes it, like any other non-ASCII value.
    let Ok(whole) = value.to_str() else { return Ok(py.None()) };
    if !whole.is_ascii() {
        return Ok(py.None());
    }
    let Some(text) = unfold(whole) else { return Ok(py.None()) };
    let fields = match std::panic::catch_unwind(|| received::parse(&text)) {
        Ok(fields) => fields,
        Err(_) => return Ok(py.None()), // a panic: let the Python reader take it
    };
    let raw: PyObject = if text.len() == whole.len() { value.into_py(py) } else { text.as_ref().into_py(py) };
    let timestamp: PyObject = match fields.timestamp {
        Some((y, mo, d, h, mi, s)) => {
            PyDateTime::new(py, y as i32, mo as u8, d as u8, h as u8, mi as u8, s as u8, 0, Some(timezone_utc(py)))?
                .into_py(py)
        }
        None => py.None(),
    };
    let extras = PyTuple::new(py, fields.extras.into_iter().map(|(k, v)| PyTuple::new(py, [k, v])));
    let items: [PyObject; 16] = [
        raw,
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
    let args = PyTuple::new(py, items);
    // hop.make_hop, done here: the frozen dataclass's slots filled through `Building`
    let Some((building, hop)) = HOP_CLASSES.get(py) else {
        return Err(PyRuntimeError::new_err("mailboat._native: configure(Building, Hop) was not called"));
    };
    let made = building.call1(py, args)?;
    made.setattr(py, "__class__", hop)?;
    Ok(made)
}

static HOP_CLASSES: GILOnceCell<(PyObject, PyObject)> = GILOnceCell::new();

/// `configure(Building, Hop)`, once before `parse_received`: the classes it builds the `Hop`
/// with (as `hop.make_hop` does).
#[pyfunction]
fn configure(py: Python<'_>, building: PyObject, hop: PyObject) {
    let _ = HOP_CLASSES.set(py, (building, hop));
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
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    Ok(())
}
