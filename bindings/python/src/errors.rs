//! The exception classes: `InfraPilotError` and one subclass per kind of [`SdkError`].

use infrapilot_sdk::SdkError;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use crate::convert::to_py;

pyo3::create_exception!(
    infrapilot,
    InfraPilotError,
    PyException,
    "Base class of every InfraPilot error; `kind` and `details` (a dict) say what went wrong."
);
pyo3::create_exception!(
    infrapilot,
    InvalidInputError,
    InfraPilotError,
    "An argument was refused; `field` names the part."
);
pyo3::create_exception!(
    infrapilot,
    InvalidJsonError,
    InvalidInputError,
    "A string argument that must be JSON is not."
);
pyo3::create_exception!(
    infrapilot,
    PolicyError,
    InfraPilotError,
    "A policy set is invalid; `diagnostics` locate each problem by JSON pointer."
);
pyo3::create_exception!(
    infrapilot,
    ComposeError,
    InfraPilotError,
    "A compose file could not be read; `field`, `line` and `column` locate the problem."
);
pyo3::create_exception!(
    infrapilot,
    EnrollmentTokenError,
    InfraPilotError,
    "An enrollment token was refused (the message never repeats its secret)."
);
pyo3::create_exception!(
    infrapilot,
    InvalidKeyError,
    InfraPilotError,
    "A public key is not 64 hex digits encoding an Ed25519 key."
);
pyo3::create_exception!(
    infrapilot,
    ApiError,
    InfraPilotError,
    "The API answered with a problem document: `status`, `detail`, `errors`, `problem_type`."
);
pyo3::create_exception!(
    infrapilot,
    TransportError,
    InfraPilotError,
    "The API could not be reached."
);
pyo3::create_exception!(
    infrapilot,
    UnexpectedResponseError,
    InfraPilotError,
    "The API answered something the SDK does not understand."
);

/// Converts an SDK error to an instance of its exception class, with the error's JSON fields
/// as attributes (`err.field`, `err.status`, `err.diagnostics`, …) and all of them in
/// `err.details`.
pub(crate) fn to_pyerr(error: SdkError) -> PyErr {
    let message = error.to_string();
    let err = match error.kind() {
        "invalid_json" => InvalidJsonError::new_err(message),
        "invalid_input" => InvalidInputError::new_err(message),
        "invalid_policy" => PolicyError::new_err(message),
        "invalid_compose" => ComposeError::new_err(message),
        "invalid_enrollment_token" => EnrollmentTokenError::new_err(message),
        "invalid_key" => InvalidKeyError::new_err(message),
        "api" => ApiError::new_err(message),
        "transport" => TransportError::new_err(message),
        "unexpected_response" => UnexpectedResponseError::new_err(message),
        _ => InfraPilotError::new_err(message),
    };
    Python::attach(|py| {
        let details = error.to_json();
        let value = err.value(py);
        // Attributes are a convenience; failing to set one must not hide the error itself.
        if let Ok(obj) = to_py(py, &details) {
            let _ = value.setattr("details", &obj);
        }
        if let Some(map) = details.as_object() {
            for (key, v) in map {
                if let Ok(obj) = to_py(py, v) {
                    let _ = value.setattr(key.as_str(), obj);
                }
            }
        }
    });
    err
}

/// Adds the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("InfraPilotError", py.get_type::<InfraPilotError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("InvalidJsonError", py.get_type::<InvalidJsonError>())?;
    m.add("PolicyError", py.get_type::<PolicyError>())?;
    m.add("ComposeError", py.get_type::<ComposeError>())?;
    m.add(
        "EnrollmentTokenError",
        py.get_type::<EnrollmentTokenError>(),
    )?;
    m.add("InvalidKeyError", py.get_type::<InvalidKeyError>())?;
    m.add("ApiError", py.get_type::<ApiError>())?;
    m.add("TransportError", py.get_type::<TransportError>())?;
    m.add(
        "UnexpectedResponseError",
        py.get_type::<UnexpectedResponseError>(),
    )?;
    Ok(())
}
